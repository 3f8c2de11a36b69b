"""ddmin over override atoms, with scripted predicates (no pipeline)."""

from __future__ import annotations

import itertools
import math
from typing import Any

import pytest

from harness.backends import Override, OverrideSet
from harness.minimize import (
    NotPassing,
    assemble,
    minimize_overrides,
    override_set_from_dict,
    split_atoms,
    trial_config_from_params,
)

EIGHT = OverrideSet("eight", tuple(Override("precision16", (name,)) for name in "ABCDEFGH"))


def labels(ovs: OverrideSet) -> set[str]:
    return {a.label() for a in split_atoms(ovs)}


def scripted(need: set[str]) -> Any:
    """A predicate: passes iff the set contains every atom of ``need``; counts calls."""

    def test(ovs: OverrideSet) -> bool:
        test.calls += 1  # type: ignore[attr-defined]
        return need <= labels(ovs)

    test.calls = 0  # type: ignore[attr-defined]
    return test


def one_minimal(result: OverrideSet, test: Any) -> bool:
    atoms = split_atoms(result)
    return all(not test(assemble(result, [a for a in atoms if a != drop])) for drop in atoms)


def test_passes_iff_a_and_c() -> None:
    log: list[dict] = []
    test = scripted({"precision16:A", "precision16:C"})
    result = minimize_overrides(test, EIGHT, log.append)
    assert labels(result) == {"precision16:A", "precision16:C"}
    assert result.name == "eight"
    assert one_minimal(result, scripted({"precision16:A", "precision16:C"}))
    # one log line per probe, no subset probed twice, within the bound
    assert len(log) == test.calls
    assert len({frozenset(e["atoms"]) for e in log}) == len(log)
    k = 8
    assert len(log) <= k * k + 3 * k + 2
    assert len(log) <= 2 + 2 * 2 * math.ceil(math.log2(k)) + 2 * 2  # about 2 * |need| * log2(k)
    assert [e["phase"] for e in log[:2]] == ["full", "empty"]
    assert log[0]["passed"] and not log[1]["passed"]
    assert {"probe", "granularity", "n_atoms", "overrides", "seconds"} <= set(log[0])


@pytest.mark.parametrize("need", [set(), {"A"}, {"H"}, {"B", "G"}, {"A", "D", "E"}, set("ABCDEFGH")])
def test_finds_the_needed_atoms(need: set[str]) -> None:
    full = {f"precision16:{n}" for n in need}
    log: list[dict] = []
    result = minimize_overrides(scripted(full), EIGHT, log.append)
    assert labels(result) == full
    assert len(log) <= 8 * 8 + 3 * 8 + 2


def test_one_minimal_for_disjunctive_predicates() -> None:
    """Passes with (A and B) or (C and D and E): ddmin returns one of them, 1-minimal, not necessarily the smallest."""

    def test(ovs: OverrideSet) -> bool:
        s = labels(ovs)
        return {"precision16:A", "precision16:B"} <= s or {"precision16:C", "precision16:D", "precision16:E"} <= s

    result = minimize_overrides(test, EIGHT, lambda e: None)
    assert labels(result) in ({"precision16:A", "precision16:B"}, {"precision16:C", "precision16:D", "precision16:E"})
    assert one_minimal(result, test)


def test_worst_case_bound_over_all_monotone_needs_of_six() -> None:
    six = OverrideSet("six", EIGHT.overrides[:6])
    names = [f"precision16:{n}" for n in "ABCDEF"]
    for r in range(7):
        for need in itertools.combinations(names, r):
            test = scripted(set(need))
            result = minimize_overrides(test, six, lambda e: None)
            assert labels(result) == set(need)
            assert test.calls <= 6 * 6 + 3 * 6 + 2


