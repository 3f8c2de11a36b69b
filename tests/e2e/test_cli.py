"""The console script: exit codes, one-line errors for bad input, and nothing lost afterwards."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from harness.cli import main

pytestmark = pytest.mark.slow

SPACE = """
study: cli
checkpoint: {ckpt}
data: {{calibration: {calib}, evaluation: {eval}, eval_clips: 2, min_calibration_clips: 2}}
trials: 1
dimensions:
  width: 4000
  calib_size: 2
{extra}
"""


def write_space(tmp: Path, ckpt: Path, calib: Path, ev: Path, extra: str = "", name: str = "s.yaml") -> Path:
    p = tmp / name
    p.write_text(SPACE.format(ckpt=ckpt, calib=calib, eval=ev, extra=extra))
    return p


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = main(argv)
    err = capsys.readouterr().err.strip()
    return code, err


def test_export_command(tiny_checkpoint: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "m.onnx"
    code = main(["export", "--checkpoint", str(tiny_checkpoint), "--length", "4000", "--prelu", "maxmin",
                 "--norm", "cLN", "--out", str(out)])  # fmt: skip
    text = capsys.readouterr().out
    assert code == 0 and out.is_file()
    assert "substitutions fired: prelu:maxmin" in text and "norm:gLN->cLN" in text
    db = float(text.split("fidelity: SI-SNR ")[1].split(" dB")[0])
    assert db >= 60.0


def _bad_inputs(tmp: Path, ckpt: Path, data: Path) -> dict[str, tuple[list[str], list[str]]]:
    """name -> (argv, fragments expected in the one-line error)."""
    calib, ev = data / "calib", data / "eval"
    cases: dict[str, tuple[list[str], list[str]]] = {}

    def folder_with(name: str, writer) -> Path:
        d = tmp / name
        d.mkdir()
        for f in sorted(calib.iterdir())[:3]:
            shutil.copy(f, d / f.name)
        writer(d / "zz_bad.wav")
        return d

    def space(name: str, **kw: Path | str) -> list[str]:
        args = {"ckpt": ckpt, "calib": calib, "ev": ev, "extra": ""} | kw
        return ["sweep", str(write_space(tmp, args["ckpt"], args["calib"], args["ev"], args["extra"], f"{name}.yaml")),
                "--root", str(tmp / "mlruns")]  # fmt: skip

    rate = 16000
    cases["missing checkpoint"] = (space("a", ckpt=tmp / "nope.pt"), ["nope.pt"])
    (tmp / "corrupt.pt").write_bytes(b"not a checkpoint at all")
    cases["corrupt checkpoint"] = (space("b", ckpt=tmp / "corrupt.pt"), ["corrupt.pt"])
    torch.save({"model_name": "DPRNNTasNet", "model_args": {}, "state_dict": {}}, tmp / "other.pt")
    cases["other architecture"] = (space("c", ckpt=tmp / "other.pt"), ["other.pt", "DPRNNTasNet"])
    cases["corrupt audio"] = (
        space("d", calib=folder_with("corrupt", lambda p: p.write_bytes(b"RIFF\x00\x00garbage"))), ["zz_bad.wav"])
    cases["stereo audio"] = (
        space("e", calib=folder_with("stereo", lambda p: sf.write(p, np.full((800, 2), 0.1), rate))),
        ["zz_bad.wav", "2 channels", "mono"])
    cases["wrong rate"] = (
        space("f", calib=folder_with("rate", lambda p: sf.write(p, np.full(800, 0.1), 8000))),
        ["zz_bad.wav", "8000", "16000"])
    cases["NaN audio"] = (
        space("g", calib=folder_with("nan", lambda p: sf.write(p, np.full(800, np.nan), rate, subtype="FLOAT"))),
        ["zz_bad.wav", "NaN"])
    cases["silent audio"] = (
        space("h", calib=folder_with("silent", lambda p: sf.write(p, np.zeros(800), rate))), ["zz_bad.wav", "silent"])
    (tmp / "empty").mkdir()
    cases["empty calibration folder"] = (space("i", calib=tmp / "empty"), ["empty"])
    few = tmp / "few"
    few.mkdir()
    shutil.copy(sorted(calib.iterdir())[0], few / "only.wav")
    cases["too few clips"] = (
        space("j", calib=few, extra="  calib_clip_length: 16000"), ["few", "expected at least 2"])
    (tmp / "bad.yaml").write_text("study: [oops\n")
    cases["malformed yaml"] = (["sweep", str(tmp / "bad.yaml")], ["bad.yaml", "malformed YAML"])
    cases["unknown key"] = (space("k", extra="  colour: blue"), ["dimensions.colour", "unknown key"])
    cases["impossible range"] = (
        space("l", extra="  calib_size: {low: 9, high: 3}"), ["calib_size", "low 9 > high 3"])
    cases["wrong type"] = (space("m", extra="  clamp: [loud]"), ["clamp", "'loud'"])
    return cases


def test_bad_inputs_exit_1_with_one_line_and_lose_nothing(
    tiny_checkpoint: Path, demo_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from mlflow import MlflowClient

    good = write_space(tmp_path, tiny_checkpoint, demo_data / "calib", demo_data / "eval")
    assert main(["sweep", str(good), "--root", str(tmp_path / "mlruns")]) == 0
    capsys.readouterr()
    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}")
    exp = client.get_experiment_by_name("cli")
    before = {r.info.run_id: r.info.status for r in client.search_runs([exp.experiment_id])}
    assert len(before) == 2

    for name, (argv, fragments) in _bad_inputs(tmp_path, tiny_checkpoint, demo_data).items():
        code, err = run(argv, capsys)
        assert code == 1, (name, err)
        lines = err.splitlines()
        assert len(lines) == 1, (name, err)
        assert "expected" in lines[0], (name, err)
        for frag in fragments:
            assert frag in lines[0], (name, frag, err)

    after = {r.info.run_id: r.info.status for r in client.search_runs([exp.experiment_id])}
    assert after == before
    trial_run = next(r for r in client.search_runs([exp.experiment_id]) if r.data.tags.get("hefsweep.role") == "trial")
    assert [a.path for a in client.list_artifacts(trial_run.info.run_id, "compiled")] == ["compiled/model.qdq.onnx"]


def test_doctor_exit_codes(tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    assert main(["doctor", "--root", str(tmp_path / "mlruns")]) == 0
    out = capsys.readouterr().out
    assert "[ok  ] torch" in out and "2.13.0" in out and "ready for backend ort" in out

    monkeypatch.setitem(sys.modules, "hailo_sdk_client", None)  # no DFC here, fake or real
    assert main(["doctor", "--backend", "hailo", "--root", str(tmp_path / "mlruns")]) == 1
    out = capsys.readouterr().out
    assert "[MISS] Hailo DFC interpreter" in out and "Developer Zone" in out and "HEFSWEEP_HAILO_PYTHON" in out

    # a DFC interpreter that lacks the SDK: named, with what it lacks
    assert main(["doctor", "--backend", "hailo", "--python", sys.executable, "--root", str(tmp_path / "mlruns")]) == 1
    out = capsys.readouterr().out
    line = next(ln for ln in out.splitlines() if "Hailo DFC interpreter" in ln)
    assert sys.executable in line and "hailo_sdk_client is not importable" in line

    code = main(["doctor", "--storage", "postgresql://nobody@127.0.0.1:1/none", "--root", str(tmp_path)])
    out = capsys.readouterr().out
    assert code == 1 and "unreachable" in out and "missing for backend ort: Optuna storage" in out


def test_export_of_a_checkpoint_without_sample_rate(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """asteroid allows ``sample_rate: None``; the export does not need it (the fidelity probe assumes 8 kHz)."""
    from conftest import TINY_ARGS

    from harness.model import ConvTasNet4D, ConvTasNetConfig
    from harness.model._checkpoint import save_checkpoint

    torch.manual_seed(0)
    ckpt = tmp_path / "norate.pt"
    save_checkpoint(ConvTasNet4D(ConvTasNetConfig.from_model_args({**TINY_ARGS, "sample_rate": None})), ckpt)
    out = tmp_path / "m.onnx"
    code = main(["export", "--checkpoint", str(ckpt), "--length", "4000", "--out", str(out)])
    text = capsys.readouterr().out
    assert code == 0 and out.is_file(), text
    assert "probe at 8000 Hz: the checkpoint has no sample_rate" in text
    assert float(text.split("fidelity: SI-SNR ")[1].split(" dB")[0]) >= 60.0
