"""Sweeps from an existing ONNX as the model (issue 15): (a) a 3-D ONNX exported by asteroid, (b) a 4-D ONNX with
the real export's structure and synthetic weights; each a 2-trial ONNX Runtime sweep read back from MLflow."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from support.onnx_models import REAL_ONNX, asteroid_onnx, real_structure_onnx

from harness.space import load_space
from harness.sweep import run_sweep

pytestmark = pytest.mark.slow


def _space(tmp: Path, onnx_path: Path, data: Path, dims: str, enqueue: str) -> Path:
    text = f"""
study: onnx
model: {{onnx: {onnx_path}, sample_rate: 16000}}
data: {{calibration: {data / 'calib'}, evaluation: {data / 'eval'}, eval_clips: 2, min_calibration_clips: 2}}
trials: 2
stage_timeout: 300
seed: 0
layer_noise_clips: 0
dimensions:
{dims}
enqueue:
{enqueue}
"""
    path = tmp / "onnx.yaml"
    path.write_text(text)
    return path


def _children(root: Path) -> list:
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{root / 'mlflow.db'}")
    exp = client.get_experiment_by_name("onnx")
    runs = client.search_runs([exp.experiment_id])
    return client, sorted((r for r in runs if r.data.tags.get("mlflow.parentRunId")), key=lambda r: r.info.start_time)


def _export_meta(client, run) -> dict:
    return json.loads(Path(client.download_artifacts(run.info.run_id, "trial.json")).read_text())


def test_sweep_from_asteroid_3d_onnx(demo_data: Path, tmp_path: Path) -> None:
    onnx_path = asteroid_onnx(tmp_path / "asteroid.onnx", width=4000, dynamic=True)
    dims = ("  prelu: [keep, maxmin]\n  gln_stats: [joint, split]\n  decoder: [grouped, per_source]\n"
            "  mask_mul: [repeat, per_source]\n  width: 4000\n  calib_size: 4\n  calib_clip_length: 4000")  # fmt: skip
    enqueue = ("  - {prelu: keep, gln_stats: joint, decoder: grouped, mask_mul: repeat}\n"
               "  - {prelu: maxmin, gln_stats: split, decoder: per_source, mask_mul: per_source}")  # fmt: skip
    space = load_space(_space(tmp_path, onnx_path, demo_data, dims, enqueue))
    out = io.StringIO()
    summary = run_sweep(space, trials=2, root=tmp_path / "mlruns", stream=out)
    assert summary.n_trials == 2 and summary.n_ok == 2, out.getvalue()
    client, runs = _children(tmp_path / "mlruns")
    assert len(runs) == 2
    for run in runs:
        m = run.data.metrics
        # the exact conversion and rewrites: the export reproduces the user's ONNX (the gate and the float outputs)
        assert m["fidelity_si_snr_db"] >= 60.0 and m["substitution_si_snr_db"] >= 60.0
        # the demo checkpoint's trained weights quantize well at 8 bits: far from noise, below the float's
        assert 10.0 < m["si_snr_db"] < 60.0
        assert m["orig_float_si_snri_db"] > 5.0  # the original (the user's ONNX) separates the demo mixtures
    fired = [_export_meta(client, r)["fired"] for r in runs]
    assert fired == [[], ["onnx:prelu=maxmin", "onnx:gln_stats=split", "onnx:mask_mul=per_source", "onnx:decoder=per_source"]]


@pytest.mark.skipif(not REAL_ONNX.is_file(), reason="../shared/real_dfc/convtas_hailo_ready.onnx not present")
def test_sweep_from_real_structure_4d_onnx(demo_data: Path, tmp_path: Path) -> None:
    onnx_path = real_structure_onnx(tmp_path / "real.onnx")
    dims = ("  decoder: [grouped, per_source]\n  mask_mul: [repeat, per_source]\n  prelu: maxmin\n  gln_stats: split\n"
            "  width: 3200\n  calib_size: 4\n  calib_clip_length: 3200")  # fmt: skip
    enqueue = "  - {decoder: grouped, mask_mul: repeat}\n  - {decoder: per_source, mask_mul: per_source}"
    space = load_space(_space(tmp_path, onnx_path, demo_data, dims, enqueue))
    out = io.StringIO()
    summary = run_sweep(space, trials=2, root=tmp_path / "mlruns", stream=out)
    assert summary.n_trials == 2 and summary.n_ok == 2, out.getvalue()
    client, runs = _children(tmp_path / "mlruns")
    for run in runs:
        m = run.data.metrics
        assert m["fidelity_si_snr_db"] >= 60.0 and m["substitution_si_snr_db"] >= 60.0
        assert m["si_snr_db"] > 0.0  # synthetic weights: a real quantization error, not noise
    infos = [_export_meta(client, r) for r in runs]
    # the real export already writes PReLU as max/min and gLN as two single-axis ReduceMeans: those never fire
    assert [i["fired"] for i in infos] == [[], ["onnx:mask_mul=per_source", "onnx:decoder=per_source"]]
    assert infos[1]["export_ops"]["ConvTranspose"] == 2 and infos[0]["export_ops"]["ConvTranspose"] == 1
