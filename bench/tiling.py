"""Time-tiled emulation (harness/tiling.py) of the demo checkpoint with cLN over 8 s clips.

For each tile width W_tile in {2048, 3200} it runs one hefsweep trial on the embedded ONNX Runtime backend
(``width`` = the 8 s clip, ``tile_width`` = W_tile; the pipeline alone, MLflow-free, a cold stage cache): the model
is exported, calibrated (16 clips of W_tile samples) and quantized at W_tile; emulation runs every 8 s clip as
overlapping tiles and stitches them (overlap-save). It prints, per tile width:

- the plan: context each side (the receptive field, 1024 samples for the demo model, where it fits; 2048 cannot
  hold it -- hop 0 -- so it runs with 512), hop, tiles per clip;
- float stitched vs untiled float (``tiling_float_si_snr_db``; exact = 80 dB, the score's cap for identical
  outputs): the cost of tiling alone;
- quantized stitched vs untiled float (``quant_si_snr_db``) and vs the original (gLN) float model
  (``si_snr_db``, the sweep's objective, which includes the cLN substitution's own loss);
- cost per second of audio: samples the model processes per sample of audio (tiles x W_tile / W) and the emulate
  stage's wall seconds (ONNX Runtime, one isolated worker, this machine) per second of audio.

The figure, last: the float tiling gap at W_tile = 3200 with the receptive field as context (aim >= 60 dB, exact).

Usage: python bench/tiling.py [--clips 4] [--seconds 8]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from harness.audio import make_demo_dataset  # noqa: E402
from harness.cache import StageCache  # noqa: E402
from harness.pipeline import Pipeline, TrialConfig  # noqa: E402
from harness.space import load_space  # noqa: E402

RATE = 16000
#: tile width -> tile_context (None = the receptive field)
TILES: dict[int, int | None] = {2048: 512, 3200: None}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clips", type=int, default=4, help="evaluation clips")
    ap.add_argument("--seconds", type=float, default=8.0, help="length of each evaluation clip")
    args = ap.parse_args()
    width = int(args.seconds * RATE)
    with tempfile.TemporaryDirectory(prefix="hefsweep-bench-tiling-") as t:
        tmp = Path(t)
        make_demo_dataset(tmp / "data", seed=0, n_calib=16, calib_seconds=1.0, n_eval=args.clips, eval_seconds=args.seconds)
        space_file = tmp / "tiling.yaml"
        space_file.write_text(f"""
study: bench_tiling
checkpoint: {ROOT / 'assets' / 'demo_convtasnet.pt'}
backend: ort
data: {{calibration: {tmp / 'data' / 'calib'}, evaluation: {tmp / 'data' / 'eval'}, eval_clips: {args.clips}}}
layer_noise_clips: 0
stage_timeout: 1800
""")
        pipeline = Pipeline(load_space(space_file), StageCache(tmp / "cache"))
        audio_s = args.clips * width / RATE
        print(f"demo checkpoint, norm=cLN, {args.clips} clips of {args.seconds:g} s (W={width}), ORT uint8 minmax")
        figure = None
        try:
            for tile, context in TILES.items():
                cfg = TrialConfig(norm="cLN", width=width, tile_width=tile, tile_context=context,
                                  calib_clip_length=tile, calib_size=16)  # fmt: skip
                r = pipeline.run(cfg)
                if not r.ok:
                    print(f"W_tile {tile}: {r.status} {r.failure.signature if r.failure else ''}")
                    continue
                m, plan = r.metrics, r.info["tiling"]
                print(
                    f"W_tile {tile}: context {plan['context']} ({plan['context_from']}; receptive field "
                    f"{plan['receptive_field']}), hop {plan['hop']}, {plan['n_tiles']} tiles per clip\n"
                    f"  float stitched vs untiled float:     {m['tiling_float_si_snr_db']:6.2f} dB "
                    f"(worst clip {m['tiling_float_si_snr_worst_db']:.2f})\n"
                    f"  quantized stitched vs untiled float: {m['quant_si_snr_db']:6.2f} dB "
                    f"(worst clip {m['quant_si_snr_worst_db']:.2f}); vs the original float model "
                    f"(objective) {m['si_snr_db']:.2f} dB\n"
                    f"  cost per second of audio: {plan['n_tiles'] * tile / width:.2f} samples processed per sample, "
                    f"emulate {1000 * r.stages['emulate']['seconds'] / audio_s:.0f} ms (ORT, isolated worker)"
                )
                if tile == 3200:
                    figure = m["tiling_float_si_snr_db"]
        finally:
            pipeline.close()
    if figure is None:
        print("tiling_float_si_snr_db (cLN, W_tile 3200, context = receptive field): not measured (aim >= 60 dB)")
    else:
        print(f"tiling_float_si_snr_db (cLN, W_tile 3200, context = receptive field): {figure:.2f} dB (aim >= 60 dB)")


if __name__ == "__main__":
    main()
