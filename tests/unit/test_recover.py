"""The recover stage: distillation of a lossy substitution into the original's outputs (harness/recover.py) and its
place in the pipeline (cached, skipped for exact rewrites, its weights exported)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from harness.audio import list_audio, load_eval_set
from harness.model import load_checkpoint
from harness.recover import (
    RecoverSettings,
    distill,
    needs_recovery,
    recovered_model,
    run_recover_stage,
    training_signals,
)
from harness.substitutions import SubstitutionSpec, apply_substitutions

W = 4000


@pytest.fixture(scope="module")
def audio(demo_data: Path) -> tuple[list[np.ndarray], np.ndarray]:
    """(training signals from the calibration files, held-out evaluation mixtures) at W."""
    signals = training_signals(list_audio(demo_data / "calib"), 16000, W)
    ev = load_eval_set(demo_data / "eval", sample_rate=16000, width=W, n_src=2)
    return signals, ev.mixtures


@pytest.mark.parametrize("spec", [SubstitutionSpec(norm="cLN"), SubstitutionSpec(prelu="relu", norm="cLN")])
def test_distillation_lowers_the_loss_and_raises_si_snr_on_held_out_audio(
    tiny_checkpoint: Path, audio: Any, spec: SubstitutionSpec
) -> None:
    teacher = load_checkpoint(tiny_checkpoint)
    student, _ = apply_substitutions(teacher, spec)
    signals, held_out = audio
    settings = RecoverSettings(steps=80, lr=3e-3, batch=4, seconds=120)
    result = distill(teacher, student, signals, W, settings, eval_mixtures=held_out)
    assert result.steps_done == 80 and not result.stopped_early
    assert result.loss_end < result.loss_start - 3.0, result  # dB of -SNR vs the teacher
    assert result.si_snr_before_db is not None and result.si_snr_after_db is not None
    assert result.si_snr_after_db > result.si_snr_before_db + 3.0, result
    # the measurement is the student's own: recompute it
    from harness.metrics import si_snr

    with torch.no_grad():
        x = torch.from_numpy(np.array(held_out))[:, None, None, :]
        got = float(si_snr(student(x)[:, :, 0].numpy(), teacher(x)[:, :, 0].numpy()).mean())
    assert got == pytest.approx(result.si_snr_after_db, abs=1e-3)


def test_distillation_is_deterministic(tiny_checkpoint: Path, audio: Any) -> None:
    teacher = load_checkpoint(tiny_checkpoint)
    signals, _ = audio
    states = []
    for _ in range(2):
        student, _ = apply_substitutions(teacher, SubstitutionSpec(norm="cLN"))
        distill(teacher, student, signals, W, RecoverSettings(steps=6, batch=2, seconds=60))
        states.append(student.state_dict())
    for k, v in states[0].items():
        assert torch.equal(v, states[1][k]), k


def test_time_budget_stops_training(tiny_checkpoint: Path, audio: Any) -> None:
    teacher = load_checkpoint(tiny_checkpoint)
    student, _ = apply_substitutions(teacher, SubstitutionSpec(norm="cLN"))
    signals, _ = audio
    ticks = iter(range(10_000))  # one "second" per clock reading: start, then one reading per step

    lines: list[str] = []
    result = distill(
        teacher, student, signals, W, RecoverSettings(steps=50, batch=2, seconds=5), clock=lambda: float(next(ticks)),
        on_log=lines.append,
    )
    assert result.stopped_early and result.steps_done == 4  # the 5th step would start at t = 5
    assert any("time budget 5 s reached after 4 of 50 steps" in line for line in lines)


@pytest.mark.parametrize(
    ("spec", "needed"),
    [
        (SubstitutionSpec(), False),
        (SubstitutionSpec(prelu="maxmin"), False),
        (SubstitutionSpec(norm="gLN"), False),  # the checkpoint's own norm: nothing changes
        (SubstitutionSpec(gln_stats="split", decoder="per_source", mask_mul="per_source"), False),
        (SubstitutionSpec(prelu="maxmin", norm="gLN", decoder="per_source"), False),
        (SubstitutionSpec(prelu="relu"), True),
        (SubstitutionSpec(norm="cLN"), True),
        (SubstitutionSpec(norm="identity", decoder="per_source"), True),
        (SubstitutionSpec(clamp=8.0), True),
    ],
)
def test_only_lossy_substitutions_need_recovery(tiny_checkpoint: Path, spec: SubstitutionSpec, needed: bool) -> None:
    assert needs_recovery(load_checkpoint(tiny_checkpoint), spec) is needed


def test_stage_writes_weights_log_and_curve_and_exact_rewrites_keep_them(
    tiny_checkpoint: Path, demo_data: Path, audio: Any, tmp_path: Path
) -> None:
    model = load_checkpoint(tiny_checkpoint)
    spec = SubstitutionSpec(prelu="maxmin", norm="cLN", decoder="per_source", mask_mul="per_source")
    progress: list[str] = []
    meta = run_recover_stage(
        model, spec, list_audio(demo_data / "calib"), 16000, W, audio[1], RecoverSettings(steps=10, batch=2, log_every=5),
        tmp_path, progress.append,
    )
    assert meta["fired"] == ["norm:gLN->cLN"] and meta["steps_done"] == 10
    assert set(meta["metrics"]) >= {
        "recover_loss_start", "recover_loss_end", "recover_seconds", "recover_si_snr_before_db", "recover_si_snr_after_db",
    }  # fmt: skip
    assert progress == ["recover 5/10", "recover 10/10"]
    log = (tmp_path / "recover.log").read_text()
    assert "step 5/10" in log and "step 10/10" in log and "done, 10 steps" in log
    curve = json.loads((tmp_path / "loss.json").read_text())
    assert curve["steps"] == list(range(1, 11)) and len(curve["loss"]) == 10
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        assert not meta["plot"] and not (tmp_path / "loss.png").exists()
    else:
        assert meta["plot"] and (tmp_path / "loss.png").read_bytes()[:4] == b"\x89PNG"

    # the exported model: the recovered lossy weights, then the exact rewrites (same function as the student)
    full, fired = recovered_model(model, spec, tmp_path / "recovered.pt")
    lossy, _ = recovered_model(model, spec.without_exact(), tmp_path / "recovered.pt")
    plain, _ = apply_substitutions(model, spec.without_exact())
    assert set(fired) == {"norm:gLN->cLN", "prelu:maxmin", "mask_mul:per_source", "decoder:per_source"}
    x = torch.from_numpy(audio[1][:2])[:, None, None, :]
    with torch.no_grad():
        a, b, c = full(x), lossy(x), plain(x)
    assert torch.allclose(a, b, atol=1e-5, rtol=1e-4)
    assert not torch.allclose(b, c, atol=1e-4)  # the recovered weights are not the substituted checkpoint's


# -- in the pipeline ------------------------------------------------------------------------------------------------
def _pipeline(ckpt: Path, data: Path, tmp: Path, recover_seconds: float = 120) -> Any:
    from harness.cache import StageCache
    from harness.pipeline import Pipeline
    from harness.space import load_space

    space = tmp / "s.yaml"
    space.write_text(f"""
