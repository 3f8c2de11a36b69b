"""`hefsweep report` on a small real sweep (3 ok trials, 1 failure): the HTML, its plots, links, and the parent run."""

from __future__ import annotations

import io
import re
from pathlib import Path

import pytest

from harness.space import load_space
from harness.sweep import run_sweep

pytestmark = pytest.mark.slow

DIMS = """  prelu: [keep, relu]
  norm: [gLN, cLN]
  width: 4000
  calib_clip_length: [3200, 8000]
  calib_fill: [crop, repeat]
  calib_size: 4
  override_set: [none, io16]"""

COMBOS = [
    {"prelu": "keep", "norm": "gLN", "calib_clip_length": 8000, "calib_fill": "repeat", "override_set": "none"},
    {"prelu": "relu", "norm": "cLN", "calib_clip_length": 8000, "calib_fill": "repeat", "override_set": "io16"},
    {"prelu": "keep", "norm": "gLN", "calib_clip_length": 3200, "calib_fill": "crop", "override_set": "none"},  # fails
    {"prelu": "relu", "norm": "gLN", "calib_clip_length": 8000, "calib_fill": "crop", "override_set": "none"},
]


def cli(argv: list[str], monkeypatch: pytest.MonkeyPatch) -> int:
    """``hefsweep`` with this module's commands registered (as harness/cli/__init__.py does once they are)."""
    from harness import cli as cli_mod
    from harness.cli.diff import Diff
    from harness.cli.report import Report

    mine = {Report.name, Diff.name}
    monkeypatch.setattr(cli_mod, "COMMANDS", (*(c for c in cli_mod.COMMANDS if c.name not in mine), Report, Diff))
    return cli_mod.main(argv)


def write_space(tmp: Path, ckpt: Path, data: Path, name: str) -> Path:
    p = tmp / f"{name}.yaml"
    p.write_text(
        f"""
study: {name}
checkpoint: {ckpt}
data: {{calibration: {data / 'calib'}, evaluation: {data / 'eval'}, eval_clips: 3, min_calibration_clips: 2}}
trials: 4
stage_timeout: 120
seed: 1
repair_trials: false
dimensions:
{DIMS}
override_sets:
  none: []
  io16:
    - {{kind: precision16, layers: [input, output]}}
"""
    )
    return p


