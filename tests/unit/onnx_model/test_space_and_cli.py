"""``model: {onnx: ...}`` in a space (exactly one of checkpoint and model; lossy dimensions refused naming the
dimension), ``hefsweep export --onnx`` and the ONNX fidelity gate."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from support.onnx_models import asteroid_onnx

from harness.cli import main
from harness.errors import ConfigError
from harness.export import FidelityGateError, check_fidelity_onnx
from harness.onnx_model import OnnxModel
from harness.space import load_space

_DATA = "data: {calibration: calib, evaluation: eval}\n"


def _load(tmp_path: Path, text: str):
    path = tmp_path / "s.yaml"
    path.write_text(text + _DATA)
    return load_space(path)


@pytest.fixture(scope="module")
def onnx_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return asteroid_onnx(tmp_path_factory.mktemp("m") / "m.onnx", width=4000)


def test_model_onnx_resolved_and_fingerprinted(tmp_path: Path, onnx_path: Path) -> None:
    (tmp_path / "m.onnx").write_bytes(onnx_path.read_bytes())
    space = _load(tmp_path, "model: {onnx: m.onnx, sample_rate: 16000}\ndimensions: {prelu: [keep, maxmin], gln_stats: [joint, split]}\n")
    assert space.checkpoint is None and space.model.onnx == tmp_path / "m.onnx" and space.model.sample_rate == 16000
    assert space.model_file == tmp_path / "m.onnx"
    import hashlib

    assert space.content_fingerprint()["checkpoint"] == hashlib.sha256(onnx_path.read_bytes()).hexdigest()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("model: {onnx: m.onnx, sample_rate: 16000}\ncheckpoint: c.pt\n", "key 'checkpoint': both checkpoint and model given; expected exactly one"),
        ("study: x\n", "key 'checkpoint': missing (and no model given); expected exactly one"),
        ("model: {onnx: m.onnx}\n", "key 'model.sample_rate': missing"),
        ("model: {onnx: m.onnx, sample_rate: 16000}\ndimensions: {norm: [null, cLN]}\n",
         "key 'dimensions.norm': cLN needs the PyTorch model; expected with model.onnx only exact rewrites (norm: null)"),
        ("model: {onnx: m.onnx, sample_rate: 16000}\ndimensions: {prelu: [keep, relu]}\n",
         "key 'dimensions.prelu': relu needs the PyTorch model; expected with model.onnx only exact rewrites (prelu: keep | maxmin)"),
        ("model: {onnx: m.onnx, sample_rate: 16000}\ndimensions: {recover_steps: [0, 100]}\n",
         "key 'dimensions.recover_steps': 100 needs the PyTorch model"),
        ("model: {onnx: m.onnx, sample_rate: 16000}\ndimensions: {n_filters: 32}\n", "key 'dimensions.n_filters': 32 needs the PyTorch model"),
    ],
)
def test_space_refusals_are_one_line(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        _load(tmp_path, text)
    assert message in str(info.value) and "\n" not in str(info.value)


def test_cli_export_onnx(tmp_path: Path, onnx_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out.onnx"
    code = main(["export", "--onnx", str(onnx_path), "--length", "4000", "--prelu", "maxmin", "--out", str(out)])
    text = capsys.readouterr().out
    assert code == 0 and out.is_file()
    assert "2 sources" in text and "rewrites: prelu=maxmin fired 25x, gln_stats" not in text
    assert "rewrites: prelu=maxmin fired 25x" in text
    snr = float(text.split("SI-SNR ")[1].split(" dB")[0])
    assert snr > 70.0


def test_cli_export_onnx_refuses_lossy_flags(tmp_path: Path, onnx_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["export", "--onnx", str(onnx_path), "--norm", "cLN", "--out", str(tmp_path / "o.onnx")])
    err = capsys.readouterr().err.strip()
    assert code == 1 and err.count("\n") == 0
    assert "--norm: cLN needs the PyTorch model; expected with --onnx only exact rewrites" in err


def test_onnx_gate_fails_for_another_model(tmp_path: Path, onnx_path: Path) -> None:
    from harness.export import export_user_onnx

    model = OnnxModel(onnx_path, 16000, 4000)
    report, _ = export_user_onnx(model, 4000, {}, tmp_path / "e.onnx")
    probe = np.random.default_rng(0).standard_normal((2, 1, 1, 4000)).astype(np.float32) * 0.1
    ok = check_fidelity_onnx(model.run_original, report.path, probe, 60.0)
    assert ok["fidelity_si_snr_db"] > 70.0
    with pytest.raises(FidelityGateError, match="of ONNX vs the original ONNX is below the 60 dB gate"):
        check_fidelity_onnx(lambda x: model.run_original(x)[:, ::-1].copy(), report.path, probe, 60.0)  # sources swapped
