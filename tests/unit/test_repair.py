"""The repair table and loop: pure functions over failures and override sets (no backend involved)."""

from __future__ import annotations

import json
from pathlib import Path

from harness.backends import Override, OverrideSet
from harness.failures import Failure, classify
from harness.repair import Attempt, RepairLog, avgpool_division_factor, family_pattern, next_fix, no_fix_reason, run_repairs


def neg_slope(layer: str) -> Failure:
    named = f"convtas/ne_activation_{layer}"
    msg = f"Quantization failed in layer {named} due to unsupported required slope. Desired shift is 10.0, but op has only 8 data bits."
    nums = {"desired_shift": 10.0, "data_bits": 8.0}
    groups = {"layer": named, "desired_shift": "10.0", "data_bits": "8"}
    return Failure("optimize", "NegativeSlopeExponentNonFixable", named, msg, nums, groups)


AGENT = Failure("compile", "BackendAllocatorException", "agent_infeasible", "dw66 errors: Agent infeasible", {}, {"layer": "dw66"})


def test_family_pattern() -> None:
    assert family_pattern("convtas/avgpool6") == "convtas/avgpool*"
    assert family_pattern("ew_add12") == "ew_add*"
    assert family_pattern("convtas/output") is None


def ladder(f: Failure, layer: str | None) -> tuple[list[str], OverrideSet]:
    current, tried, names = OverrideSet("none"), set(), []
    while (fix := next_fix(f, layer, current, tried)) is not None:
        names.append(fix.name)
        tried.add(fix.name)
        current = fix.overrides
    return names, current


def test_negative_exponent_then_avgpool_reduction_then_sixteen_bit_then_clipping_on_the_resolved_layer() -> None:
    names, current = ladder(neg_slope("avgpool2"), "convtas/avgpool2")
    assert names == [
        "negative_exponent:convtas/avgpool2",
        "global_avgpool_reduction:convtas/avgpool2",  # before 16-bit: the model zoo's fix for large avgpools
        "precision16:convtas/avgpool2",
        "activation_clipping:convtas/avgpool2",
    ]
    assert current.name == "none+r4"
    kinds = [o.kind for o in current.overrides]
    assert kinds == ["negative_exponent", "global_avgpool_reduction", "precision16", "activation_clipping"]
    assert current.overrides[1].value == 4  # 10 vs 8 data bits: 2 bits missing -> pool in steps of 4
    assert current.overrides[-1].value == 99.99


def test_avgpool_reduction_only_on_avgpools_with_a_factor_from_the_missing_bits() -> None:
    names, _ = ladder(neg_slope("ew_mult1"), "convtas/ew_mult1")
    assert names == ["negative_exponent:convtas/ew_mult1", "precision16:convtas/ew_mult1", "activation_clipping:convtas/ew_mult1"]
    assert avgpool_division_factor(neg_slope("avgpool6")) == 4
    eleven = Failure("optimize", "NegativeSlopeExponentNonFixable", "x", "", {"desired_shift": 11.0, "data_bits": 8.0})
    sixteen = Failure("optimize", "NegativeSlopeExponentNonFixable", "x", "", {"desired_shift": 16.0, "data_bits": 8.0})
    equal = Failure("optimize", "NegativeSlopeExponentNonFixable", "x", "", {"desired_shift": 8.0, "data_bits": 8.0})
    unnumbered = Failure("optimize", "NegativeSlopeExponentNonFixable", "x", "")
    assert [avgpool_division_factor(f) for f in (eleven, sixteen, equal, unnumbered)] == [8, 16, 2, 4]
    fix = next_fix(eleven, "convtas/avgpool6", OverrideSet("ne", (Override("negative_exponent", ("convtas/avgpool6",)),)), set())
    assert fix is not None and fix.overrides.overrides[-1] == Override("global_avgpool_reduction", ("convtas/avgpool6",), 8)


def test_failure_moving_to_a_sibling_escalates_to_the_family() -> None:
    after_one = OverrideSet("none+r1", (Override("negative_exponent", ("convtas/avgpool2",)),))
    fix = next_fix(neg_slope("avgpool4"), "convtas/avgpool4", after_one, {"negative_exponent:convtas/avgpool2"})
    assert fix is not None and fix.name == "negative_exponent:convtas/avgpool*"
    assert fix.overrides.overrides[-1] == Override("negative_exponent", ("convtas/avgpool*",))
    # a layer already covered by a glob gets the next kind instead
    covered = fix.overrides
    tried = {fix.name, "negative_exponent:convtas/avgpool2"}
    nxt = next_fix(neg_slope("avgpool6"), "convtas/avgpool6", covered, tried)
    assert nxt is not None and nxt.name == "global_avgpool_reduction:convtas/avgpool6"
    # ... and when the failure moves on again, the reduction goes to the family before any 16-bit
    moved = next_fix(neg_slope("avgpool8"), "convtas/avgpool8", nxt.overrides, {*tried, nxt.name})
    assert moved is not None and moved.name == "global_avgpool_reduction:convtas/avgpool*"
    assert moved.overrides.overrides[-1] == Override("global_avgpool_reduction", ("convtas/avgpool*",), 4)
    last = next_fix(neg_slope("avgpool8"), "convtas/avgpool8", moved.overrides, {*tried, nxt.name, moved.name})
    assert last is not None and last.name == "precision16:convtas/avgpool8"