def test_split_per_layer_and_reassembled_in_original_shape() -> None:
    ovs = OverrideSet(
        "mix",
        (
            Override("precision16", ("input", "output", "*Sigmoid*", "input")),
            Override("optimization_level", (), 2),
            Override("negative_exponent", ("conv3",)),
        ),
    )
    atoms = split_atoms(ovs)
    assert [a.label() for a in atoms] == [
        "precision16:input",
        "precision16:output",
        "precision16:*Sigmoid*",
        "optimization_level=2",
        "negative_exponent:conv3",
    ]
    assert assemble(ovs, atoms) == OverrideSet(
        "mix",
        (
            Override("precision16", ("input", "output", "*Sigmoid*")),
            Override("optimization_level", (), 2),
            Override("negative_exponent", ("conv3",)),
        ),
    )
    assert assemble(ovs, [atoms[2], atoms[0]]) == OverrideSet("mix", (Override("precision16", ("input", "*Sigmoid*")),))
    # the probe of the full set is the original set (duplicate patterns aside), so it reuses the trial's stages
    seen: list[OverrideSet] = []
    minimize_overrides(lambda s: seen.append(s) or "precision16:output" in labels(s), ovs, lambda e: None)
    assert seen[0] == assemble(ovs, atoms)
    seen.clear()
    minimize_overrides(lambda s: seen.append(s) or True, EIGHT, lambda e: None)
    assert seen[0] == EIGHT
    assert override_set_from_dict(assemble(ovs, atoms).to_dict()) == assemble(ovs, atoms)


def test_failing_full_set_is_refused() -> None:
    with pytest.raises(NotPassing, match="does not pass"):
        minimize_overrides(lambda s: False, EIGHT, lambda e: None)


def test_empty_set_passing_needs_two_probes() -> None:
    log: list[dict] = []
    assert minimize_overrides(lambda s: True, EIGHT, log.append).overrides == ()
    assert len(log) == 2


def test_max_probes_returns_a_passing_set() -> None:
    need = {"precision16:A", "precision16:C"}
    log: list[dict] = []
    result = minimize_overrides(scripted(need), EIGHT, log.append, max_probes=4)
    assert len(log) == 4
    assert need <= labels(result)
    with pytest.raises(ValueError):
        minimize_overrides(scripted(need), EIGHT, log.append, max_probes=0)


def test_trial_config_from_mlflow_params() -> None:
    cfg = trial_config_from_params(
        {"prelu": "maxmin", "norm": "None", "clamp": "8.0", "width": "4000", "calib_clip_length": "None",
         "calib_size": "4", "override_set": "io16", "backend": "ort"}
    )  # fmt: skip
    assert cfg.prelu == "maxmin" and cfg.norm is None and cfg.clamp == 8.0 and cfg.width == 4000
    assert cfg.calib_clip_length is None and cfg.calib_size == 4 and cfg.override_set == "io16"


def test_an_unreadable_trial_json_is_one_line_not_the_named_set(tmp_path: Any) -> None:
    from types import SimpleNamespace

    from harness.errors import HarnessError
    from harness.minimize import _trial_override_set

    space = SimpleNamespace(override_sets={"none": []}, override_set=lambda name: OverrideSet(name, ()))

    class Down:
        def download_artifacts(self, run_id: str, path: str, dst: str) -> str:
            raise OSError("connection refused")

    with pytest.raises(HarnessError, match=r"trial.json of run r1: cannot be read \(OSError: connection refused\)"):
        _trial_override_set(Down(), "r1", space, "none")

    class Garbled:
        def download_artifacts(self, run_id: str, path: str, dst: str) -> str:
            (tmp_path / "trial.json").write_text("[1, 2")
            return str(tmp_path / "trial.json")

    with pytest.raises(HarnessError, match="trial.json of run r2: cannot be read"):
        _trial_override_set(Garbled(), "r2", space, "none")

    class Plain:
        def download_artifacts(self, run_id: str, path: str, dst: str) -> str:
            (tmp_path / "trial.json").write_text('{"status": "ok"}')
            return str(tmp_path / "trial.json")

    assert _trial_override_set(Plain(), "r3", space, "none").name == "none"  # no repair: the named set
