"""`hefsweep diff RUN_A RUN_B` between an 8-bit and a 16-bit trial of a small real sweep."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

import pytest

from harness.space import load_space
from harness.sweep import run_sweep

pytestmark = pytest.mark.slow

COMBOS = [
    {"prelu": "keep", "norm": "gLN", "override_set": "none"},
    {"prelu": "keep", "norm": "gLN", "override_set": "all16"},
    {"prelu": "keep", "norm": "gLN", "override_set": "ghost"},
    {"prelu": "relu", "norm": "cLN", "override_set": "none"},  # a lossy substitution
]


def cli(argv: list[str], monkeypatch: pytest.MonkeyPatch) -> int:
    """``hefsweep`` with this module's commands registered (as harness/cli/__init__.py does once they are)."""
    from harness import cli as cli_mod
    from harness.cli.diff import Diff
    from harness.cli.report import Report

    mine = {Report.name, Diff.name}
    monkeypatch.setattr(cli_mod, "COMMANDS", (*(c for c in cli_mod.COMMANDS if c.name not in mine), Report, Diff))
    return cli_mod.main(argv)


@pytest.fixture(scope="module")
def swept(tiny_checkpoint: Path, demo_data: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    """Trials: #0 8-bit, #1 16-bit everywhere, #2 failed in optimize (an override naming no layer), #3 relu/cLN."""
    import optuna

    tmp = tmp_path_factory.mktemp("diff")
    p = tmp / "d.yaml"
    p.write_text(
        f"""
study: d
checkpoint: {tiny_checkpoint}
data: {{calibration: {demo_data / 'calib'}, evaluation: {demo_data / 'eval'}, eval_clips: 3, min_calibration_clips: 2}}
stage_timeout: 120
repair_trials: false
layer_noise_clips: 3
dimensions:
  prelu: [keep, relu]
  norm: [gLN, cLN]
  width: 4000
  calib_fill: repeat
  calib_size: 8
  override_set: [none, all16, ghost]
override_sets:
  none: []
  all16:
    - {{kind: precision16, layers: ['*']}}
  ghost:
    - {{kind: precision16, layers: [no_such_layer]}}
"""
    )
    root = tmp / "mlruns"
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(tmp)
        s = run_sweep(load_space(p), trials=4, root=root, stream=io.StringIO(), enqueue=COMBOS)
    assert s.n_ok == 3 and s.n_failed == 1
    study = optuna.load_study(study_name="d", storage=f"sqlite:///{root / 'optuna.db'}")
    runs = [t.user_attrs["mlflow_run_id"] for t in study.trials]
    return {"root": root, "r8": runs[0], "r16": runs[1], "failed": runs[2], "relu_cln": runs[3], "parent": s.parent_run_id}


def parse(out: str) -> list[tuple[str, str, float, float, float]]:
    rows = re.findall(r"^  (\S+)\s+(\w+)\s+(-?[\d.]+|inf)\s+(-?[\d.]+|inf)\s+([+-][\d.]+|inf)$", out, re.M)
    return [(t, op, float(a), float(b), float(d)) for t, op, a, b, d in rows]


def decomposition(out: str) -> dict[str, tuple[float, float, float]]:
    rows = re.findall(r"^  (\w+) \([^)]*\)\s+(-?[\d.]+) -> \s*(-?[\d.]+)  \(([+-][\d.]+)\)$", out, re.M)
    return {k: (float(a), float(b), float(d)) for k, a, b, d in rows}


def test_diff_shows_the_substitution_and_the_quantization_loss(swept, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    from mlflow import MlflowClient

    root, r8, lossy = swept["root"], swept["r8"], swept["relu_cln"]
    assert cli(["diff", r8, lossy, "--root", str(root), "--top", "3"], monkeypatch) == 0
    out = capsys.readouterr().out
    assert "  norm: gLN -> cLN\n" in out and "  prelu: keep -> relu\n" in out
    dec = decomposition(out)
    metrics = MlflowClient(tracking_uri=f"sqlite:///{root / 'mlflow.db'}").get_run(lossy).data.metrics
    for k in ("si_snr_db", "substitution_si_snr_db", "quant_si_snr_db"):
        assert dec[k][1] == pytest.approx(metrics[k], abs=0.006), k
    # relu/cLN: the substitution costs far more than quantization, and the objective shows it
    assert dec["substitution_si_snr_db"][1] < dec["quant_si_snr_db"][1] - 8.0
    assert dec["si_snr_db"][1] < dec["quant_si_snr_db"][1] - 8.0
    assert "limited by: A quantization, B substitution" in out
    assert len(parse(out)) == 3  # the decomposition lines are not taken for layer rows


def test_diff_8bit_vs_16bit_shows_positive_deltas(swept, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    from mlflow import MlflowClient

    root, r8, r16 = swept["root"], swept["r8"], swept["r16"]
    assert cli(["diff", r8, r16, "--root", str(root), "--top", "10"], monkeypatch) == 0
    out = capsys.readouterr().out
    assert "params that differ:\n  override_set: none -> all16\n" in out
    dec = decomposition(out)
    assert set(dec) == {"si_snr_db", "substitution_si_snr_db", "quant_si_snr_db", "orig_float_si_snri_db",
                        "float_si_snri_db", "quant_si_snri_db"}  # fmt: skip
    assert dec["substitution_si_snr_db"][0] > 60.0 and dec["substitution_si_snr_db"][1] > 60.0  # no substitution
    assert dec["si_snr_db"][1] > dec["si_snr_db"][0]  # 16 bits: less quantization loss
    assert "limited by: A quantization, B quantization" in out
    m = re.search(r"(\d+) tensors in both, 0 only in A, 0 only in B; SQNR better in B for (\d+), worse for (\d+), "
                  r"median delta \+([\d.]+) dB", out)  # fmt: skip
    assert m, out
    n, better, worse, median = int(m[1]), int(m[2]), int(m[3]), float(m[4])
    # 16 bits: less noise on most tensors. Not on all: these eval clips exceed the calibration ranges a little
    # (the centre-cropped calibration clips miss some peaks), and clipping noise does not shrink with more bits.
    assert n > 50 and better > 3 * worse and median > 0.5
    rows = parse(out)
    assert len(rows) == 10
    assert all(d > 0 and b > a and d == pytest.approx(b - a, abs=0.02) for _, _, a, b, d in rows), rows
    assert rows[0][4] > 5.0  # the most changed layer gains more than 5 dB
    assert "input" in {t for t, *_ in rows}  # the input tensor: only its bits differ, and it gains
    assert [abs(d) for *_, d in rows] == sorted((abs(d) for *_, d in rows), reverse=True)  # changed most first

    # the computed tables were logged to both runs; a second diff reads them back instead of recomputing
    client = MlflowClient(tracking_uri=f"sqlite:///{root / 'mlflow.db'}")
    for rid in (r8, r16):
        names = {a.path for a in client.list_artifacts(rid, "noise")}
        assert {"noise/layer_noise.json", "noise/layer_noise.csv", "noise/layer_noise.png"} <= names
    table = json.loads(Path(client.download_artifacts(r16, "noise/layer_noise.json", str(root.parent / "dl"))).read_text())
    assert table["available"] and table["n_inputs"] == 3 and len(table["rows"]) == n
    assert cli(["diff", r16, r8, "--root", str(root), "--top", "3"], monkeypatch) == 0
    again = capsys.readouterr().out
    assert "table logged" in again and "table computed" not in again
    assert all(d < 0 for *_, d in parse(again))  # the other way round: more noise in B


def test_diff_errors_are_one_line(swept, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    root = str(swept["root"])
    assert cli(["diff", "0" * 32, swept["r8"], "--root", root], monkeypatch) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"hefsweep diff: error: MLflow run {'0' * 32}: not found") and len(err.splitlines()) == 1

    assert cli(["diff", swept["r8"], swept["failed"], "--root", root], monkeypatch) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert f"MLflow run {swept['failed']}: no noise/layer_noise.json; and no compiled/model.qdq.onnx" in err
    assert "status failed" in err and "expected a passing ORT trial" in err

    assert cli(["diff", swept["r8"], swept["r16"], "--root", root + "/nowhere"], monkeypatch) == 1
    assert "no such database file" in capsys.readouterr().err

    assert cli(["diff", swept["parent"], swept["r8"], "--root", root], monkeypatch) == 1
    assert "has role 'parent'; expected a sweep trial run" in capsys.readouterr().err
    assert cli(["diff", swept["r8"], swept["r16"], "--root", root, "--top", "0"], monkeypatch) == 1
    assert "--top: 0; expected at least 1" in capsys.readouterr().err
