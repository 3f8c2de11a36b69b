from __future__ import annotations

from pathlib import Path

import pytest

from harness.failures import classify
from harness.feasibility import UNKNOWN_VIOLATION, violation
from harness.followups import propose
from harness.space import load_space


def test_violation_is_graded_from_the_failure() -> None:
    import harness.backends.hailo  # noqa: F401 - registers the Hailo rules

    ne = classify(
        "optimize",
        "NegativeSlopeExponentNonFixable",
        "Quantization failed in layer convtas/ne_activation_avgpool6 due to unsupported required slope. "
        "Desired shift is 10.0, but op has only 8 data bits",
    )
    assert ne.numbers["desired_shift"] == 10.0 and ne.numbers["data_bits"] == 8.0
    assert violation(ne) == 4.0  # 2 (an optimize failure) + 2 missing bits
    fill = classify("calibrate", "FillPolicyError", "x: clip ... expected clips of at least 16000 samples for policy 'crop'")
    gate = classify("export", "FidelityGateError", "SI-SNR 40.0 dB of ONNX vs torch is below the 60 dB gate")
    crash = classify("compile", "Crash", "child died by SIGSEGV")
    unknown = classify("compile", "Weird", "???")
    alloc = classify("compile", "BackendAllocatorException", "Compilation failed: x\nconv1 errors: Agent infeasible")
    ne3 = classify("optimize", "NegativeSlopeExponentNonFixable", ne.message.replace("is 10.0", "is 11.0"))
    # a later stage is closer to feasible; within a stage the parsed numbers grade
    assert violation(alloc) < violation(fill) < violation(ne) < violation(ne3) < violation(gate) < violation(crash)
    assert violation(crash) < violation(unknown) == UNKNOWN_VIOLATION
    assert violation(gate) == 8.0  # 6 + (60 - 40) / 10


def test_compile_failures_are_graded_below_optimize_failures() -> None:
    import harness.backends.hailo  # noqa: F401 - registers the Hailo rules

    def v(stage: str, exc: str, msg: str) -> float:
        f = classify(stage, exc, msg)
        assert f.known, msg
        return violation(f)

    alloc = "BackendAllocatorException"
    agent = v("compile", alloc, "Compilation failed: No successful assignments: format_conversion8 errors:\n\tAgent infeasible")
    memory = v("compile", alloc, "Memory units capacity exceeded")
    partition = v("compile", alloc, "Compilation failed: Compiler could not find a valid partition to contexts.")
    mapping = v("compile", alloc, "Mapping Failed (allocation time: 10m 11s)")
    timeout = v("compile", alloc, "Mapping Failed (Timeout, allocation time: 31m 42s)")
    other = v("compile", "BackendRuntimeException", "Model requires quantized weights in order to run on HW")
    deconv = v("compile", alloc, "Super deconv is not supported with groups")
    reshape = v("compile", alloc, "Reshape is needed for layers: conv2, conv3, but adding a reshape has failed.")
    crash = v("compile", alloc, "Compilation failed with unexpected crash")
    bare = v("compile", alloc, "Compilation failed")
    shift = v(
        "optimize",
        "NegativeSlopeExponentNonFixable",
        "Quantization failed in layer convtas/ne_activation_avgpool6 due to unsupported required slope. "
        "Desired shift is 8.0, but op has only 8 data bits",
    )
    calib = v("optimize", "ValueError", "Couldn't detect CalibrationDataType")
    parse = v("translate", "ParsingWithRecommendationException", "Parsing failed. UnsupportedConv3DError in op /c/Conv")
    assert agent == memory == 1.0 < partition == mapping < timeout < other < deconv == reshape < crash == bare
    assert bare < 2.0 <= shift < calib < parse < UNKNOWN_VIOLATION / 2
    # the allocator's own timeout is an allocation verdict, not a stage timeout
    assert timeout < violation(classify("compile", "Timeout", "did not finish within 3600 s"))


def test_followups_are_points_of_the_space(tmp_path: Path) -> None:
    p = tmp_path / "s.yaml"
    p.write_text(
        "checkpoint: c.pt\ndata: {calibration: c, evaluation: e}\n"
        "dimensions:\n  prelu: [keep, relu]\n  norm: [gLN, cLN]\n  width: [2048, 8000, 16000]\n"
        "  calib_clip_length: [3200, 16000]\n  calib_fill: [pad, crop]\n"
    )
    space = load_space(p)
    params = {"prelu": "keep", "norm": "gLN", "width": 16000, "calib_clip_length": 3200, "calib_fill": "crop"}
    msg = "Quantization failed in layer convtas/ne_activation_{} due to unsupported required slope. Desired shift is 10.0, but op has only 8 data bits"
    ne = classify("optimize", "NegativeSlopeExponentNonFixable", msg.format("avgpool2"))
    assert [r for r, _ in propose(ne, params, space)] == ["norm:cLN"]  # the layer is a norm's reduction
    ne_act = classify("optimize", "NegativeSlopeExponentNonFixable", msg.format("prelu1"))
    assert [r for r, _ in propose(ne_act, params, space)] == ["prelu:relu"]
    unnamed = classify("optimize", "NegativeSlopeExponentNonFixable", "Desired shift is 10.0, but op has only 8 data bits")
    assert [r for r, _ in propose(unnamed, params, space)] == ["norm:cLN", "prelu:relu"]
    alloc = classify("compile", "BackendAllocatorException", "Compilation failed: conv1 errors: Agent infeasible")
    assert propose(alloc, params, space) == [
        ("width:smallest", {**params, "width": 2048}),
        ("width:lower", {**params, "width": 8000}),
    ]
    fill = classify("calibrate", "FillPolicyError", "expected clips of at least 16000 samples for policy 'crop'")
    assert propose(fill, params, space) == [("calib:match_width", {**params, "calib_clip_length": 16000})]
    assert propose(ne, {**params, "norm": "cLN", "prelu": "relu"}, space) == []


@pytest.mark.parametrize("db", ["nan", "-inf", "inf"])
def test_a_non_finite_fidelity_grades_finitely(db: str) -> None:
    """A fidelity failure with SI-SNR nan/inf is a finite violation: Optuna's set_constraint refuses NaN, which used
    to kill the whole sweep (and the cached failure re-triggered it on every rerun)."""
    import math

    f = classify("export", "FidelityGateError", f"exported ONNX vs torch: SI-SNR {db} dB (max abs error nan); expected >= 60 dB")
    assert f.signature == "export:FidelityGateError:si_snr_below_gate"
    v = violation(f)
    assert math.isfinite(v) and v >= 6.0
