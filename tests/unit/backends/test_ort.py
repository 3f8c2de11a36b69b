"""The ONNX Runtime backend on a tiny exported Conv-TasNet: numbers, not just 'it ran'."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from harness.backends import Override, OverrideSet, OverrideTargetNotFound, QuantSettings, get_backend
from harness.backends._ort import run_onnx
from harness.metrics import si_snr

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

    rng = np.random.default_rng(1)
    calib = np.stack([synth_mixture(rng, W, 16000)[0] for _ in range(8)])[:, None, None, :]
    evals = np.stack([synth_mixture(rng, W, 16000)[0] for _ in range(3)])[:, None, None, :]
    return calib.astype(np.float32), evals.astype(np.float32)


def quant_snr(backend, tr, calib, evals, ovs, settings, d) -> tuple[float, object]:
    opt = backend.optimize(tr, calib, ovs, settings, d)
    q = backend.emulate(opt, evals)
    ref = run_onnx(tr.path, evals)
    return float(si_snr(q[:, :, 0], ref[:, :, 0]).mean()), opt


def test_translate_lists_layers(exported: Path, tmp_path: Path) -> None:
    tr = get_backend("ort").translate(exported, tmp_path / "t")
    assert tr.width == W and tr.input_name == "input"
    assert "input" in tr.layers and "output" in tr.layers
    assert any("Sigmoid" in n for n in tr.layers)


def test_quantize_compile_emulate(exported: Path, signals, tmp_path: Path) -> None:
    be = get_backend("ort")
    calib, evals = signals
    tr = be.translate(exported, tmp_path / "t")
    snr8, opt = quant_snr(be, tr, calib, evals, OverrideSet("none"), QuantSettings(), tmp_path / "o8")
    assert opt.info["n_quantize_linear"] > 20
    assert 5.0 < snr8 < 60.0  # 8-bit activations: clearly lossy, clearly not noise
    comp = be.compile(opt, tmp_path / "c")
    assert comp.info["n_qlinear_ops"] > 0  # ORT fused QDQ into QLinear kernels
    assert comp.path.name == "model.qdq.onnx" and comp.path.stat().st_size > 0

    all16 = OverrideSet("all16", (Override("precision16", ("*",)),))
    snr16, opt16 = quant_snr(be, tr, calib, evals, all16, QuantSettings(), tmp_path / "o16")
    assert opt16.info["n_tensors_16bit"] > 20
    assert opt16.info["opset"] >= 21  # 16-bit QDQ bumps the opset
    assert snr16 > snr8 + 6.0  # 16-bit activations are far more faithful (here 28 -> 39 dB; int8 weights remain)


def test_ranges_are_reused_across_override_sets(exported: Path, signals, tmp_path: Path) -> None:
    be = get_backend("ort")
    calib, _ = signals
    tr = be.translate(exported, tmp_path / "t")
    reuse = tmp_path / "reuse"
    a = be.optimize(tr, calib, OverrideSet("none"), QuantSettings(), tmp_path / "a", reuse_dir=reuse)
    io16 = OverrideSet("io16", (Override("precision16", ("input", "output")),))
    b = be.optimize(tr, calib, io16, QuantSettings(), tmp_path / "b", reuse_dir=reuse)
    assert a.info["ranges_reused"] is False and b.info["ranges_reused"] is True
    assert b.info["n_tensors_16bit"] == 2
    # b's ranges.json is a copy of a's by construction; what matters is that reuse changes nothing: the same set
    # quantized from freshly computed ranges gives the same ranges and the same model
    c = be.optimize(tr, calib, io16, QuantSettings(), tmp_path / "c", reuse_dir=None)
    assert c.info["ranges_reused"] is False
    assert _ranges(tmp_path / "c" / "ranges.json") == _ranges(tmp_path / "a" / "ranges.json")
    probe = calib[:2]
    np.testing.assert_array_equal(be.emulate(b, probe), be.emulate(c, probe))


def _ranges(path: Path) -> dict[str, tuple[float, ...]]:
    """tensor -> its calibrated (lowest..., highest...) values, from ORT's ranges.json (numbers or numpy arrays)."""

    def values(v: object) -> list[float]:
        if isinstance(v, dict):
            return values(v.get("data", []))
        if isinstance(v, list):
            return [x for item in v for x in values(item)]
        return [float(v)]  # type: ignore[arg-type]

    data = json.loads(path.read_text())["data"]
    return {name: tuple(values(t["lowest"]) + values(t["highest"])) for name, t in data.items()}


