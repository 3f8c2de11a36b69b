"""A capacity-frontier study on the fake DFC (.venv-dfc): >= 12 trials, feasible and infeasible, and its report.

The fake's allocator refuses a layer whose output row (H x W x C x bytes) reaches 64 KiB (``Agent infeasible``), so
on the tiny checkpoint (kernel 16, stride 8) channels x latent width decide: at W = 16000 (1999 frames) 32 channels
fit (63,968 B) and 48 do not; at W = 2048 (255 frames) every candidate fits.
"""

from __future__ import annotations

import io
import re
import time
from pathlib import Path

import pytest

from harness.space import load_space
from harness.sweep import run_sweep

pytestmark = pytest.mark.slow

N_TRIALS = 12


def test_frontier_study_on_the_fake_dfc_draws_its_frontier(
    tiny_checkpoint: Path, demo_data: Path, dfc_python: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import optuna
    from mlflow import MlflowClient

    from harness.report import build_report

    monkeypatch.setenv("HEFSWEEP_HAILO_PYTHON", str(dfc_python))
    p = tmp_path / "fr.yaml"
    p.write_text(f"""
study: fr
checkpoint: {tiny_checkpoint}
backend: hailo
mode: frontier
data: {{calibration: {demo_data / 'calib'}, evaluation: {demo_data / 'eval'}, eval_clips: 1, min_calibration_clips: 2}}
stage_timeout: 120
seed: 1
max_repairs: 1
layer_noise_clips: 0
dimensions:
  n_filters: [16, 32]
  bn_chan: [16, 24]
  hid_chan: [16, 32, 48]
  skip_chan: [16]
  n_blocks: [1, 2]
  n_repeats: [1, 2]
  width: [2048, 16000]
  norm: cLN
  decoder: per_source
  mask_mul: per_source
  calib_size: 2
override_sets:
  none: []
""")
    ladder = [
        {"n_filters": 32, "bn_chan": 24, "hid_chan": 48, "n_blocks": 2, "n_repeats": 2, "width": 16000},  # too wide
        {"n_filters": 16, "bn_chan": 16, "hid_chan": 32, "n_blocks": 2, "n_repeats": 1, "width": 2048},  # the ckpt's
    ]
    out = io.StringIO()
    start = time.monotonic()
    summary = run_sweep(load_space(p), trials=N_TRIALS, root=tmp_path / "mlruns", stream=out, enqueue=ladder)
    sweep_s = time.monotonic() - start
    print(f"frontier sweep: {N_TRIALS} trials in {sweep_s:.1f} s")
    assert summary.n_trials == N_TRIALS, out.getvalue()

    study = optuna.load_study(study_name="fr", storage=f"sqlite:///{tmp_path / 'mlruns' / 'optuna.db'}")
    done = [t for t in study.trials if t.state.name == "COMPLETE"]
    feasible = [t for t in done if all(v <= 0 for v in t.constraints.values())]
    infeasible = [t for t in done if t not in feasible]
    assert feasible and infeasible, out.getvalue()
    # the fake's row budget decides: every infeasible trial failed in compile with Agent infeasible, and its widest
    # layer row (max channels x latent frames, 8-bit) reaches 64 KiB; every feasible one stays below
    for t in done:
        a = t.user_attrs["capacity_arch"]
        row = max(a["n_filters"], a["bn_chan"], a["hid_chan"], a["skip_chan"]) * t.user_attrs["capacity_frames"]
        if t in feasible:
            assert row < 64 * 1024, (t.number, a)
        else:
            assert t.user_attrs["signature"] == "compile:BackendAllocatorException:agent_infeasible", t.user_attrs
            assert row >= 64 * 1024, (t.number, a)
        assert t.value == t.user_attrs["capacity_macs"]  # the objective of every trial, feasible or not
    best = study.best_trial
    assert best.value == max(t.value for t in feasible) and best in feasible
    assert best.value > min(t.value for t in infeasible) or best.user_attrs["capacity_arch"]["width"] == 16000

    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}")
    exp = client.get_experiment_by_name("fr")
    runs = client.search_runs([exp.experiment_id], "tags.`hefsweep.role` = 'trial'")
    assert len(runs) == N_TRIALS
    assert all("capacity_macs" in r.data.metrics and "capacity_params" in r.data.metrics for r in runs)
    retrain = {r.data.tags["hefsweep.needs_retraining"] for r in runs}
    assert "true" in retrain  # resized models are marked; the checkpoint's own architecture is not
    ckpt_run = next(r for r in runs if r.data.params["hid_chan"] == "32" and r.data.params["n_filters"] == "16"
                    and r.data.params["bn_chan"] == "16" and r.data.params["n_blocks"] == "2"
                    and r.data.params["n_repeats"] == "1")  # fmt: skip
    assert ckpt_run.data.tags["hefsweep.needs_retraining"] == "false"
    hefs = [r for r in runs if r.data.tags["hefsweep.status"] == "ok"]
    assert all(r.data.tags.get("hefsweep.artifact", "").endswith(".hef") for r in hefs)

    start = time.monotonic()
    report = build_report("fr", storage=f"sqlite:///{tmp_path / 'mlruns' / 'optuna.db'}",
                          tracking_uri=f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}", out_dir=tmp_path / "rep")  # fmt: skip
    print(f"report: {time.monotonic() - start:.1f} s")
    page = report.path.read_text()
    assert '<section id="frontier">' in page and "plot-frontier" in report.plots
    assert f"Largest feasible model: trial #{best.number}, N=" in page
    fig = page.split('id="plot-frontier"')[1].split("</script>")[0]
    assert '"name":"feasible (compiled)"' in fig and '"name":"infeasible (failed)"' in fig
    assert f'"name":"largest feasible: trial #{best.number}"' in fig
    assert re.search(r"Capacity frontier: capacity_params vs \w+ \(\d+ feasible, \d+ infeasible\)", fig)
    table = page.split('id="table-frontier"')[1].split("</table>")[0]
    first = re.search(r"<td class='num'>1</td><td class='num'>#(\d+)</td><td class='num'>([\d,]+)</td>", table)
    assert first and int(first.group(1)) == best.number and int(first.group(2).replace(",", "")) == best.value
