"""A Hailo promote re-emulates the trial's quantized HAR: its sha256 is recorded at trial time
(``hefsweep.har_sha256``) and a stored HAR that changed since is refused, as a changed HEF is."""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

import pytest

from harness import cli
from harness.space import load_space
from harness.sweep import run_sweep

pytestmark = pytest.mark.slow

FAKES = Path(__file__).resolve().parents[1] / "fakes"


def test_the_har_hash_is_recorded_and_verified(
    tiny_checkpoint: Path, demo_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    from mlflow import MlflowClient

    monkeypatch.syspath_prepend(str(FAKES))
    monkeypatch.setenv("PYTHONPATH", str(FAKES))  # the isolated stage workers import the fake too
    monkeypatch.setenv("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    p = tmp_path / "h.yaml"
    p.write_text(f"""
study: har
checkpoint: {tiny_checkpoint}
backend: hailo
backend_options: {{hw_arch: hailo8}}
data: {{calibration: {demo_data / 'calib'}, evaluation: {demo_data / 'eval'}, eval_clips: 2, min_calibration_clips: 2}}
stage_timeout: 120
dimensions:
  width: 2048
  calib_size: 2
  decoder: per_source
  mask_mul: per_source
""")
    root = tmp_path / "mlruns"
    assert run_sweep(load_space(p), trials=1, root=root, stream=io.StringIO()).n_ok == 1
    client = MlflowClient(f"sqlite:///{root / 'mlflow.db'}")
    (run,) = client.search_runs([client.get_experiment_by_name("har").experiment_id], "tags.`hefsweep.role` = 'trial'")
    (har,) = (root / "artifacts").rglob("optimize/model_quantized.har")
    assert run.data.tags["hefsweep.har_sha256"] == hashlib.sha256(har.read_bytes()).hexdigest()

    store = ["--root", str(root)]
    capsys.readouterr()
    assert cli.main(["promote", "--run", run.info.run_id, *store]) == 0
    assert "[ok] har_sha256" in capsys.readouterr().out

    har.write_bytes(har.read_bytes() + b"\0")  # the stored HAR changed after the trial
    code = cli.main(["promote", "--run", run.info.run_id, "--alias", "edge", *store])
    err = capsys.readouterr().err.strip()
    assert code == 1 and len(err.splitlines()) == 1, err
    assert "model_quantized.har" in err and "hefsweep.har_sha256" in err, err