study: rec
checkpoint: {ckpt}
data: {{calibration: {data / 'calib'}, evaluation: {data / 'eval'}, eval_clips: 2, min_calibration_clips: 2}}
trials: 1
stage_timeout: 120
layer_noise_clips: 0
recover_seconds: {recover_seconds}
dimensions:
  width: {W}
  calib_size: 2
  recover_steps: [0, 12]
""")
    return Pipeline(load_space(space), StageCache(tmp / "cache"))


@pytest.mark.slow
def test_pipeline_recover_stage_is_cached_feeds_the_export_and_skips_exact_specs(
    tiny_checkpoint: Path, demo_data: Path, tmp_path: Path
) -> None:
    from harness.pipeline import TrialConfig

    pipe = _pipeline(tiny_checkpoint, demo_data, tmp_path)
    base: dict[str, Any] = dict(width=W, calib_size=2, norm="cLN")
    try:
        plain = pipe.run(TrialConfig(**base))
        first = pipe.run(TrialConfig(recover_steps=12, **base))
        again = pipe.run(TrialConfig(recover_steps=12, **base))
        exact = pipe.run(TrialConfig(recover_steps=12, width=W, calib_size=2, prelu="maxmin", decoder="per_source"))
    finally:
        pipe.close()
    assert plain.ok and first.ok and again.ok and exact.ok, (plain.failure, first.failure, exact.failure)
    assert "recover" not in plain.stages and "recover" not in plain.info
    assert not any(k.startswith("recover_") for k in plain.metrics)

    assert first.stages["recover"]["cached"] is False
    assert first.stages["export"]["key"] != plain.stages["export"]["key"]  # the export includes the recovery's key
    m = first.metrics
    assert m["recover_loss_end"] < m["recover_loss_start"]
    assert m["recover_si_snr_after_db"] > m["recover_si_snr_before_db"]
    assert m["recover_seconds"] > 0 and "time_recover_s" in m
    assert first.info["recover"] == {"fired": ["norm:gLN->cLN"], "steps_done": 12, "stopped_early": False}
    folders = {(p.name, f) for p, f in first.artifacts}
    assert {("recover.log", "recover"), ("loss.json", "recover")} <= folders
    assert first.info["fidelity"]["fidelity_si_snr_db"] >= 60  # the ONNX reproduces the recovered model

    assert again.stages["recover"]["cached"] is True and again.stages["export"]["cached"] is True
    assert again.stages["export"]["key"] == first.stages["export"]["key"]
    assert {k: again.metrics[k] for k in m if k.startswith("recover_")} == {k: v for k, v in m.items() if k.startswith("recover_")}

    assert exact.info["recover"] == "skipped (exact)" and "recover" not in exact.stages


@pytest.mark.slow
def test_pipeline_records_a_stopped_budget(tiny_checkpoint: Path, demo_data: Path, tmp_path: Path) -> None:
    from harness.pipeline import TrialConfig

    pipe = _pipeline(tiny_checkpoint, demo_data, tmp_path, recover_seconds=0.001)
    try:
        result = pipe.run(TrialConfig(recover_steps=12, width=W, calib_size=2, prelu="relu"))
    finally:
        pipe.close()
    assert result.ok, result.failure
    assert result.info["recover"]["stopped_early"] is True and result.info["recover"]["steps_done"] < 12
    log = Path(next(p for p, f in result.artifacts if p.name == "recover.log")).read_text()
    assert "time budget" in log


# -- the dimension --------------------------------------------------------------------------------------------------
def _space_text(dims: str, extra: str = "") -> str:
    return f"""
