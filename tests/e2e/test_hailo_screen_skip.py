"""A Hailo sweep's ONNX Runtime screen that cannot run a trial (its override set names HN layers, which the ONNX
model has not) says so -- a tag and a line -- instead of skipping the screen silently."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from harness.space import load_space
from harness.sweep import run_sweep

pytestmark = pytest.mark.slow


def test_a_skipped_screen_is_tagged_and_shown(
    tiny_checkpoint: Path, demo_data: Path, dfc_python: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mlflow import MlflowClient

    monkeypatch.setenv("HEFSWEEP_HAILO_PYTHON", str(dfc_python))
    p = tmp_path / "sk.yaml"
    p.write_text(f"""
study: sk
checkpoint: {tiny_checkpoint}
backend: hailo
data: {{calibration: {demo_data / 'calib'}, evaluation: {demo_data / 'eval'}, eval_clips: 2, min_calibration_clips: 2}}
stage_timeout: 120
screen: {{keep_fraction: 0.5, min_screened: 2}}
dimensions:
  norm: cLN
  decoder: per_source
  mask_mul: per_source
  width: 2048
  calib_size: 2
  override_set: hn
override_sets:
  hn:
    - {{kind: precision16, layers: [output_layer1]}}
""")
    out = io.StringIO()
    run_sweep(load_space(p), trials=1, root=tmp_path / "mlruns", stream=out)
    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}")
    exp = client.get_experiment_by_name("sk")
    (run,) = client.search_runs([exp.experiment_id], "tags.`hefsweep.role` = 'trial'")
    assert run.data.tags.get("hefsweep.screen") == "skipped", (run.data.tags, out.getvalue())
    assert run.data.tags["hefsweep.screen_skipped"].startswith("optimize:OverrideTargetNotFound"), run.data.tags
    assert "screen on onnxruntime skipped (optimize:OverrideTargetNotFound" in out.getvalue(), out.getvalue()
    assert "running on hailo unscreened" in out.getvalue()
