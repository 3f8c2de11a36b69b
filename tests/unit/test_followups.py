"""Follow-up trials after a failure: the topology rows (grouped deconv, reshape at the repeated concat)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import harness.backends.hailo  # noqa: F401  (registers the DFC's failure rules)
from harness.failures import Failure, classify
from harness.followups import propose
from harness.pipeline import TrialConfig
from harness.space import SearchSpace, load_space

SPACE = """
study: s
checkpoint: ck.pt
backend: hailo
data: {{calibration: cal, evaluation: ev}}
dimensions:
  norm: [gLN, cLN]
  width: [2048, 3200, 16000]
{extra}
"""
FULL = "  gln_stats: split\n  decoder: [grouped, per_source]\n  mask_mul: [repeat, per_source]\n"

GROUPED = ("compile", "BackendAllocatorException", "Compilation failed: Super deconv is not supported with groups")
RESHAPE = (
    "compile",
    "BackendAllocatorException",
    "Reshape is needed for layers: conv5, conv9, conv73, shortcut1, concat1, ew_mult1, but adding a reshape has failed.",
)


def _space(tmp_path: Path, extra: str = FULL) -> SearchSpace:
    p = tmp_path / "s.yaml"
    p.write_text(SPACE.format(extra=extra))
    return load_space(p)


def _params(**changes: Any) -> dict[str, Any]:
    return TrialConfig(norm="gLN", width=16000, gln_stats="split", **changes).to_dict()


def _rules(out: list[tuple[str, dict[str, Any]]]) -> list[str]:
    return [name for name, _ in out]


def test_signatures_are_the_dfc_ones() -> None:
    assert classify(*GROUPED).signature == "compile:BackendAllocatorException:grouped_deconv"
    failure = classify(*RESHAPE)
    assert failure.signature == "compile:BackendAllocatorException:reshape_needed"
    assert "shortcut1" in failure.groups["layers"]


def test_grouped_deconv_asks_for_the_per_source_decoder_only(tmp_path: Path) -> None:
    out = propose(classify(*GROUPED), _params(), _space(tmp_path))
    assert out == [("decoder:per_source", _params(decoder="per_source"))]  # no lower-W or drop-16-bit rows


def test_reshape_at_the_repeated_concat_asks_for_per_source_masks_and_decoder(tmp_path: Path) -> None:
    space = _space(tmp_path)
    out = propose(classify(*RESHAPE), _params(), space)
    assert out[0] == ("mask_mul:per_source", _params(mask_mul="per_source", decoder="per_source"))
    # decoder already per source: only the mask changes
    out = propose(classify(*RESHAPE), _params(decoder="per_source"), space)
    assert out[0] == ("mask_mul:per_source", _params(mask_mul="per_source", decoder="per_source"))
    # a topology failure: no lower-W or drop-16-bit rows (a shorter input does not remove a reshape; they cost the
    # search trials, bench/search_efficiency.py), and with both already per source nothing is left to propose
    assert out == [("mask_mul:per_source", _params(mask_mul="per_source", decoder="per_source"))]
    assert propose(classify(*RESHAPE), _params(decoder="per_source", mask_mul="per_source"), space) == []


def test_reshape_elsewhere_is_not_the_mask_multiply(tmp_path: Path) -> None:
    failure = Failure(
        "compile", "BackendAllocatorException", "reshape_needed",
        "Reshape is needed for layers: conv2, conv3, but adding a reshape has failed.", groups={"layers": "conv2, conv3"},
    )  # fmt: skip
    assert "mask_mul:per_source" not in _rules(propose(failure, _params(), _space(tmp_path)))


def test_hand_made_failure_uses_groups_or_message(tmp_path: Path) -> None:
    space = _space(tmp_path)
    with_groups = Failure("compile", "BackendAllocatorException", "reshape_needed", "", groups={"layers": "concat1"})
    in_message = Failure("compile", "BackendAllocatorException", "reshape_needed", "layers: shortcut1, ew_mult1")
    for failure in (with_groups, in_message):
        assert _rules(propose(failure, _params(), space))[0] == "mask_mul:per_source"


@pytest.mark.parametrize(
    ("extra", "grouped", "reshape"),
    [
        ("", [], []),  # the rewrites are not points of the space
        ("  decoder: [grouped, per_source]\n", [{"decoder": "per_source"}], []),
        ("  mask_mul: [repeat, per_source]\n", [], [{"mask_mul": "per_source"}]),
    ],
)
def test_only_points_of_the_space(tmp_path: Path, extra: str, grouped: list, reshape: list) -> None:
    space = _space(tmp_path, extra)
    params = TrialConfig(norm="gLN", width=16000).to_dict()
    got = [{k: v for k, v in p.items() if params[k] != v} for _, p in propose(classify(*GROUPED), params, space)]
    assert got == grouped
    got = [
        {k: v for k, v in p.items() if params[k] != v}
        for name, p in propose(classify(*RESHAPE), params, space)
        if name == "mask_mul:per_source"
    ]
    assert got == reshape
