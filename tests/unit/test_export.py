"""Export + fidelity gate: numbers, and a gate that can fail."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from harness.export import FidelityGateError, check_fidelity, export_onnx
from harness.model import load_checkpoint

W = 2048


@pytest.fixture(scope="module")
def probe() -> np.ndarray:
    from harness.audio import synth_mixture

    rng = np.random.default_rng(3)
    return np.stack([synth_mixture(rng, W, 16000)[0] for _ in range(2)])[:, None, None, :].astype(np.float32)


def test_export_passes_the_gate(tiny_checkpoint: Path, tmp_path: Path, probe: np.ndarray) -> None:
    model = load_checkpoint(tiny_checkpoint)
    report = export_onnx(model, W, tmp_path / "m.onnx")
    assert report.opset == 17 and report.op_counts["Conv"] > 0 and "PRelu" in report.op_counts
    fid = check_fidelity(model, tmp_path / "m.onnx", probe, 60.0)
    assert fid["fidelity_si_snr_db"] > 65.0 and fid["fidelity_max_abs_err"] < 1e-5


def test_gate_fails_when_onnx_is_another_model(tiny_checkpoint: Path, tmp_path: Path, probe: np.ndarray) -> None:
    model = load_checkpoint(tiny_checkpoint)
    export_onnx(model, W, tmp_path / "m.onnx")
    other = load_checkpoint(tiny_checkpoint)
    with torch.no_grad():
        other.masker.mask_net[1].weight.mul_(1.5)  # what an exporter bug that drops/changes an op looks like
    with pytest.raises(FidelityGateError, match=r"SI-SNR -?[\d.]+ dB of ONNX vs torch is below the 60 dB gate"):
        check_fidelity(other, tmp_path / "m.onnx", probe, 60.0)


def test_tiny_outputs_pass_within_float32_tolerance(tiny_checkpoint: Path, tmp_path: Path, probe: np.ndarray) -> None:
    model = load_checkpoint(tiny_checkpoint)
    with torch.no_grad():
        model.decoder.weight.mul_(1e-6)  # outputs ~1e-7: float rounding alone limits SI-SNR
    export_onnx(model, W, tmp_path / "m.onnx")
    fid = check_fidelity(model, tmp_path / "m.onnx", probe, 200.0)  # an SI-SNR gate no float model reaches
    assert fid["fidelity_allclose"] == 1.0 and fid["fidelity_max_abs_err"] < 1e-9
