"""``mode: frontier`` on the ONNX Runtime backend (fast): the objective is capacity for every trial, failed or not;
feasible = every stage passed; capacity metrics and ``needs_retraining`` on every trial; resized exports."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from harness.errors import ConfigError, HarnessError
from harness.space import load_space
from harness.sweep import run_sweep

pytestmark = pytest.mark.slow


def frontier_space(tmp: Path, ckpt: Path, data: Path, extra: str = "", dims: str = "") -> Path:
    p = tmp / "f.yaml"
    p.write_text(f"""
study: f
checkpoint: {ckpt}
data: {{calibration: {data / 'calib'}, evaluation: {data / 'eval'}, eval_clips: 2, min_calibration_clips: 2}}
stage_timeout: 120
seed: 1
mode: frontier
worst_clip_floor_db: 30                # far above any resized model's worst clip: it must not apply here
layer_noise_clips: 0
{extra}
dimensions:
  hid_chan: [16, 32, 48]
  n_blocks: [1, 2, 3]
  width: 2048
  calib_clip_length: [1024, 4000]
  calib_fill: [crop, repeat]           # crop with 1024-sample clips fails calibrate (FillPolicyError)
  calib_size: 4
{dims}
""")
    return p


def test_frontier_objective_constraints_and_tags(tiny_checkpoint: Path, demo_data: Path, tmp_path: Path) -> None:
    import optuna
    from mlflow import MlflowClient

    from harness.model import capacity, load_checkpoint, resized_config

    combos = [
        {"hid_chan": 32, "n_blocks": 2, "calib_clip_length": 4000, "calib_fill": "repeat"},  # the checkpoint's own
        {"hid_chan": 48, "n_blocks": 3, "calib_clip_length": 4000, "calib_fill": "repeat"},  # larger: resized
        {"hid_chan": 16, "n_blocks": 1, "calib_clip_length": 1024, "calib_fill": "crop"},  # fails in calibrate
    ]
    out = io.StringIO()
    summary = run_sweep(load_space(frontier_space(tmp_path, tiny_checkpoint, demo_data)), trials=3,
                        root=tmp_path / "mlruns", stream=out, enqueue=combos)  # fmt: skip
    assert (summary.n_ok, summary.n_failed) == (2, 1), out.getvalue()
    assert summary.objective == "capacity_macs" and "MMAC" in out.getvalue()

    base = load_checkpoint(tiny_checkpoint).config
    expected = [capacity(resized_config(base, {k: c[k] for k in ("hid_chan", "n_blocks")}), 2048) for c in combos]
    study = optuna.load_study(study_name="f", storage=f"sqlite:///{tmp_path / 'mlruns' / 'optuna.db'}")
    trials = sorted(study.get_trials(states=(optuna.trial.TrialState.COMPLETE,)), key=lambda t: t.number)
    assert [t.number for t in trials] == [0, 1, 2]  # (the failure's follow-ups wait in the queue)
    # the objective is the capacity (MACs per input of W) for every trial, the failed one included
    assert [t.value for t in trials] == [float(c.macs) for c in expected]
    assert [t.user_attrs["capacity_params"] for t in trials] == [float(c.params) for c in expected]
    assert [t.user_attrs["needs_retraining"] for t in trials] == [False, True, True]
    # feasible = every stage passed; the worst-clip floor (30 dB) does not apply
    assert trials[0].constraints == trials[1].constraints == {"failure": 0.0, "compile": 0.0, "worst_clip": 0.0}
    assert trials[2].constraints["failure"] > 0
    assert study.best_trial.number == 1 and summary.best_trial == 1  # the largest feasible model

    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}")
    exp = client.get_experiment_by_name("f")
    runs = {int(r.data.tags["hefsweep.trial"]): r for r in client.search_runs([exp.experiment_id], "tags.`hefsweep.role` = 'trial'")}
    for n, cap in enumerate(expected):
        assert runs[n].data.metrics["capacity_macs"] == cap.macs and runs[n].data.metrics["capacity_params"] == cap.params
    assert [runs[n].data.tags["hefsweep.needs_retraining"] for n in range(3)] == ["false", "true", "true"]
    assert runs[2].data.tags["hefsweep.status"] == "failed"
    # the resized trial exported the resized model (its own export key); the checkpoint's trial did not resize
    t1 = json.loads(Path(client.download_artifacts(runs[1].info.run_id, "trial.json")).read_text())
    t0 = json.loads(Path(client.download_artifacts(runs[0].info.run_id, "trial.json")).read_text())
    assert t1["resized"]["changed"] == {"hid_chan": 48, "n_blocks": 3} and "resized" not in t0
    assert 0 < t1["resized"]["params_from_checkpoint"] < t1["resized"]["params_total"] == expected[1].params
    assert t1["stages"]["export"]["key"] != t0["stages"]["export"]["key"]
    assert t1["stages"]["original"]["key"] == t0["stages"]["original"]["key"]  # scored against the original model
    assert runs[1].data.metrics["si_snr_db"] < runs[0].data.metrics["si_snr_db"]  # needs retraining: scores poorly
    parent = client.get_run(summary.parent_run_id)
    assert parent.data.metrics["best_capacity_macs"] == expected[1].macs and "best_si_snr_db" not in parent.data.metrics


def test_recover_distils_the_resized_student_from_the_original(
    tiny_checkpoint: Path, demo_data: Path, tmp_path: Path
) -> None:
    import optuna

    space = load_space(frontier_space(tmp_path, tiny_checkpoint, demo_data, extra="recover_seconds: 60",
                                      dims="  recover_steps: 30"))  # fmt: skip
    combo = [{"hid_chan": 16, "n_blocks": 1, "calib_clip_length": 4000, "calib_fill": "repeat"}]
    summary = run_sweep(space, trials=1, root=tmp_path / "mlruns", stream=io.StringIO(), enqueue=combo)
    assert summary.n_ok == 1
    from mlflow import MlflowClient

    study = optuna.load_study(study_name="f", storage=f"sqlite:///{tmp_path / 'mlruns' / 'optuna.db'}")
    run_id = study.trials[0].user_attrs["mlflow_run_id"]
    run = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}").get_run(run_id)
    m = run.data.metrics
    assert m["recover_steps_done"] == 30
    # distillation from the original teacher moves the resized student towards it
    assert m["recover_si_snr_after_db"] > m["recover_si_snr_before_db"]
    assert m["recover_loss_end"] < m["recover_loss_start"]


@pytest.mark.parametrize("extra", ["goal_db: 20", "compile_top_k: 2", "pruner: {kind: wilcoxon}"])
def test_frontier_refuses_settings_that_rank_by_si_snr(
    tiny_checkpoint: Path, demo_data: Path, tmp_path: Path, extra: str
) -> None:
    key = extra.split(":")[0]
    with pytest.raises(ConfigError, match=rf"{key}: set with mode: frontier; expected no goal_db"):
        run_sweep(load_space(frontier_space(tmp_path, tiny_checkpoint, demo_data, extra=extra)), trials=1,
                  root=tmp_path / "mlruns", stream=io.StringIO())  # fmt: skip
    assert not (tmp_path / "mlruns" / "optuna.db").exists()  # refused before any store was touched


def test_a_resized_model_with_exact_rewrites_passes_the_fidelity_gate(
    tiny_checkpoint: Path, demo_data: Path, tmp_path: Path
) -> None:
    """The gate checks the ONNX against the resized model without the exact rewrites (not the checkpoint's model)."""
    space = load_space(frontier_space(tmp_path, tiny_checkpoint, demo_data,
                                      dims="  gln_stats: split\n  decoder: per_source\n  mask_mul: per_source"))  # fmt: skip
    combo = [{"hid_chan": 48, "n_blocks": 1, "calib_clip_length": 4000, "calib_fill": "repeat"}]
    out = io.StringIO()
    summary = run_sweep(space, trials=1, root=tmp_path / "mlruns", stream=out, enqueue=combo)
    assert summary.n_ok == 1, out.getvalue()


def test_search_mode_with_a_capacity_value_tags_the_resized_model_but_keeps_the_si_snr_objective(
    tiny_checkpoint: Path, demo_data: Path, tmp_path: Path
) -> None:
    import optuna
    from mlflow import MlflowClient

    from harness.report import build_report

    text = frontier_space(tmp_path, tiny_checkpoint, demo_data).read_text().replace("mode: frontier", "mode: search")
    text = text.replace("worst_clip_floor_db: 30 ", "")  # (a search study's floor would apply: not this test's point)
    (tmp_path / "f.yaml").write_text(text)
    combo = [{"hid_chan": 48, "n_blocks": 1, "calib_clip_length": 4000, "calib_fill": "repeat"}]
    summary = run_sweep(load_space(tmp_path / "f.yaml"), trials=1, root=tmp_path / "mlruns", stream=io.StringIO(),
                        enqueue=combo)  # fmt: skip
    assert summary.objective == "si_snr_db" and summary.n_ok == 1
    store = f"sqlite:///{tmp_path / 'mlruns' / 'optuna.db'}"
    trial = optuna.load_study(study_name="f", storage=store).trials[0]
    run = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}").get_run(trial.user_attrs["mlflow_run_id"])
    assert trial.value == pytest.approx(run.data.metrics["si_snr_db"])  # the objective is still SI-SNR
    assert run.data.tags["hefsweep.needs_retraining"] == "true" and run.data.tags["hefsweep.mode"] == "search"
    assert "capacity_macs" in run.data.metrics
    # --frontier on a study that is not a frontier study is the user's error: one line
    with pytest.raises(HarnessError, match="--frontier width,n_layers: study 'f' is not a frontier study"):
        build_report("f", storage=store, tracking_uri=f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}",
                     out_dir=tmp_path / "rep", frontier_axes=["width", "n_layers"])  # fmt: skip
