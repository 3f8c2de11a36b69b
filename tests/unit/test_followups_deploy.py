"""Follow-ups after an allocator failure the levers did not fix: a smaller time tile, more segments (space points)."""

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
checkpoint: ck.pt
backend: hailo
data: {{calibration: cal, evaluation: ev}}
dimensions:
  width: 16000
{extra}
"""
AGENT = ("compile", "BackendAllocatorException", "Compilation failed\n[error] conv3_dc errors: Agent infeasible")


def _space(tmp_path: Path, extra: str) -> SearchSpace:
    p = tmp_path / "s.yaml"
    p.write_text(SPACE.format(extra=extra))
    return load_space(p)


def _params(**changes: Any) -> dict[str, Any]:
    return TrialConfig(width=16000, **changes).to_dict()


def _deploy(out: list[tuple[str, dict[str, Any]]]) -> list[tuple[str, dict[str, Any]]]:
    base = _params()
    return [(n, {k: v for k, v in p.items() if base.get(k) != v}) for n, p in out if n.startswith("deploy:")]


DEPLOY = "  tile_width: [null, 2048, 3200, 8000]\n  segments: [1, 2, 3]\n"


def test_untiled_single_hef_gets_the_largest_tile_and_two_segments(tmp_path: Path) -> None:
    out = propose(classify(*AGENT), _params(), _space(tmp_path, DEPLOY))
    assert _deploy(out) == [("deploy:tile_width", {"tile_width": 8000}), ("deploy:segments", {"segments": 2})]


def test_each_step_goes_one_value_further(tmp_path: Path) -> None:
    space = _space(tmp_path, DEPLOY)
    out = propose(classify(*AGENT), _params(tile_width=3200, segments=2), space)
    got = {n: p for n, p in out if n.startswith("deploy:")}
    assert got["deploy:tile_width"]["tile_width"] == 2048 and got["deploy:tile_width"]["segments"] == 2
    assert got["deploy:segments"]["segments"] == 3 and got["deploy:segments"]["tile_width"] == 3200
    # at the space's ends there is nothing further
    assert _deploy(propose(classify(*AGENT), _params(tile_width=2048, segments=3), space)) == []


def test_ranges_are_spaces_too(tmp_path: Path) -> None:
    extra = "  tile_width: {low: 1024, high: 4096, step: 1024}\n  segments: {low: 1, high: 4}\n"
    out = propose(classify(*AGENT), _params(), _space(tmp_path, extra))
    assert _deploy(out) == [("deploy:tile_width", {"tile_width": 4096}), ("deploy:segments", {"segments": 2})]


def test_nothing_when_the_space_has_no_deployment_dimensions(tmp_path: Path) -> None:
    assert _deploy(propose(classify(*AGENT), _params(), _space(tmp_path, ""))) == []


@pytest.mark.parametrize(
    ("failure", "proposed"),
    [
        (Failure("compile", "BackendAllocatorException", "memory_capacity", ""), True),
        (Failure("compile", "BackendAllocatorException", "no_valid_partition", ""), True),
        (Failure("compile", "BackendAllocatorException", "mapping_timeout", ""), True),
        (Failure("compile", "BackendAllocatorException", "single_context_overflow", ""), True),
        (Failure("compile[seg 1/2]", "BackendAllocatorException", "agent_infeasible", ""), True),
        (Failure("compile", "BackendAllocatorException", "grouped_deconv", ""), False),  # a topology, not a size
        (Failure("compile", "BackendAllocatorException", "reshape_needed", ""), False),
        (Failure("optimize", "NegativeSlopeExponentNonFixable", "convtas/avgpool2", ""), False),
    ],
)
def test_only_the_allocator_resource_verdicts(tmp_path: Path, failure: Failure, proposed: bool) -> None:
    got = _deploy(propose(failure, _params(), _space(tmp_path, DEPLOY)))
    assert bool(got) is proposed, failure.signature