@pytest.fixture(scope="module")
def swept(tiny_checkpoint: Path, demo_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("report")
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(tmp)
        summary = run_sweep(
            load_space(write_space(tmp, tiny_checkpoint, demo_data, "rep")),
            trials=4, root=tmp / "mlruns", stream=io.StringIO(), enqueue=COMBOS,
        )  # fmt: skip
    assert summary.n_ok == 3 and summary.signatures == {"calibrate:FillPolicyError:crop": 1}
    return tmp


def test_report_html_has_every_section_and_is_logged(
    swept: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import optuna
    from mlflow import MlflowClient

    root = swept / "mlruns"
    assert cli(["report", "--study", "rep", "--root", str(root)], monkeypatch) == 0
    out = capsys.readouterr().out
    path = root / "reports" / "rep" / "report.html"
    assert out.strip().splitlines()[-1] == str(path)  # the path is printed
    assert "4 trials (3 ok, 1 failed, 0 pruned, 0 lost)" in out
    page = path.read_text()

    # one self-contained file: plotly inlined exactly once, no external scripts
    assert page.count("plotly.js v") == 1 and "<script src=" not in page and 'src="http' not in page
    for section in ("history", "importance", "variants", "loss", "failures", "feasibility", "best"):
        assert f'<section id="{section}">' in page
    # the plots (real plotly divs, not placeholders)
    for div in ("plot-history", "plot-importance", "plot-importance-feasibility", "plot-variants", "plot-loss", "plot-signatures", "plot-feasibility"):
        assert re.search(rf'<div id="{div}" class="plotly-graph-div"', page), div
    assert 'class="na"' not in page.split('id="table-best"')[0].split('id="table-signatures"')[0]
    # SI-SNR per variant: one box per calibration fill of the ok trials, variants prelu x norm
    assert '"name":"calib_fill=repeat"' in page and '"name":"calib_fill=crop"' in page
    assert "prelu=relu, norm=cLN" in page
    # the decomposition: relu/cLN loses in the substitution (its objective is not its quantization-only SI-SNR),
    # keep/gLN in the quantization
    loss = page.split('id="table-loss"')[1].split("</table>")[0]
    assert "substitution_si_snr_db" in loss and "quant_si_snr_db" in loss
    cells = dict(re.findall(r"<td>(prelu=\w+, norm=\w+)</td>(?:<td class='num'>[-\d.]+</td>){3}<td>(\w+)</td>", loss))
    assert cells["prelu=relu, norm=cLN"] == "substitution" and cells["prelu=keep, norm=gLN"] == "quantization", loss
    assert "Substitution loss vs quantization loss" in page
    # failure signatures: the table row (count 1, first = last = trial #2) and the scatter category
    table = page.split('id="table-signatures"')[1].split("</table>")[0]
    assert "calibrate:FillPolicyError:crop" in table and "<td class='num'>1</td><td class='num'>#2</td><td class='num'>#2</td>" in table

    study = optuna.load_study(study_name="rep", storage=f"sqlite:///{root / 'optuna.db'}")
    client = MlflowClient(tracking_uri=f"sqlite:///{root / 'mlflow.db'}")
    exp = client.get_experiment_by_name("rep")
    # the best trials table links each ok trial's MLflow run, best first
    best = page.split('id="table-best"')[1].split("</table>")[0]
    ok = sorted((t for t in study.trials if t.user_attrs["status"] == "ok"), key=lambda t: -t.value)
    links = re.findall(r'href="(http://127\.0\.0\.1:5000/#/experiments/\d+/runs/[0-9a-f]+)"', best)
    assert links == [f"http://127.0.0.1:5000/#/experiments/{exp.experiment_id}/runs/{t.user_attrs['mlflow_run_id']}" for t in ok]
    assert f"{ok[0].value:.2f}" in best
    assert "<th>substitution_si_snr_db</th><th>quant_si_snr_db</th>" in best
    by_run = {r.info.run_id: r for r in client.search_runs([exp.experiment_id], "tags.`hefsweep.role` = 'trial'")}
    for t in ok:  # the objective is end to end: vs the original float model, bounded by both losses
        m = by_run[t.user_attrs["mlflow_run_id"]].data.metrics
        assert t.value == pytest.approx(m["si_snr_db"]) and f"{m['substitution_si_snr_db']:.2f}" in best
        assert m["si_snr_db"] <= min(m["substitution_si_snr_db"], m["quant_si_snr_db"]) + 1.0
    assert f"#/experiments/{exp.experiment_id}/runs?workflowType=machine_learning" in page  # the runs table (FINDINGS 7)

    # fixed dimensions (not Optuna params) come from the trials' MLflow params
    from harness.report import collect_trials

    runs = {r.info.run_id: r for r in client.search_runs([exp.experiment_id], "tags.`hefsweep.role` = 'trial'")}
    rows = collect_trials(study, runs)
    assert [r.status for r in rows] == ["ok", "ok", "failed", "ok"]
    assert all(r.params["width"] == "4000" and r.params["calib_size"] == "4" for r in rows)
    assert rows[1].params["prelu"] == "relu" and rows[2].signature == "calibrate:FillPolicyError:crop"
    assert rows[2].violation == 2.0 and not rows[2].feasible and rows[0].feasible

    parent = client.search_runs([exp.experiment_id], "tags.`hefsweep.role` = 'parent'")[0]
    assert [a.path for a in client.list_artifacts(parent.info.run_id, "report")] == ["report/report.html"]
    logged = Path(client.download_artifacts(parent.info.run_id, "report/report.html", str(swept / "dl")))
    assert logged.read_bytes() == path.read_bytes()


def test_report_options_and_too_few_trials(swept: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    root = swept / "mlruns"
    out_dir = swept / "elsewhere"
    argv = ["report", "--study", "rep", "--root", str(root), "--out", str(out_dir), "--no-log",
            "--ui-url", "http://mlflow.example:8080/", "--boundary", "calib_fill,override_set", "--top", "1"]  # fmt: skip
    assert cli(argv, monkeypatch) == 0
    page = (out_dir / "report.html").read_text()
    assert "Feasibility boundary: calib_fill vs override_set" in page
    best = page.split('id="table-best"')[1].split("</table>")[0]
    assert best.count("http://mlflow.example:8080/#/experiments/") == 1

    # a one-trial study: importances cannot be computed; the section says why instead of failing
    space = load_space(swept / "rep.yaml")
    run_sweep(space, trials=1, study_name="one", root=root, stream=io.StringIO(), enqueue=COMBOS[:1])
    capsys.readouterr()
    assert cli(["report", "--study", "one", "--root", str(root)], monkeypatch) == 0
    out = capsys.readouterr().out
    assert "not drawn: plot-importance: parameter importances need at least 2 successful trials; the study has 1" in out
    page = (root / "reports" / "one" / "report.html").read_text()
    assert '<div id="plot-importance" class="na">' in page and '<div id="plot-history" class="plotly-graph-div"' in page


def test_bad_input_is_one_line(swept: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    root = swept / "mlruns"
    assert cli(["report", "--study", "nope", "--root", str(root)], monkeypatch) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("hefsweep report: error: study 'nope': not found in ") and "one of: " in err and "rep" in err
    assert len(err.splitlines()) == 1

    run_sweep(load_space(swept / "rep.yaml"), trials=0, study_name="empty", root=root, stream=io.StringIO())
    assert cli(["report", "--study", "empty", "--root", str(root)], monkeypatch) == 1
    err = capsys.readouterr().err.strip()
    assert err == "hefsweep report: error: study 'empty': has no trials; expected a study with at least one trial (run `hefsweep sweep`)"

    assert cli(["report", "--study", "rep", "--root", str(swept / "nowhere")], monkeypatch) == 1
    assert "no such database file; expected the store of a sweep" in capsys.readouterr().err
    assert not (swept / "nowhere").exists()  # a read command creates no store

    assert cli(["report", "--study", "rep", "--root", str(root), "--boundary", "prelu"], monkeypatch) == 1
    assert "expected two parameter names" in capsys.readouterr().err
    assert cli(["report", "--study", "rep", "--root", str(root), "--boundary", "prelu,bogus"], monkeypatch) == 1
    assert "unknown parameter(s) bogus" in capsys.readouterr().err
