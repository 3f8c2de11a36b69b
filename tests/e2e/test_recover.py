"""A sweep with the recover dimension: the recovery's metrics and artifacts reach MLflow."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from harness.space import load_space
from harness.sweep import run_sweep

pytestmark = pytest.mark.slow


def test_sweep_logs_recovery_metrics_and_artifacts(tiny_checkpoint: Path, demo_data: Path, tmp_path: Path) -> None:
    from mlflow import MlflowClient

    p = tmp_path / "r.yaml"
    p.write_text(f"""
study: r
checkpoint: {tiny_checkpoint}
data: {{calibration: {demo_data / 'calib'}, evaluation: {demo_data / 'eval'}, eval_clips: 3, min_calibration_clips: 2}}
trials: 2
stage_timeout: 120
seed: 1
layer_noise_clips: 0
recover_seconds: 60
dimensions:
  norm: [gLN, cLN]
  width: 4000
  calib_size: 2
  recover_steps: 20
""")
    space = load_space(p)
    out = io.StringIO()
    summary = run_sweep(space, trials=2, root=tmp_path / "mlruns", stream=out, enqueue=[{"norm": "cLN"}, {"norm": "gLN"}])
    assert summary.n_ok == 2, out.getvalue()
    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}")
    exp = client.get_experiment_by_name("r")
    runs = {r.data.params["norm"]: r for r in client.search_runs([exp.experiment_id], "tags.`hefsweep.role` = 'trial'")}
    cln, gln = runs["cLN"], runs["gLN"]
    m = cln.data.metrics
    assert cln.data.params["recover_steps"] == "20"
    assert m["recover_si_snr_after_db"] > m["recover_si_snr_before_db"] and m["recover_loss_end"] < m["recover_loss_start"]
    assert cln.data.tags["hefsweep.cached.recover"] == "false"
    arts = {a.path for a in client.list_artifacts(cln.info.run_id, "recover")}
    assert {"recover/recover.log", "recover/loss.json"} <= arts
    # gLN on a gLN checkpoint changes nothing: no recovery, recorded as skipped
    assert not any(k.startswith("recover_") for k in gln.data.metrics)
    trial = json.loads(Path(client.download_artifacts(gln.info.run_id, "trial.json")).read_text())
    assert trial["recover"] == "skipped (exact)" and "recover" not in trial["stages"]
