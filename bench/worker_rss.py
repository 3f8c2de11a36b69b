"""Peak RSS of the stage workers for one paper-size trial (issue 14: aim <= 2 GiB).

The trial of ``bench/trial_cost.py``'s paper configuration: a paper-size Conv-TasNet (N=512, L=16, B=128, H=512,
P=3, X=8, R=3; random weights -- memory does not depend on them) at W=16000 with 32 calibration clips and 16
evaluation clips, calibration clips of W samples filled by ``repeat``, on a cold stage cache. Every isolated stage
(translate, optimize, compile, emulate, noise) writes its worker's own peak RSS (``VmHWM``, reset before each call)
to ``resources.json``; this prints them per stage and the largest last.

Measured (2 cores, 2026-12-01), cold worker / after trial_cost.py's warm-up trial in the same workers: before
issue 14's fix 2.14 / 2.21 GiB (optimize 2.00 / 2.05: ORT's calibration session kept every activation alive;
noise 2.14 / 2.21: 256 exposed tensors of 4 MB per session), after 1.36 / 1.40 GiB (optimize 0.24 / 0.28,
noise 1.36 / 1.40); si_snr_db 18.9989 in all four.

Usage: python bench/worker_rss.py [--method minmax] [--warmup]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from harness.audio import make_demo_dataset  # noqa: E402
from harness.cache import StageCache  # noqa: E402
from harness.pipeline import Pipeline, TrialConfig  # noqa: E402
from harness.space import load_space  # noqa: E402

W = 16000
AIM_GIB = 2.0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--method", default="minmax", choices=["minmax", "percentile", "entropy"])
    ap.add_argument("--warmup", action="store_true", help="run trial_cost.py's warm-up trial (prelu=relu) first")
    args = ap.parse_args()
    import torch

    from harness.model import PAPER_CONFIG, ConvTasNet4D
    from harness.model._checkpoint import save_checkpoint

    with tempfile.TemporaryDirectory(prefix="hefsweep-bench-rss-") as t:
        tmp = Path(t)
        data = tmp / "data"
        make_demo_dataset(data, seed=0, n_calib=32, calib_seconds=1.0, n_eval=16, eval_seconds=1.0)
        torch.manual_seed(0)
        ckpt = tmp / "paper.pt"
        save_checkpoint(ConvTasNet4D(PAPER_CONFIG), ckpt)
        space_file = tmp / "paper.yaml"
        space_file.write_text(
            f"study: bench-rss\ncheckpoint: {ckpt}\n"
            f"data: {{calibration: {data / 'calib'}, evaluation: {data / 'eval'}, eval_clips: 16}}\n"
            f"stage_timeout: 1800\ndimensions: {{width: {W}, calib_size: 32, calib_clip_length: {W}}}\n"
        )
        pipe = Pipeline(load_space(space_file), StageCache(tmp / "cache"))
        if args.warmup:
            pipe.run(TrialConfig(prelu="relu", width=W, calib_size=32, calib_clip_length=W, calib_method=args.method))
        cfg = TrialConfig(width=W, calib_size=32, calib_clip_length=W, calib_fill="repeat", calib_method=args.method)
        t0 = time.monotonic()
        result = pipe.run(cfg)
        wall = time.monotonic() - t0
        pipe.close()
        if not result.ok:
            raise SystemExit(f"trial failed: {result.failure.signature}\n{result.failure.message}")
        print(f"paper-size trial, W={W}, 32 calibration clips, 16 evaluation clips, {args.method}: {wall:.1f} s")
        peaks = {k: v["peak_rss_mb"] for k, v in result.stages.items() if "peak_rss_mb" in v}
        for stage, mb in peaks.items():
            print(f"  {stage:<10} {mb / 1024:6.2f} GiB  ({mb:.0f} MiB, {result.stages[stage]['seconds']:.1f} s)")
        print(f"  si_snr_db {result.metrics['si_snr_db']:.4f}  quant_si_snr_db {result.metrics['quant_si_snr_db']:.4f}")
        print(f"worker_peak_rss: {max(peaks.values()) / 1024:.2f} GiB (aim <= {AIM_GIB:g} GiB)")


if __name__ == "__main__":
    main()
