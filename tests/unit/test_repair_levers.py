"""The allocator rows of the repair table: levers in the documented order, each tried once, the passing one recorded.

The fake DFC gives the levers no effect (an independent fake would not either), so whether a compile passes after a
lever is decided here by a test double of the attempt; tests/contract/test_repair_levers_fake.py runs the same
ladder through the fake DFC.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import harness.backends.hailo  # noqa: F401 -- registers the Hailo classification rows
from harness.backends import Override, OverrideSet
from harness.failures import Failure, classify
from harness.repair import Attempt, RepairLog, allocator_timeout, next_fix, run_repairs

IO16 = OverrideSet("io16", (Override("precision16", ("input_layer1", "output_layer1")),))
NONE = OverrideSet("none")
COMMON = ["performance_param=max", "resources_param=1.0", "context_switch_param=enabled"]

#: What the real DFC printed (dfc_api.md §11, real_dfc README, HD notes), classified by the Hailo table.
MESSAGES = {
    "agent_infeasible": "Compilation failed: No successful assignments: format_conversion8 errors:\n\tAgent infeasible",
    "memory_capacity": "Compilation failed: Memory units capacity exceeded",
    "no_valid_partition": "Compiler could not find a valid partition to contexts. Most commom error is: Automri "
    "finished with too many resources on context_2 with 62/184 failures.",
    "mapping_failed": "Compilation failed\n[error] Mapping Failed (allocation time: 10m 11s)",
    "mapping_timeout": "Compilation failed\n[error] Mapping Failed (Timeout, allocation time: 31m 42s)",
    "single_context_overflow": "Context switch is disabled, but model could not fit in single context.",
}


def _failure(detail: str) -> Failure:
    f = classify("compile", "BackendAllocatorException", MESSAGES[detail])
    assert f.detail == detail, (f.signature, detail)
    return f


def ladder(f: Failure, start: OverrideSet) -> tuple[list[str], OverrideSet]:
    current, tried, names = start, set(), []
    while (fix := next_fix(f, None, current, tried)) is not None:
        names.append(fix.name)
        tried.add(fix.name)
        current = fix.overrides
    return names, current


@pytest.mark.parametrize(
    ("detail", "expected"),
    [
        ("agent_infeasible", ["drop:precision16", "compression_level=2", *COMMON]),
        ("memory_capacity", ["drop:precision16", "compression_level=2", *COMMON]),
        ("no_valid_partition", ["drop:precision16", "compression_level=2", *COMMON]),
        ("mapping_failed", ["drop:precision16", "compression_level=2", *COMMON]),
        ("mapping_timeout", ["drop:precision16", "compression_level=2", "allocator_param=3804", *COMMON]),
        ("single_context_overflow",
         ["context_switch_param=enabled", "drop:precision16", "compression_level=2", *COMMON[:2]]),
    ],
)  # fmt: skip
def test_lever_order_per_allocator_signature(detail: str, expected: list[str]) -> None:
    names, final = ladder(_failure(detail), IO16)
    assert names == expected
    kinds = [o.kind for o in final.overrides]
    assert "precision16" not in kinds and len(kinds) == len(set(kinds)) == len(expected) - 1  # each lever once
    script_values = {o.kind: o.value for o in final.overrides}
    assert script_values["performance_param"] == "max" and script_values["resources_param"] == 1.0
    assert script_values["context_switch_param"] == "enabled" and script_values["compression_level"] == 2


def test_without_sixteen_bit_the_ladder_starts_at_compression() -> None:
    names, _ = ladder(_failure("agent_infeasible"), NONE)
    assert names == ["compression_level=2", *COMMON]


def test_compression_is_raised_never_lowered_and_set_levers_are_skipped() -> None:
    start = OverrideSet("mine", (Override("compression_level", (), 4), Override("performance_param", (), "max")))
    names, final = ladder(_failure("memory_capacity"), start)
    assert names == ["resources_param=1.0", "context_switch_param=enabled"]
    assert Override("compression_level", (), 4) in final.overrides


def test_a_segment_compile_gets_the_same_levers() -> None:
    f = Failure("compile[seg 2/3]", "BackendAllocatorException", "agent_infeasible", "x errors: Agent infeasible")
    assert ladder(f, NONE)[0] == ["compression_level=2", *COMMON]


@pytest.mark.parametrize(
    ("numbers", "seconds"),
    [({"alloc_m": 31, "alloc_s": 42}, 3804), ({"alloc_m": 10}, 3600), ({"alloc_h": 5}, 36000), ({}, 3600),
     ({"alloc_h": 200}, 7 * 24 * 3600)],
)  # fmt: skip
def test_allocator_timeout_doubles_the_time_seen(numbers: dict[str, float], seconds: int) -> None:
    f = Failure("compile", "BackendAllocatorException", "mapping_timeout", "", numbers)
    assert allocator_timeout(f) == seconds


def _double(passes_with: str | None, detail: str = "agent_infeasible"):
    """The attempt double: fails with ``detail`` until the override set holds a fix named ``passes_with``."""
    seen: list[OverrideSet] = []

    def attempt(ovs: OverrideSet) -> Attempt:
        seen.append(ovs)
        names = {f"{o.kind}={o.value}" for o in ovs.overrides} | (
            {"drop:precision16"} if not any(o.kind == "precision16" for o in ovs.overrides) else set()
        )
        if passes_with is not None and passes_with in names:
            return Attempt(value="hef", seconds=1.0)
        return Attempt(_failure(detail), seconds=1.0)

    return attempt, seen


@pytest.mark.parametrize("lever", ["compression_level=2", "performance_param=max", "context_switch_param=enabled"])
def test_the_lever_that_made_the_compile_pass_is_recorded(lever: str, tmp_path: Path) -> None:
    attempt, seen = _double(lever)
    out = run_repairs(attempt, IO16, max_repairs=6)
    assert out.succeeded and out.value == "hef"
    assert out.log.compile_lever == lever
    assert out.log.tags()["repair.compile_lever"] == lever
    txt, js = out.log.write(tmp_path)
    assert json.loads(js.read_text())["compile_lever"] == lever
    assert f"compile passed after {lever}" in txt.read_text().splitlines()[2]
    order = ["drop:precision16", "compression_level=2", *COMMON]
    assert [e["fix"] for e in out.log.entries][:-1] == order[: order.index(lever) + 1]


def test_levers_exhausted_stop_without_a_lever() -> None:
    attempt, seen = _double(None, "mapping_timeout")
    out = run_repairs(attempt, IO16, max_repairs=10)
    assert not out.succeeded and out.stop_reason == "repeated_signature"
    assert len(seen) == 7  # the first attempt + six levers, each once
    assert out.log.compile_lever is None and "repair.compile_lever" not in out.log.tags()


def test_a_fix_of_an_optimize_failure_is_not_a_compile_lever() -> None:
    log = RepairLog()
    text = "Quantization failed in layer convtas/ne_activation_avgpool2 due to unsupported required slope"
    neg = classify("optimize", "NegativeSlopeExponentNonFixable", text)
    from harness.repair import Fix

    log.record(1, neg, "convtas/avgpool2", Fix("negative_exponent:convtas/avgpool2", NONE, "x"))
    log.record(2, None)
    assert log.succeeded and log.compile_lever is None
    log2 = RepairLog()
    log2.record(1, _failure("agent_infeasible"), None, Fix("performance_param=max", NONE, "x"))
    log2.record(2, None)
    assert log2.compile_lever == "performance_param=max"


SYNTAX = "Parsing failed at:\n>!<performance_param(compiler_optimization_level=max)"


def test_a_rejected_lever_is_taken_back_and_the_next_one_follows() -> None:
    """A DFC that spells a lever otherwise: the script error reverts it, the loop goes on to the next lever."""
    seen: list[OverrideSet] = []

    def attempt(ovs: OverrideSet) -> Attempt:
        seen.append(ovs)
        kinds = {o.kind for o in ovs.overrides}
        if "performance_param" in kinds:
            return Attempt(classify("optimize", "BackendScriptParserException", SYNTAX))
        if "context_switch_param" in kinds:
            return Attempt(value="hef")
        return Attempt(_failure("agent_infeasible"))

    out = run_repairs(attempt, IO16, max_repairs=8)
    assert out.succeeded, out.log.to_text()
    assert [e["fix"] for e in out.log.entries] == [
        "drop:precision16",
        "compression_level=2",
        "performance_param=max",
        "revert:performance_param",
        "resources_param=1.0",
        "context_switch_param=enabled",
        None,
    ]
    assert out.log.entries[3]["signature"] == "optimize:BackendScriptParserException:script_syntax"
    assert "performance_param" not in {o.kind for o in out.overrides.overrides}
    assert out.log.compile_lever == "context_switch_param=enabled"


def test_a_script_error_without_a_lever_has_no_fix() -> None:
    other = classify("optimize", "BackendScriptParserException", "Parsing failed at:\n>!<quantization_param(conv1 x)")
    assert next_fix(other, None, IO16, set()) is None
    rejected = classify("optimize", "BackendScriptParserException", SYNTAX)
    assert next_fix(rejected, None, NONE, set()) is None  # nothing of that kind to take back


def test_the_trials_mlflow_tags_carry_the_lever() -> None:
    """What the pipeline stores (``info["repair"]`` = the log's tags) becomes ``hefsweep.repair.compile_lever``."""
    from harness.pipeline import TrialResult
    from harness.sweep import _log_result

    attempt, _ = _double("performance_param=max")
    out = run_repairs(attempt, NONE, max_repairs=6)
    logged: dict[str, object] = {}

    class Tracker:
        def log_result(self, run_id: str, tags: dict, metrics: dict, files: list) -> None:
            logged.update(tags)

    info = {"repair": {**out.log.tags(), "final_override_set": out.overrides.to_dict()}}
    _log_result(Tracker(), "run", TrialResult("ok", info=info))  # type: ignore[arg-type]
    assert logged["hefsweep.repair.compile_lever"] == "performance_param=max"
    assert logged["hefsweep.repair.stop_reason"] == "success"
