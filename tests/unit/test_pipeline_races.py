"""The pipeline against things that happen between its stages: a `cache prune` taking an entry away after its
lookup, and a noise stage that hangs or crashes once (this trial's "not available", not the cache's)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.slow


def _pipeline(ckpt: Path, data: Path, tmp: Path, noise_clips: int = 0) -> Any:
    from harness.cache import StageCache
    from harness.pipeline import Pipeline
    from harness.space import load_space

    space = tmp / "s.yaml"
    space.write_text(f"""
study: races
checkpoint: {ckpt}
data: {{calibration: {data / 'calib'}, evaluation: {data / 'eval'}, eval_clips: 2, min_calibration_clips: 2}}
trials: 1
stage_timeout: 120
layer_noise_clips: {noise_clips}
dimensions:
  width: 2048
  calib_size: 2
""")
    return Pipeline(load_space(space), StageCache(tmp / "cache"))


def test_a_prune_right_after_the_reference_lookup_does_not_break_the_trial(
    tiny_checkpoint: Path, demo_data: Path, tmp_path: Path
) -> None:
    from harness.pipeline import TrialConfig

    pipe = _pipeline(tiny_checkpoint, demo_data, tmp_path)
    real = pipe.cache.build
    lookups: list[str] = []
    pruned: list[int] = []

    def build(stage: str, key: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
        entry = real(stage, key, fn, *args, **kwargs)
        if stage == "reference":
            lookups.append(key)
            if len(lookups) % 2:  # `hefsweep cache prune --stage reference` from another shell, once per trial
                pruned.append(len(pipe.cache.prune(stage="reference").removed))
        return entry

    pipe.cache.build = build  # type: ignore[method-assign]
    try:
        built = pipe.run(TrialConfig(width=2048, calib_size=2))  # emulate built after the prune
        hit = pipe.run(TrialConfig(width=2048, calib_size=2))  # emulate a cache hit, the metrics after the prune
    finally:
        pipe.close()
    assert built.ok, built.failure
    assert pruned == [1, 1]
    assert hit.ok and hit.stages["emulate"]["cached"], hit.failure
    assert hit.metrics["si_snr_db"] == pytest.approx(built.metrics["si_snr_db"])


def test_a_crashed_noise_stage_is_this_trials_not_available_not_the_caches(
    tiny_checkpoint: Path, demo_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from harness.pipeline import TrialConfig

    pipe = _pipeline(tiny_checkpoint, demo_data, tmp_path, noise_clips=1)
    try:
        monkeypatch.setenv("HEFSWEEP_INJECT", "noise:segv")  # the stage worker dies in the noise stage, once
        crashed = pipe.run(TrialConfig(width=2048, calib_size=2))
        noise_files = [p for p, folder in crashed.artifacts if folder == "noise"]
        assert noise_files and all(p.is_file() for p in noise_files)  # this trial's "not available", logged
        assert not any(pipe.cache.root in p.parents for p in noise_files)  # outside the cache
        monkeypatch.delenv("HEFSWEEP_INJECT")
        pipe.close()  # the next stage worker starts without the injection
        again = pipe.run(TrialConfig(width=2048, calib_size=2))
    finally:
        pipe.close()
    assert crashed.ok, crashed.failure  # a diagnostic never fails a trial that passed
    assert crashed.info["layer_noise"]["available"] is False
    assert "SIGSEGV" in crashed.info["layer_noise"]["reason"]
    assert not any(p.exists() for p in noise_files)  # removed with the pipeline
    assert pipe.cache.lookup("noise", crashed.stages["noise"]["key"]) is not None  # published by the second run
    assert again.stages["noise"]["cached"] is False  # measured again, not replayed from the crash
    assert again.info["layer_noise"]["available"] is True