def test_percentile_and_entropy_give_other_ranges(exported: Path, signals, tmp_path: Path) -> None:
    be = get_backend("ort")
    calib, _ = signals
    tr = be.translate(exported, tmp_path / "t")
    ranges = {}
    for method in ("minmax", "percentile", "entropy"):
        be.optimize(tr, calib, OverrideSet("none"), QuantSettings(method=method), tmp_path / method)
        ranges[method] = _ranges(tmp_path / method / "ranges.json")  # the numbers, not the text (it names the method)

    def differ(a: dict[str, tuple[float, ...]], b: dict[str, tuple[float, ...]]) -> float:
        """The fraction of the tensors calibrated by both whose ranges differ."""
        common = sorted(set(a) & set(b))
        assert len(common) >= 10
        return sum(not np.allclose(a[k], b[k], rtol=1e-4, atol=1e-7) for k in common) / len(common)

    assert differ(ranges["minmax"], ranges["minmax"]) == 0.0
    assert differ(ranges["minmax"], ranges["percentile"]) > 0.3  # measured 0.5-0.6 (a fallback: 0)
    assert differ(ranges["minmax"], ranges["entropy"]) > 0.3  # measured 0.47; not a silent MinMax fallback


def test_unknown_layer_is_rejected_with_nearest_names(exported: Path, signals, tmp_path: Path) -> None:
    be = get_backend("ort")
    tr = be.translate(exported, tmp_path / "t")
    bad = OverrideSet("bad", (Override("precision16", ("outptu",)),))
    with pytest.raises(OverrideTargetNotFound) as err:
        be.optimize(tr, signals[0], bad, QuantSettings(), tmp_path / "o")
    msg = str(err.value)
    assert "Layer 'outptu' not found in model" in msg and "output" in msg
    assert "\n" not in msg


def test_hailo_only_overrides_are_reported_ignored(exported: Path, signals, tmp_path: Path) -> None:
    be = get_backend("ort")
    tr = be.translate(exported, tmp_path / "t")
    ovs = OverrideSet("h", (Override("negative_exponent", ("*",)), Override("optimization_level", (), 2)))
    opt = be.optimize(tr, signals[0], ovs, QuantSettings(), tmp_path / "o")
    assert len(opt.ignored) == 2 and all("Hailo only" in x for x in opt.ignored)
    assert opt.applied == ()


@pytest.mark.parametrize("method", ["minmax", "entropy"])
def test_optimize_writes_nothing_beside_the_shared_translated_model(
    exported: Path, signals, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, method: str
) -> None:
    """ORT's calibrator writes '<model>-inferred.onnx' next to the model it is given and deletes it again; the
    translated model lives in a published, shared cache entry, where concurrent workers raced on that file
    (FileNotFoundError under 4-worker load). Every file ORT writes must stay in the optimize build's own folder."""
    import onnx

    be = get_backend("ort")
    tr = be.translate(exported, tmp_path / "t")
    before = sorted(p.name for p in (tmp_path / "t").iterdir())
    written: list[Path] = []
    real = onnx.shape_inference.infer_shapes_path

    def spy(model_path: str, output_path: str = "", *args, **kwargs):  # type: ignore[no-untyped-def]
        written.append(Path(output_path or model_path).resolve())
        return real(model_path, output_path, *args, **kwargs)

    monkeypatch.setattr(onnx.shape_inference, "infer_shapes_path", spy)
    be.optimize(tr, signals[0][:2], OverrideSet("none"), QuantSettings(method=method), tmp_path / "o")
    assert written and all(p.parent == (tmp_path / "o").resolve() for p in written), written
    assert sorted(p.name for p in (tmp_path / "t").iterdir()) == before
    assert not (tmp_path / "o" / "translated.onnx").exists()  # the link is gone: not published, not uploaded