def test_unresolved_layer_gets_no_layer_fix() -> None:
    assert next_fix(neg_slope("mul_and_add78"), None, OverrideSet("none"), set()) is None


def test_allocation_failures_drop_sixteen_bit_then_compress() -> None:
    cur = OverrideSet("io16", (Override("precision16", ("input_layer1", "output_layer1")), Override("optimization_level", (), 2)))
    first = next_fix(AGENT, "convtas/dw66", cur, set())
    assert first is not None and first.name == "drop:precision16"
    assert [o.kind for o in first.overrides.overrides] == ["optimization_level"]
    second = next_fix(AGENT, "convtas/dw66", first.overrides, {first.name})
    assert second is not None and second.name == "compression_level=2"
    third = next_fix(AGENT, "convtas/dw66", second.overrides, {first.name, second.name})
    assert third is not None and third.name == "performance_param=max"  # then the compiler levers (test_repair_levers)


def test_absent_target_is_retargeted_to_its_layer_or_dropped() -> None:
    bad = OverrideSet("hd", (Override("negative_exponent", ("convtas/ne_activation_avgpool6", "convtas/conv1")),))
    f = classify("optimize", "OverrideTargetNotFound", "Layer 'convtas/ne_activation_avgpool6' not found in model: no layer matches")
    fix = next_fix(f, "convtas/avgpool6", bad, set())
    assert fix is not None and fix.overrides.overrides == (Override("negative_exponent", ("convtas/avgpool6", "convtas/conv1")),)
    msg = "Layer ne_activation_avgpool6 not found in model"
    dfc = Failure("optimize", "BackendScriptParserException", "ne_activation_avgpool6", msg, {}, {"layer": "ne_activation_avgpool6"})
    only = OverrideSet("hd", (Override("negative_exponent", ("ne_activation_avgpool6",)),))
    drop = next_fix(dfc, None, only, set())
    assert drop is not None and drop.overrides.overrides == ()  # never left as an empty (= every layer) override


def test_unknown_failures_have_no_fix() -> None:
    f = classify("compile", "WeirdError", "odd")
    assert next_fix(f, None, OverrideSet("none"), set()) is None


def scripted(sequence: list[Failure | None], seen: list[OverrideSet]):
    """An attempt function that replays failures and records the override sets it was called with."""
    it = iter(sequence)

    def attempt(ovs: OverrideSet) -> Attempt:
        seen.append(ovs)
        f = next(it)
        layer = f"convtas/{f.detail.rsplit('_', 1)[-1]}" if f is not None and "ne_activation" in f.detail else None
        return Attempt(f, layer, seconds=1.5, value="hef" if f is None else None)

    return attempt


def test_loop_succeeds_after_the_signature_moves(tmp_path: Path) -> None:
    seen: list[OverrideSet] = []
    out = run_repairs(scripted([neg_slope("avgpool2"), neg_slope("avgpool4"), AGENT, None], seen), OverrideSet("none"))
    assert out.succeeded and out.stop_reason == "success" and out.value == "hef"
    assert [len(s.overrides) for s in seen] == [0, 1, 2, 3]
    assert [e["fix"] for e in out.log.entries] == [
        "negative_exponent:convtas/avgpool2",
        "negative_exponent:convtas/avgpool*",  # the failure moved to a sibling: fix the family at once
        "compression_level=2",  # nothing 16-bit to drop, so compress
        None,
    ]
    assert seen[-1].overrides[-1] == Override("compression_level", (), 2)
    log = out.log
    assert log.first_signature == "optimize:NegativeSlopeExponentNonFixable:convtas/ne_activation_avgpool2"
    assert log.final_signature is None and log.changed and log.succeeded
    txt, js = log.write(tmp_path)
    data = json.loads(js.read_text())
    assert data["iterations"] == 4 and data["signature_changed"] is True and data["stop_reason"] == "success"
    assert [e["iteration"] for e in data["entries"]] == [1, 2, 3, 4]
    assert {"iteration", "stage", "signature", "layer", "resolved_layer", "fix", "seconds"} <= set(data["entries"][0])
    assert data["entries"][0]["resolved_layer"] == "convtas/avgpool2" and data["entries"][0]["seconds"] == 1.5
    assert len(txt.read_text().splitlines()) == 3 + 4
    assert log.tags()["repair.signature_changed"] == "true" and log.tags()["repair.final_signature"] == "success"


