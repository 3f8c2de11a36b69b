"""Time tiling (harness/tiling.py): the receptive field from the config, the overlap-save plan, and the stitched
float output against the untiled model (exact for cLN when the context covers the receptive field; a measured,
smaller number below it and for gLN)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from harness.metrics import score_clip
from harness.model import ConvTasNet4D, ConvTasNetConfig, separate
from harness.tiling import TilePlan, TilingError, plan_tiles, receptive_field
from tests.conftest import TINY_ARGS

DEMO = ConvTasNetConfig.from_model_args(
    dict(n_src=2, n_filters=64, kernel_size=16, stride=8, bn_chan=64, hid_chan=128, skip_chan=64,
         conv_kernel_size=3, n_blocks=6, n_repeats=2, norm_type="cLN")  # the demo checkpoint's shape
)  # fmt: skip


def _model(norm: str, **args: object) -> ConvTasNet4D:
    torch.manual_seed(0)
    model = ConvTasNet4D(ConvTasNetConfig.from_model_args({**TINY_ARGS, "norm_type": norm, **args}))
    with torch.no_grad():  # non-trivial norm parameters so the edges' betas show if tiles differ there
        for p in model.parameters():
            p.add_(0.1 * torch.randn_like(p))
    return model.eval()


def _stitched_db(model: ConvTasNet4D, width: int, tile: int, context: int | None) -> tuple[list[float], TilePlan]:
    x = np.random.default_rng(1).standard_normal((2, width)).astype(np.float32) * 0.2
    full = separate(model, x)
    plan = plan_tiles(width, tile, context, model.config)
    out = plan.stitch(separate(model, plan.split(x)))
    return [score_clip(out[i, :, 0], full[i, :, 0], width).si_snr_db for i in range(len(x))], plan


def test_receptive_field_from_the_config() -> None:
    # TCN: n_repeats * sum_b (P-1)*2**b / 2 frames each side, times the stride, plus the encoder/decoder kernel
    assert receptive_field(DEMO) == 2 * (1 + 2 + 4 + 8 + 16 + 32) * 8 + 16 == 1024
    tiny = ConvTasNetConfig.from_model_args(TINY_ARGS)
    assert receptive_field(tiny) == 1 * (1 + 2) * 8 + 16 == 40
    wide = ConvTasNetConfig.from_model_args({**TINY_ARGS, "conv_kernel_size": 5, "kernel_size": 32, "stride": 16})
    assert receptive_field(wide) == (2 + 4) * 16 + 32


@pytest.mark.parametrize(
    "width,tile,context",
    [(w, t, c) for w in (2049, 3201, 5000, 16000, 16007, 128000)
     for t, c in ((2048, 256), (2048, 1000), (3200, None), (3207, 13)) if t < w],
)  # fmt: skip
def test_the_plan_covers_the_clip_with_stride_aligned_tiles(width: int, tile: int, context: int | None) -> None:
    plan = plan_tiles(width, tile, context, DEMO)
    assert plan.context % 8 == 0 and plan.hop % 8 == 0 and plan.context >= (context if context is not None else 1024)
    assert plan.hop == (tile - 2 * plan.context) // 8 * 8
    assert all(s % 8 == 0 for s in plan.starts)
    assert plan.keep[0][0] == 0 and plan.keep[-1][1] == width
    assert all(a[1] == b[0] for a, b in zip(plan.keep, plan.keep[1:]))
    for k, (s, (a, b)) in enumerate(zip(plan.starts, plan.keep)):
        assert s <= a < b <= s + tile or (k == plan.n_tiles - 1 and b - (s + tile) < 8)  # no frame reaches those
        if 0 < k < plan.n_tiles - 1:  # interior tiles keep only their centre: context on both sides
            assert a - s >= plan.context and s + tile - b >= plan.context
    # the last tile's last encoder frame is the clip's
    assert plan.starts[-1] + (tile - 16) // 8 * 8 == (width - 16) // 8 * 8
    x = np.arange(width, dtype=np.float32)[None] + 1
    reach = (width - 16) // 8 * 8 + 16  # the untiled model's output is zeros past its last frame
    assert np.array_equal(plan.stitch(plan.split(x))[:, :reach], x[:, :reach])  # identity model: the clip itself


def test_cln_tiled_equals_untiled_when_the_context_covers_the_receptive_field() -> None:
    model = _model("cLN")
    exact, plan = _stitched_db(model, 3000, 256, None)
    assert plan.context == 40 and plan.n_tiles > 10
    assert min(exact) >= 60, exact
    # a context well short of the receptive field is measurably not exact: the test above can fail
    short, plan = _stitched_db(model, 3000, 256, 8)
    assert not plan.covers_receptive_field and max(short) < 60, short


def test_gln_tiled_has_a_finite_gap() -> None:
    gap, plan = _stitched_db(_model("gLN"), 3000, 256, None)
    assert plan.covers_receptive_field
    assert all(np.isfinite(gap)) and max(gap) < 60, gap  # tile statistics are not the clip's


def test_the_demo_model_at_2048_cannot_hold_its_receptive_field() -> None:
    with pytest.raises(TilingError, match=r"hop 0; expected tile_width >= 2 \* context \+ stride = 2056"):
        plan_tiles(16000, 2048, None, DEMO)
    assert plan_tiles(16000, 2048, 512, DEMO).hop == 1024
    with pytest.raises(ValueError, match="nothing to tile"):
        plan_tiles(3200, 3200, None, DEMO)


def test_tiling_json_round_trips_and_refuses_a_broken_plan(tmp_path) -> None:
    plan = plan_tiles(16000, 3200, None, DEMO)
    plan.write(tmp_path / "tiling.json", sample_rate=16000)
    data = json.loads((tmp_path / "tiling.json").read_text())
    assert data["sample_rate"] == 16000 and data["hop"] == 1152 and data["starts"][0] == 0
    assert TilePlan.from_json(data) == plan
    data["keep"][1][0] += 8  # a gap between two kept spans
    with pytest.raises(ValueError, match="contiguously"):
        TilePlan.from_json(data)
    with pytest.raises(ValueError, match="format"):
        TilePlan.from_json({**data, "format": "x"})


# -- a real trial of the tiny model on ONNX Runtime --------------------------------------------------------------
@pytest.mark.slow
def test_an_ort_trial_runs_tiled_and_a_tile_too_short_fails_classified(tiny_checkpoint, demo_data, tmp_path) -> None:
    from harness.cache import StageCache
    from harness.pipeline import Pipeline, TrialConfig
    from harness.space import load_space

    space = tmp_path / "s.yaml"
    space.write_text(f"""
