"""A small real sweep on the ONNX Runtime backend, read back from MLflow and Optuna."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from harness.space import load_space
from harness.sweep import run_sweep

pytestmark = pytest.mark.slow


def space_file(tmp: Path, ckpt: Path, data: Path, dims: str, extra_sets: str = "", name: str = "t") -> Path:
    text = f"""
study: {name}
checkpoint: {ckpt}
data: {{calibration: {data / 'calib'}, evaluation: {data / 'eval'}, eval_clips: 3, min_calibration_clips: 2}}
trials: 4
stage_timeout: 120
seed: 1
dimensions:
{dims}
override_sets:
  none: []
  io16:
    - {{kind: precision16, layers: [input, output]}}
{extra_sets}
"""
    p = tmp / f"{name}.yaml"
    p.write_text(text)
    return p


def test_sweep_logs_parent_and_children(tiny_checkpoint: Path, demo_data: Path, tmp_path: Path) -> None:
    from mlflow import MlflowClient

    dims = """  prelu: [keep, maxmin]
  norm: [gLN, cLN]
  width: 4000
  calib_clip_length: [3200, 8000]
  calib_fill: [pad, repeat]
  calib_size: 4
  override_set: [none, io16]"""
    space = load_space(space_file(tmp_path, tiny_checkpoint, demo_data, dims))
    out = io.StringIO()
    summary = run_sweep(space, trials=4, root=tmp_path / "mlruns", stream=out)
    assert summary.n_trials == 4 and summary.n_ok == 4, out.getvalue()
    assert "[4/4 trial #3]" in out.getvalue() and "best" in out.getvalue()

    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}")
    exp = client.get_experiment_by_name("t")
    assert exp.artifact_location.startswith((tmp_path / "mlruns" / "artifacts").as_uri())
    runs = client.search_runs([exp.experiment_id])
    parents = [r for r in runs if r.data.tags.get("hefsweep.role") == "parent"]
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parents[0].info.run_id]
    assert len(parents) == 1 and len(children) == 4
    for r in children:
        m = r.data.metrics
        assert r.data.tags["hefsweep.status"] == "ok"
        assert r.info.status == "FINISHED"
        assert 0.0 < m["si_snr_db"] < 80.0 and m["si_snr_worst_db"] <= m["si_snr_db"]
        assert {"float_si_snri_db", "quant_si_snri_db", "orig_float_si_snri_db"} <= set(m)
        # the objective is end to end (vs the original float model); these variants' substitutions are exact
        assert m["substitution_si_snr_db"] > 60.0 or r.data.params["norm"] == "cLN"
        assert m["si_snr_db"] <= min(m["substitution_si_snr_db"], m["quant_si_snr_db"]) + 1.0
        assert m["fidelity_si_snr_db"] >= 60.0
        assert {"prelu", "norm", "width", "calib_fill", "override_set"} <= set(r.data.params)
        arts = {a.path for a in client.list_artifacts(r.info.run_id)}
        assert {"export", "calibration", "optimize", "compiled", "metrics", "trial.json"} <= arts
        compiled = [a.path for a in client.list_artifacts(r.info.run_id, "compiled")]
        assert compiled == ["compiled/model.qdq.onnx"]
        manifest = json.loads(Path(client.download_artifacts(r.info.run_id, "calibration/calibration_manifest.json")).read_text())
        assert manifest["width"] == 4000
        audio = sorted(a.path for a in client.list_artifacts(r.info.run_id, "audio"))
        assert len(audio) == 3 * (1 + 2 * 2)  # 3 clips: the mixture, and float + quantized for each of 2 sources
    import soundfile as sf

    a = Path(client.download_artifacts(children[0].info.run_id, "audio"))
    flt, rate = sf.read(next(a.glob("0_*_s1_float.wav")))
    qnt, _ = sf.read(next(a.glob("0_*_s1_quantized.wav")))
    from harness.metrics import si_snr

    assert rate == 16000 and len(flt) == 4000
    assert abs(float(si_snr(qnt, flt)) - children[0].data.metrics["quant_si_snr_db"]) < 6.0  # the pair sounds as measured
    parent = client.get_run(parents[0].info.run_id)
    assert parent.data.metrics["n_complete"] == 4
    assert parent.data.metrics["best_si_snr_db"] == pytest.approx(max(r.data.metrics["si_snr_db"] for r in children))

    # Resume: the same study continues, and repeated stages come from the cache.
    again = run_sweep(space, trials=2, root=tmp_path / "mlruns", stream=io.StringIO())
    import optuna

    study = optuna.load_study(study_name="t", storage=f"sqlite:///{tmp_path / 'mlruns' / 'optuna.db'}")
    assert len(study.trials) == 6 and again.n_ok == 2
    runs = client.search_runs([exp.experiment_id], filter_string="tags.`hefsweep.role` = 'trial'")
    assert len(runs) == 6
    assert any(r.data.tags.get("hefsweep.cached.export") == "true" for r in runs)


def test_failures_are_classified_and_the_sweep_goes_on(tiny_checkpoint: Path, demo_data: Path, tmp_path: Path) -> None:
    from mlflow import MlflowClient

    dims = """  width: 4000
  calib_clip_length: [3200, 8000]
  calib_fill: crop
  calib_size: 2
  override_set: [none, ghost]"""
    sets = "  ghost:\n    - {kind: precision16, layers: [no_such_layer]}"
    space = load_space(space_file(tmp_path, tiny_checkpoint, demo_data, dims, sets, name="f"))
    combos = [{"calib_clip_length": c, "override_set": o} for c in (3200, 8000) for o in ("none", "ghost")]
    summary = run_sweep(space, trials=4, root=tmp_path / "mlruns", stream=io.StringIO(), enqueue=combos)
    assert summary.n_trials == 4
    # crop cannot lengthen a 3200-sample clip to W=4000; the ghost override names no layer
    assert summary.signatures == {
        "calibrate:FillPolicyError:crop": 2,
        "optimize:OverrideTargetNotFound:no_such_layer": 1,
    }
    assert summary.n_ok == 1

    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}")
    exp = client.get_experiment_by_name("f")
    failed = client.search_runs([exp.experiment_id], filter_string="tags.`hefsweep.status` = 'failed'")
    assert len(failed) == summary.n_failed
    for r in failed:
        assert r.info.status == "FAILED"
        f = json.loads(Path(client.download_artifacts(r.info.run_id, "failure.json")).read_text())
        assert f["signature"] == r.data.tags["hefsweep.signature"]
        if f["stage"] == "optimize":
            assert "nearest" in f["message"]
            logs = [a.path for a in client.list_artifacts(r.info.run_id, "failed_optimize")]
            assert "failed_optimize/optimize.log" in logs


def test_stage_timeout_is_a_classified_failure(tiny_checkpoint: Path, demo_data: Path, tmp_path: Path) -> None:
    p = space_file(tmp_path, tiny_checkpoint, demo_data, "  width: 4000\n  calib_size: 2", name="to")
    p.write_text(p.read_text().replace("stage_timeout: 120", "stage_timeout: 0.05"))
    summary = run_sweep(load_space(p), trials=1, root=tmp_path / "mlruns", stream=io.StringIO())
    # a spawned child cannot even import its backend in 50 ms: the first isolated stage times out
    assert summary.signatures == {"translate:Timeout:0.05s": 1}


def test_wilcoxon_pruner_stops_clearly_worse_trials(tiny_checkpoint: Path, demo_data: Path, tmp_path: Path) -> None:
    """8-bit after a 16-bit best trial: its per-clip SI-SNR is worse on every clip, so emulation stops early."""
    from harness.audio import make_demo_dataset
    from mlflow import MlflowClient

    data = tmp_path / "more"
    make_demo_dataset(data, seed=1, n_calib=4, calib_seconds=1.0, n_eval=8, eval_seconds=0.3)
    p = space_file(tmp_path, tiny_checkpoint, data, "  width: 4000\n  calib_size: 2\n  override_set: [all16, none]",
                   extra_sets="  all16:\n    - {kind: precision16, layers: ['*']}", name="w")  # fmt: skip
    text = p.read_text().replace("eval_clips: 3", "eval_clips: 8")
    p.write_text(text + "pruner: {kind: wilcoxon, p_threshold: 0.1, n_startup_steps: 2}\n")
    combos = [{"override_set": "all16"}, {"override_set": "none"}]
    out = io.StringIO()
    summary = run_sweep(load_space(p), trials=2, root=tmp_path / "mlruns", stream=out, enqueue=combos)
    assert summary.n_ok == 1 and summary.n_pruned == 1, out.getvalue()
    import optuna

    study = optuna.load_study(study_name="w", storage=f"sqlite:///{tmp_path / 'mlruns' / 'optuna.db'}")
    best, pruned = study.trials
    assert best.state.name == "COMPLETE" and len(best.intermediate_values) == 8
    assert pruned.state.name == "PRUNED" and 2 <= len(pruned.intermediate_values) < 8  # stopped before the end
    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}")
    run = client.get_run(pruned.user_attrs["mlflow_run_id"])
    assert run.data.tags["hefsweep.status"] == "pruned"


def test_a_crash_in_the_noise_stage_never_fails_the_trial(
    tiny_checkpoint: Path, demo_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Layer noise runs ONNX Runtime on the quantized model in the stage worker, like emulation; a segfault there is
    written as "not available" and the trial, which passed, stays ok."""
    from mlflow import MlflowClient

    monkeypatch.setenv("HEFSWEEP_INJECT", "noise:segv")
    dims = "  width: 4000\n  calib_clip_length: 8000\n  calib_size: 4\n  override_set: none"
    space = load_space(space_file(tmp_path, tiny_checkpoint, demo_data, dims, name="n"))
    summary = run_sweep(space, trials=1, root=tmp_path / "mlruns", stream=io.StringIO())
    assert summary.n_ok == 1
    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}")
    (run,) = client.search_runs([client.get_experiment_by_name("n").experiment_id], "tags.`hefsweep.role` = 'trial'")
    table = json.loads(Path(client.download_artifacts(run.info.run_id, "noise/layer_noise.json")).read_text())
    assert table["available"] is False and table["reason"].startswith("measurement failed: Crash: child died by SIGSEGV")