checkpoint: c.pt
data: {{calibration: calib, evaluation: eval}}
{extra}
dimensions:
  width: 8000
{dims}"""


@pytest.mark.parametrize("bad", ["-1", "1.5", "[0, -3]", "{low: -2, high: 4}", "many"])
def test_recover_steps_must_be_non_negative_integers(tmp_path: Path, bad: str) -> None:
    from harness.errors import ConfigError
    from harness.space import load_space

    p = tmp_path / "s.yaml"
    p.write_text(_space_text(f"  recover_steps: {bad}\n"))
    with pytest.raises(ConfigError, match="recover_steps"):
        load_space(p)


def test_recover_steps_at_zero_leaves_the_fingerprint_alone(tmp_path: Path) -> None:
    from harness.errors import ConfigError
    from harness.space import load_space

    def space(dims: str, extra: str = "") -> Any:
        p = tmp_path / "s.yaml"
        p.write_text(_space_text(dims, extra))
        return load_space(p)

    plain = space("")
    assert plain.dimensions.recover_steps == 0 and plain.recover_seconds == 300
    assert space("  recover_steps: 0\n").fingerprint() == plain.fingerprint()
    searched = space("  recover_steps: [0, 500]\n", "recover_seconds: 60")
    assert searched.fingerprint()["dimensions"]["recover_steps"] == [0, 500] and searched.recover_seconds == 60
    with pytest.raises(ConfigError, match="recover_seconds"):
        space("", "recover_seconds: 0")