study: tiles
checkpoint: {tiny_checkpoint}
data: {{calibration: {demo_data / 'calib'}, evaluation: {demo_data / 'eval'}, eval_clips: 3, min_calibration_clips: 2}}
stage_timeout: 120
dimensions: {{width: 8000, calib_size: 4}}
""")
    pipeline = Pipeline(load_space(space), StageCache(tmp_path / "cache"))
    try:
        untiled = pipeline.run(TrialConfig(norm="cLN", width=8000, calib_size=4))
        tiled = pipeline.run(TrialConfig(norm="cLN", width=8000, calib_size=4, tile_width=512))
        short = pipeline.run(TrialConfig(norm="cLN", width=8000, calib_size=4, tile_width=512, tile_context=252))
    finally:
        pipeline.close()
    assert untiled.ok and tiled.ok, (untiled.failure, tiled.failure)
    plan = plan_tiles(8000, 512, None, ConvTasNetConfig.from_model_args(TINY_ARGS))
    assert tiled.info["tiling"]["n_tiles"] == plan.n_tiles == tiled.metrics["tiles_per_clip"] == 19
    assert tiled.metrics["tiling_float_si_snr_db"] >= 60  # cLN, context = receptive field: exact
    # the untiled references are shared (same keys as the untiled trial), the backend stages are the tile's
    for stage in ("export", "original", "reference"):
        assert tiled.stages[stage]["key"] == untiled.stages[stage]["key"] and tiled.stages[stage]["cached"], stage
    for stage in ("calibrate", "translate", "optimize", "emulate"):
        assert tiled.stages[stage]["key"] != untiled.stages[stage]["key"], stage
    assert "export_tile" in tiled.stages and "export_tile" not in untiled.stages and "tiling" not in untiled.info
    # the quantized stitched output is a real emulation: close to the float model, not identical to it
    assert np.isfinite(tiled.metrics["si_snr_db"]) and 5 < tiled.metrics["quant_si_snr_db"] < 60
    assert {p.name for p, folder in tiled.artifacts if folder == "compiled"} == {"model.qdq.onnx", "tiling.json"}
    assert short.status == "failed" and short.failure is not None
    assert short.failure.signature == "tile:TilingError:no_hop" and short.failure.numbers == {"hop": 0.0}


def test_a_tile_too_short_is_classified_and_graded_one_parameter_away() -> None:
    from harness.failures import classify
    from harness.feasibility import UNKNOWN_VIOLATION, violation

    with pytest.raises(TilingError) as err:
        plan_tiles(16000, 2048, None, DEMO)
    failure = classify("tile", "TilingError", str(err.value))
    assert failure.signature == "tile:TilingError:no_hop" and failure.known and failure.numbers == {"hop": 0.0}
    fill = classify("calibrate", "FillPolicyError", "expected clips of at least 16000 samples for policy 'crop'")
    assert violation(failure) == violation(fill) == 2.0 < UNKNOWN_VIOLATION / 2  # a tile_width / context choice
