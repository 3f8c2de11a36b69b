"""Split HEFs (harness/segments.py): the plan's cuts on the tiny model, the float chain equals the whole model, the
stage names of a failing segment, and an ONNX Runtime split trial end to end."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from harness.backends._ort import run_onnx
from harness.errors import ConfigError
from harness.failures import classify
from harness.segments import SegmentPlan, capture_boundaries, cut_candidates, plan_segments, run_float_chain


@pytest.fixture(scope="module")
def tiny_onnx(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny conftest model (2 TCN blocks) exported at W=2048."""
    import torch

    from harness.export import export_onnx
    from harness.model import ConvTasNet4D, ConvTasNetConfig
    from tests.conftest import TINY_ARGS

    torch.manual_seed(0)
    model = ConvTasNet4D(ConvTasNetConfig.from_model_args(TINY_ARGS)).eval()
    path = tmp_path_factory.mktemp("seg") / "tiny.onnx"
    export_onnx(model, 2048, path)
    return path


def _si_snr_db(est: np.ndarray, ref: np.ndarray) -> float:
    noise = float(np.sum((est.astype(np.float64) - ref) ** 2))
    return float("inf") if noise == 0 else 10 * np.log10(float(np.sum(ref.astype(np.float64) ** 2)) / noise)


def test_candidates_are_the_module_boundaries(tiny_onnx: Path) -> None:
    import onnx

    labels = [label for _, label in cut_candidates(onnx.load(str(tiny_onnx)))]
    assert labels == ["encoder|masker", "TCN.0|TCN.1", "masker|decoder"]


@pytest.mark.parametrize("k", [1, 2, 3, 4])
def test_plan_cuts_k_segments_whose_tensors_chain(tiny_onnx: Path, k: int) -> None:
    plan = plan_segments(tiny_onnx, k)
    assert len(plan.segments) == k and len(plan.cuts) == k - 1
    assert plan.segments[0].inputs == ("input",) and plan.segments[0].start_nodes == ("input",)
    assert plan.segments[-1].outputs == ("output",)
    produced = {"input"}
    for seg in plan.segments:  # every input comes from the model's input or an earlier segment
        assert set(seg.inputs) <= produced, seg
        assert len(seg.input_shapes) == len(seg.inputs) and all(len(s) == 4 and s[2] == 1 for s in seg.input_shapes)
        produced |= set(seg.outputs)
    assert SegmentPlan.from_dict(plan.to_dict()) == plan  # the JSON form round-trips
    assert plan_segments(tiny_onnx, k) == plan  # deterministic


def test_a_cut_between_tcn_blocks_passes_residual_skip_and_w(tiny_onnx: Path) -> None:
    plan = plan_segments(tiny_onnx, 2)
    assert plan.cuts == ("TCN.0|TCN.1",)
    second = plan.segments[1]
    assert second.inputs == (
        "/masker/Add_output_0", "/masker/TCN.0/skip_conv/Conv_output_0", "/enc_activation/Relu_output_0"
    )  # fmt: skip
    assert second.input_shapes[2][1] == 16  # w: n_filters channels


def test_too_many_segments_is_a_one_line_config_error(tiny_onnx: Path) -> None:
    with pytest.raises(ConfigError, match=r"1\.\.4"):
        plan_segments(tiny_onnx, 5)


@pytest.mark.parametrize("k", [2, 3, 4])
def test_float_chain_equals_the_whole_model(tiny_onnx: Path, tmp_path: Path, k: int) -> None:
    x = (np.random.default_rng(0).standard_normal((2, 1, 1, 2048)) * 0.1).astype(np.float32)
    whole = run_onnx(tiny_onnx, x)
    chained = run_float_chain(tiny_onnx, plan_segments(tiny_onnx, k), x, tmp_path)
    assert chained.shape == whole.shape
    assert _si_snr_db(chained, whole) >= 60.0


def test_boundaries_are_the_float_models_tensors_on_the_calibration(tiny_onnx: Path) -> None:
    plan = plan_segments(tiny_onnx, 3)
    calib = (np.random.default_rng(1).standard_normal((3, 1, 1, 2048)) * 0.1).astype(np.float32)
    per = capture_boundaries(tiny_onnx, plan, calib)
    assert list(per[0]) == ["input"] and np.array_equal(per[0]["input"], calib)
    for seg, arrays in zip(plan.segments, per, strict=True):
        assert list(arrays) == list(seg.inputs)
        for t, shape in zip(seg.inputs, seg.input_shapes, strict=True):
            assert arrays[t].shape == (3, *shape[1:])
    assert np.ptp(per[1][plan.segments[1].inputs[0]]) > 0


def test_a_segments_stage_is_named_in_the_signature() -> None:
    f = classify("compile[seg 2/3]", "BackendAllocatorException", "Compilation failed\n[error] x errors: Agent infeasible")
    assert f.stage == "compile[seg 2/3]"
    f = classify("emulate", "NonFiniteOutput", "[seg 3/3] 12 non-finite values in the emulated outputs")
    assert f.signature == "emulate[seg 3/3]:NonFiniteOutput:nan_or_inf"
    assert classify("optimize[seg 1/2]", "Timeout", "did not finish within 30 s").signature == "optimize[seg 1/2]:Timeout:30s"


def test_a_segments_failure_grades_as_its_stage() -> None:
    import harness.backends.hailo._rules  # noqa: F401 - registers the DFC's rules
    from harness.feasibility import violation

    whole = classify("compile", "BackendAllocatorException", "Compilation failed\n[error] convtas/conv3_dc errors: Agent infeasible")
    seg = classify("compile[seg 2/3]", "BackendAllocatorException", whole.message)
    assert seg.signature.startswith("compile[seg 2/3]:BackendAllocatorException:")
    assert seg.detail == whole.detail == "agent_infeasible"
    ghost = classify("optimize", "OverrideTargetNotFound", "Layer 'x' not found in model")
    assert violation(seg) == violation(whole) < violation(ghost)


def test_a_segments_compile_failure_is_graded_as_a_compile_failure() -> None:
    """The sweep's constraints: a compile failure of one segment counts against ``compile``, not ``failure``."""
    import harness.backends.hailo._rules  # noqa: F401 - registers the DFC's rules
    from harness.pipeline import TrialResult
    from harness.sweep import _grade

    class Trial:
        def __init__(self) -> None:
            self.constraints: dict[str, float] = {}

        def set_constraint(self, name: str, value: float) -> None:
            self.constraints[name] = value

    message = "Compilation failed\n[error] convtas/conv3_dc errors: Agent infeasible"
    graded = {}
    for stage in ("compile", "compile[seg 2/3]"):
        trial = Trial()
        _grade(trial, TrialResult("failed", failure=classify(stage, "BackendAllocatorException", message)), None)  # type: ignore[arg-type]
        graded[stage] = trial.constraints
    assert graded["compile[seg 2/3]"] == graded["compile"]
    assert graded["compile"]["failure"] == 0.0 and graded["compile"]["compile"] > 0.0


def test_too_many_segments_in_a_trial_is_a_classified_failure(tiny_onnx: Path) -> None:
    with pytest.raises(ConfigError) as info:
        plan_segments(tiny_onnx, 6)
    f = classify("split", "ConfigError", str(info.value))
    assert f.signature == "split:ConfigError:too_many_segments" and f.numbers["max_segments"] == 4
