"""Compiler levers act at compile: the pipeline keys and runs optimize without them, so a set that differs only by a
lever (a lever repair step) reuses the quantized model and compiles again (a real DFC optimize takes 30+ minutes)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.slow


def _pipeline(ckpt: Path, data: Path, tmp: Path) -> Any:
    from harness.cache import StageCache
    from harness.pipeline import Pipeline
    from harness.space import load_space

    space = tmp / "s.yaml"
    space.write_text(f"""
study: levers
checkpoint: {ckpt}
data: {{calibration: {data / 'calib'}, evaluation: {data / 'eval'}, eval_clips: 2, min_calibration_clips: 2}}
stage_timeout: 120
layer_noise_clips: 0
dimensions:
  width: 2048
  calib_size: 2
  override_set: [none, lever]
override_sets:
  none: []
  lever:
    - {{kind: performance_param, value: max}}
    - {{kind: context_switch_param, value: enabled}}
""")
    return Pipeline(load_space(space), StageCache(tmp / "cache"))


def test_a_lever_reuses_the_optimized_model_and_compiles_again(
    tiny_checkpoint: Path, demo_data: Path, tmp_path: Path
) -> None:
    from harness.pipeline import TrialConfig

    pipe = _pipeline(tiny_checkpoint, demo_data, tmp_path)
    try:
        plain = pipe.run(TrialConfig(width=2048, calib_size=2, override_set="none"))
        lever = pipe.run(TrialConfig(width=2048, calib_size=2, override_set="lever"))
        again = pipe.run(TrialConfig(width=2048, calib_size=2, override_set="lever"))
    finally:
        pipe.close()
    assert plain.ok and lever.ok and again.ok, (plain.failure, lever.failure)
    assert lever.stages["optimize"]["key"] == plain.stages["optimize"]["key"] and lever.stages["optimize"]["cached"]
    assert lever.stages["compile"]["key"] != plain.stages["compile"]["key"] and not lever.stages["compile"]["cached"]
    assert again.stages["compile"]["key"] == lever.stages["compile"]["key"] and again.stages["compile"]["cached"]
    assert lever.info["compile"]["ignored"] == [
        "performance_param: a compiler (allocator) lever; ONNX Runtime has no allocator (Hailo only)",
        "context_switch_param: a compiler (allocator) lever; ONNX Runtime has no allocator (Hailo only)",
    ]
    assert "ignored" not in plain.info["compile"]
    assert lever.metrics["si_snr_db"] == plain.metrics["si_snr_db"]  # same quantized model, same emulation


def test_compile_key_without_levers_is_the_old_key() -> None:
    from harness.backends import OverrideSet
    from harness.pipeline import compile_params

    assert compile_params(OverrideSet("none")) == {}