def test_loop_stops_on_a_repeated_signature_without_new_fixes() -> None:
    seen: list[OverrideSet] = []
    same = neg_slope("avgpool2")
    out = run_repairs(scripted([same] * 10, seen), OverrideSet("none"), max_repairs=10)
    # the ladder for one layer: negative_exponent, avgpool reduction, 16-bit, clipping; then nothing new -> stop
    assert out.stop_reason == "repeated_signature" and not out.succeeded
    assert len(seen) == 5 and out.log.changed is False
    assert out.log.entries[-1]["fix"] is None


def test_loop_stops_on_a_cycle_and_on_max_repairs() -> None:
    a, b = neg_slope("avgpool2"), AGENT
    cyc = run_repairs(scripted([a, b, a, None], []), OverrideSet("io16", (Override("precision16", ("x",)),)))
    assert cyc.stop_reason == "repeated_signature" and len(cyc.log.entries) == 3
    many = [neg_slope(f"avgpool{i}") for i in range(1, 20)]
    capped = run_repairs(scripted(many, []), OverrideSet("none"), max_repairs=2)
    assert capped.stop_reason == "max_repairs" and len(capped.log.entries) == 3
    unfixable = run_repairs(scripted([classify("compile", "WeirdError", "odd")], []), OverrideSet("none"))
    assert unfixable.stop_reason == "no_fix"


def test_log_can_be_driven_by_hand() -> None:
    log = RepairLog()
    log.record(1, AGENT, "convtas/dw66", None, 3.0)
    log.finish("no_fix")
    assert log.tags() == {
        "repair.first_signature": "compile:BackendAllocatorException:agent_infeasible",
        "repair.final_signature": "compile:BackendAllocatorException:agent_infeasible",
        "repair.signature_changed": "false",
        "repair.iterations": "1",
        "repair.stop_reason": "no_fix",
    }


def allocator(detail: str, message: str = "") -> Failure:
    return Failure("compile", "BackendAllocatorException", detail, message or detail)


IO16 = OverrideSet("io16", (Override("precision16", ("input_layer1", "output_layer1")),))


def test_every_allocator_failure_drops_sixteen_bit_then_compresses() -> None:
    details = ["agent_infeasible", "memory_capacity", "no_valid_partition", "mapping_failed", "mapping_timeout"]
    for detail in details:
        names, current = ladder_from(allocator(detail), IO16)
        assert names[:2] == ["drop:precision16", "compression_level=2"], detail  # the levers after: test_repair_levers
        assert Override("compression_level", (), 2) in current.overrides and len(current.overrides) == len(names) - 1


def ladder_from(f: Failure, start: OverrideSet, layer: str | None = None) -> tuple[list[str], OverrideSet]:
    current, tried, names = start, set(), []
    while (fix := next_fix(f, layer, current, tried)) is not None:
        names.append(fix.name)
        tried.add(fix.name)
        current = fix.overrides
    return names, current


def test_topology_failures_and_crashes_stop_at_once_with_the_reason() -> None:
    for detail in ("grouped_deconv", "reshape_needed", "unexpected_crash", "compilation_failed"):
        f = allocator(detail)
        assert next_fix(f, "convtas/deconv1", IO16, set()) is None, detail  # never a generic allocator fix
        seen: list[OverrideSet] = []
        out = run_repairs(scripted([f], seen), IO16)
        assert out.stop_reason == "no_fix" and len(seen) == 1 and out.log.entries[-1]["fix"] is None
        assert "no model-script lever" in (out.log.stop_note or "")
        assert out.log.to_dict()["stop_note"] == out.log.stop_note
        assert "no model-script lever" in out.log.to_text().splitlines()[0]
        assert out.log.tags()["repair.stop_note"].startswith("no model-script lever")


def test_a_topology_failure_after_repairs_ends_the_loop() -> None:
    reshape = allocator("reshape_needed", "Reshape is needed for layers: conv2, conv3, but adding a reshape has failed.")
    out = run_repairs(scripted([neg_slope("avgpool2"), reshape, None], []), OverrideSet("none"))
    assert out.stop_reason == "no_fix" and [e["fix"] for e in out.log.entries] == ["negative_exponent:convtas/avgpool2", None]
    assert out.log.final_signature == "compile:BackendAllocatorException:reshape_needed"


def test_no_fix_reasons() -> None:
    weird = classify("compile", "WeirdError", "odd")
    assert no_fix_reason(weird, OverrideSet("none"), set()) == "no rule of the repair table matches this signature"
    tried = {"drop:precision16", "compression_level=2"}
    assert no_fix_reason(AGENT, OverrideSet("none"), tried).startswith("every applicable fix was tried")
    assert "layer" in no_fix_reason(neg_slope("avgpool2"), OverrideSet("none"), set(), resolved_layer=None)
    capped = run_repairs(scripted([neg_slope(f"avgpool{i}") for i in range(1, 9)], []), OverrideSet("none"), max_repairs=1)
    assert capped.stop_reason == "max_repairs" and capped.log.stop_note == "1 fixes applied, the limit"
