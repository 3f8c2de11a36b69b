"""The ORT backend's own calibration session (bounded memory) gives exactly quantize_static's ranges and model.

``OrtBackend.optimize`` runs ``quantize_static``'s calibrator itself, in a session with the priority-based execution
order, and hands the ranges to ``quantize_static`` as its calibration cache (``harness/backends/_ort.py::_calibrate``;
the memory it saves is measured by ``bench/worker_rss.py``). The reference here is ``quantize_static`` calibrating on
its own, exactly as the backend called it before.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import onnx
import pytest

from harness.backends import Override, OverrideSet, QuantSettings, get_backend
from harness.backends._ort import _reader, run_onnx

W = 2048


@pytest.fixture(scope="module")
def exported(tiny_checkpoint: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from harness.export import export_onnx
    from harness.model import load_checkpoint

    path = tmp_path_factory.mktemp("onnx") / "model.onnx"
    export_onnx(load_checkpoint(tiny_checkpoint), W, path)
    return path


@pytest.fixture(scope="module")
def signals() -> tuple[np.ndarray, np.ndarray]:
    from harness.audio import synth_mixture

    rng = np.random.default_rng(2)
    calib = np.stack([synth_mixture(rng, W, 16000)[0] for _ in range(6)])[:, None, None, :]
    evals = np.stack([synth_mixture(rng, W, 16000)[0] for _ in range(2)])[:, None, None, :]
    return calib.astype(np.float32), evals.astype(np.float32)


def _reference(model: Path, calib: np.ndarray, settings: QuantSettings, overrides: dict, d: Path) -> tuple[Path, Path]:
    """quantize_static calibrating by itself (ORT's default calibration session), as the backend called it."""
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    d.mkdir(parents=True)
    src = d / "model.onnx"
    shutil.copyfile(model, src)
    extra: dict = {"TensorQuantOverrides": overrides} if overrides else {}
    if settings.method == "percentile":
        extra["CalibPercentile"] = settings.percentile
    quantize_static(
        str(src),
        str(d / "quantized.onnx"),
        _reader("input", calib),
        quant_format=QuantFormat.QDQ,
        per_channel=settings.per_channel,
        activation_type=QuantType.QUInt16 if settings.activation_bits == 16 else QuantType.QUInt8,
        weight_type=QuantType.QInt16 if settings.weight_bits == 16 else QuantType.QInt8,
        calibrate_method={"minmax": CalibrationMethod.MinMax, "percentile": CalibrationMethod.Percentile}[settings.method],
        extra_options=extra,
        calibration_cache_path=str(d / "ranges.json"),
    )
    return d / "quantized.onnx", d / "ranges.json"


CASES = {
    "minmax": (QuantSettings(), OverrideSet("none")),
    "minmax-a16": (QuantSettings(activation_bits=16), OverrideSet("none")),
    "minmax-io16": (QuantSettings(), OverrideSet("io16", (Override("precision16", ("input", "output")),))),
    "percentile": (QuantSettings(method="percentile"), OverrideSet("none")),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_ranges_and_quantized_outputs_are_quantize_statics_own(exported: Path, signals, tmp_path: Path, case: str) -> None:
    settings, ovs = CASES[case]
    calib, evals = signals
    be = get_backend("ort")
    tr = be.translate(exported, tmp_path / "t")
    opt = be.optimize(tr, calib, ovs, settings, tmp_path / "o")
    assert opt.info["ranges_reused"] is False
    overrides = be._map_overrides(onnx.load(str(tr.path)), ovs)[0]
    assert len(overrides) == (2 if ovs.overrides else 0)
    ref_model, ref_ranges = _reference(tr.path, calib, settings, overrides, tmp_path / "ref")
    ours = json.loads((tmp_path / "o" / "ranges.json").read_text())
    theirs = json.loads(ref_ranges.read_text())
    assert len(ours["data"]) > 50
    assert ours == theirs  # every tensor's range, exactly (JSON of the float32 values), and the method
    np.testing.assert_array_equal(be.emulate(opt, evals), run_onnx(ref_model, evals))
    assert not (tmp_path / "o" / "augmented.onnx").exists()
    assert sorted(p.name for p in (tmp_path / "o").iterdir()) == ["overrides.json", "quantized.onnx", "ranges.json"]
