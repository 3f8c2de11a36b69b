"""Per-tensor SQNR between a tiny exported Conv-TasNet and its QDQ models: numbers, not just 'it ran'."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np
import pytest

from harness.backends import Override, OverrideSet, QuantSettings, get_backend
from harness.backends._ort import run_onnx
from harness.layer_noise import (
    NoiseReport,
    diff_noise,
    hailo_noise_report,
    layer_noise,
    noise_report,
    noise_stage,
    read_noise,
    write_noise,
)

W = 2048


@pytest.fixture(scope="module")
def models(tiny_checkpoint: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    """The float model, its 8-bit and 16-bit-everywhere QDQ models, and the calibration inputs."""
    from harness.audio import synth_mixture
    from harness.export import export_onnx
    from harness.model import load_checkpoint

    d = tmp_path_factory.mktemp("noise")
    float_onnx = d / "model.onnx"
    export_onnx(load_checkpoint(tiny_checkpoint), W, float_onnx)
    rng = np.random.default_rng(1)
    calib = np.stack([synth_mixture(rng, W, 16000)[0] for _ in range(8)])[:, None, None, :].astype(np.float32)
    be = get_backend("ort")
    tr = be.translate(float_onnx, d / "t")
    q8 = be.optimize(tr, calib, OverrideSet("none"), QuantSettings(), d / "o8").path
    all16 = OverrideSet("all16", (Override("precision16", ("*",)),))
    q16 = be.optimize(tr, calib, all16, QuantSettings(), d / "o16").path
    # Inputs inside the calibration ranges, so that rounding (not clipping) is what the bits change.
    return {"float": float_onnx, "q8": q8, "q16": q16, "inputs": calib[:3]}


@pytest.fixture(scope="module")
def reports(models: dict[str, object]) -> tuple[NoiseReport, NoiseReport]:
    return (
        noise_report(models["float"], models["q8"], models["inputs"]),  # type: ignore[arg-type]
        noise_report(models["float"], models["q16"], models["inputs"]),  # type: ignore[arg-type]
    )


def test_every_activation_is_compared_and_sorted_worst_first(reports: tuple[NoiseReport, NoiseReport]) -> None:
    r8, _ = reports
    rows = r8.rows
    assert len(rows) > 50  # the tiny model has 67 comparable activations
    assert [r.sqnr_db for r in rows] == sorted(r.sqnr_db for r in rows)
    by_name = {r.tensor: r for r in rows}
    assert by_name["input"].op_type == "Input" and by_name["input"].bits == 8
    out = by_name["output"]  # a graph output is quantized as output_QuantizeLinear_Input -> Q -> DQ -> output
    assert out.op_type == "ConvTranspose" and out.bits == 8 and out.node == "/ConvTranspose"
    # the gLN's Pow/Sqrt are left in float by ORT: compared under their own names, with no bits of their own
    assert any(r.op_type == "Sqrt" and r.bits is None for r in rows)
    assert all(r.op_type != "Constant" and not r.tensor.startswith("onnx::") for r in rows)  # no weights/constants
    assert all(5.0 < r.sqnr_db < 80.0 for r in rows)  # 8-bit: lossy, not noise
    assert set(r8.skipped) == {"/encoder/Conv_output_0"}  # Conv+Relu: the quantizer removed the Relu's input


def test_sixteen_bit_everywhere_beats_eight_bit_on_every_tensor(reports: tuple[NoiseReport, NoiseReport]) -> None:
    r8, r16 = reports
    a = {r.tensor: r.sqnr_db for r in r8.rows}
    b = {r.tensor: r.sqnr_db for r in r16.rows}
    assert a.keys() == b.keys()
    assert all(r.bits == 16 for r in r16.rows if r.bits is not None)
    assert all(b[t] > a[t] for t in a), [(t, a[t], b[t]) for t in a if b[t] <= a[t]]
    assert np.median(list(b.values())) > np.median(list(a.values())) + 10.0  # here about 29 -> 45 dB
    d = diff_noise(r8, r16)
    assert d.summary()["n_worse_in_b"] == 0 and d.summary()["median_delta_db"] > 10.0
    assert not d.only_a and not d.only_b


def test_output_row_matches_the_emulated_output(models: dict[str, object], reports) -> None:
    """The graph output's SQNR equals the SNR of the quantized model's emulation (ORT's fused kernels)."""
    x = models["inputs"]
    ref = run_onnx(models["float"], x).astype(np.float64)  # type: ignore[arg-type]
    for path, rep in ((models["q8"], reports[0]), (models["q16"], reports[1])):
        q = run_onnx(path, x).astype(np.float64)  # type: ignore[arg-type]
        snr = 10 * np.log10(np.sum(ref**2) / np.sum((ref - q) ** 2))
        out = next(r for r in rep.rows if r.tensor == "output")
        assert out.sqnr_db == pytest.approx(snr, abs=0.1)


def test_identical_models_give_infinite_sqnr(models: dict[str, object]) -> None:
    rows = layer_noise(models["float"], models["float"], models["inputs"][:1])  # type: ignore[arg-type,index]
    assert len(rows) > 50 and all(math.isinf(r.sqnr_db) and r.sqnr_db > 0 for r in rows)
    d = diff_noise(NoiseReport("ort", True, rows), NoiseReport("ort", True, rows))
    assert all(r.delta_db == 0.0 for r in d.rows)


def test_chunking_does_not_change_the_numbers(models: dict[str, object], reports) -> None:
    rows = layer_noise(models["float"], models["q8"], models["inputs"], chunk=7)  # type: ignore[arg-type]
    assert {r.tensor: round(r.sqnr_db, 6) for r in rows} == {r.tensor: round(r.sqnr_db, 6) for r in reports[0].rows}


def test_files_round_trip(reports, tmp_path: Path) -> None:
    r8, _ = reports
    inf_row = type(r8.rows[0])("x", "n", "Relu", math.inf, None, 99)
    rep = NoiseReport("ort", True, [*r8.rows, inf_row], n_inputs=3)
    files = write_noise(rep, tmp_path)
    assert [f.name for f in files] == ["layer_noise.json", "layer_noise.csv", "layer_noise.png"]
    assert files[2].read_bytes()[:4] == b"\x89PNG"
    data = json.loads(files[0].read_text())  # strict JSON: inf is the string "inf"
    assert data["rows"][-1]["sqnr_db"] == "inf" and data["available"] is True
    back = read_noise(files[0])
    assert back.rows == rep.rows and back.n_inputs == 3
    with files[1].open() as fh:
        table = list(csv.DictReader(fh))
    assert table[0]["tensor"] == r8.rows[0].tensor and float(table[0]["sqnr_db"]) == pytest.approx(r8.rows[0].sqnr_db, abs=1e-3)


def test_noise_stage_writes_files_and_never_raises(models: dict[str, object], tmp_path: Path) -> None:
    meta = noise_stage("ort", models["float"], models["q8"], models["inputs"], tmp_path / "ok")  # type: ignore[arg-type]
    assert meta["available"] and meta["n_tensors"] > 50 and meta["worst_sqnr_db"] < meta["median_sqnr_db"]
    assert {p.name for p in (tmp_path / "ok").iterdir()} == {"layer_noise.json", "layer_noise.csv", "layer_noise.png"}
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not onnx")
    meta = noise_stage("ort", models["float"], bad, models["inputs"], tmp_path / "bad")  # type: ignore[arg-type]
    assert meta["available"] is False and meta["reason"].startswith("measurement failed")
    assert read_noise(tmp_path / "bad" / "layer_noise.json").rows == []


def test_hailo_without_the_dfc_table_is_not_available_and_says_why(tmp_path: Path) -> None:
    rep = hailo_noise_report(tmp_path / "model_quantized.har")
    assert rep.available is False and rep.rows == []
    assert rep.reason.startswith("layer noise analysis not available: ") and "dfc_layer_noise.json" in rep.reason
    (tmp_path / "q").mkdir()
    (tmp_path / "q" / "dfc_layer_noise.json").write_text(json.dumps({"available": False, "reason": "level 0"}))
    meta = noise_stage("hailo", tmp_path / "m.onnx", tmp_path / "q" / "q.har", np.zeros((1, 1, 1, 8), np.float32), tmp_path / "h")
    assert meta == {"available": False, "reason": "layer noise analysis not available: level 0"}
    assert [p.name for p in (tmp_path / "h").iterdir()] == ["layer_noise.json"]  # no table, no plot: no numbers


def test_hailo_table_from_the_dfc_statistics(tmp_path: Path) -> None:
    rows = [{"layer": "net/conv1", "original_names": ["/a/Conv"], "type": "conv", "sqnr_db": 31.0, "source": "simple", "index": 1},
            {"layer": "net/ew_div1", "original_names": ["/a/Div"], "type": "ew_div", "sqnr_db": 4.5, "source": "simple", "index": 2}]  # fmt: skip
    (tmp_path / "dfc_layer_noise.json").write_text(json.dumps({"available": True, "rows": rows}))
    meta = noise_stage("hailo", tmp_path / "m.onnx", tmp_path / "q.har", np.zeros((1, 1, 1, 8), np.float32), tmp_path / "h")
    assert meta["available"] and meta["worst_tensor"] == "net/ew_div1" and meta["n_sensitive"] == 1
    rep = read_noise(tmp_path / "h" / "layer_noise.json")
    assert [(r.tensor, r.node, r.op_type, r.sqnr_db) for r in rep.rows] == [
        ("net/ew_div1", "/a/Div", "ew_div", 4.5), ("net/conv1", "/a/Conv", "conv", 31.0)]  # fmt: skip
    assert "DFC's layer noise analysis (simple" in json.loads((tmp_path / "h" / "layer_noise.json").read_text())["definition"]
    assert (tmp_path / "h" / "layer_noise.png").is_file()