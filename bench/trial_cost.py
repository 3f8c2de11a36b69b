"""Seconds per stage of one trial, and the harness's overhead over the unavoidable compute.

For the demo model (assets/demo_convtasnet.pt) and a paper-size Conv-TasNet (N=512, L=16, B=128, H=512, P=3,
X=8, R=3; random weights -- the cost does not depend on them) at W=16000 with 32 calibration clips and
16 evaluation clips, it runs:

1. one hefsweep trial on a cold stage cache (export, calibrate, reference, translate, optimize, compile, emulate;
   isolated child processes, MLflow-free -- the pipeline alone), after a warm-up trial of the same configuration
   in a stage cache of its own: the process has paid its imports and first-use costs, and no stage of the
   measured trial is a cache hit (checked: the benchmark stops if one is);
2. the same work as a bare script: quantize_static (calibration pass + quantization) + float and quantized
   inference in ONNX Runtime, in-process;

and prints seconds per stage, the ratio trial wall / bare compute, and peak RSS (parent and children).

The last line is the worst ratio over the models run.

Usage: python bench/trial_cost.py [--models demo,paper] [--method minmax]
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from harness.audio import build_calibration_set, load_eval_set, make_demo_dataset  # noqa: E402
from harness.cache import StageCache  # noqa: E402
from harness.pipeline import Pipeline, TrialConfig  # noqa: E402
from harness.space import load_space  # noqa: E402

W = 16000


def bare(onnx_path: Path, calib: np.ndarray, evals: np.ndarray, method: str, tmp: Path) -> dict[str, float]:
    """The unavoidable compute, with no harness around it."""
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    from harness.backends._ort import _reader, run_onnx

    t0 = time.monotonic()
    quantize_static(
        str(onnx_path),
        str(tmp / "bare_q.onnx"),
        _reader("input", calib),
        quant_format=QuantFormat.QDQ,
        per_channel=True,
        activation_type=QuantType.QUInt8,
        weight_type=QuantType.QInt8,
        calibrate_method={"minmax": CalibrationMethod.MinMax, "percentile": CalibrationMethod.Percentile}[method],
    )
    t1 = time.monotonic()
    run_onnx(onnx_path, evals)
    t2 = time.monotonic()
    run_onnx(tmp / "bare_q.onnx", evals)
    t3 = time.monotonic()
    return {"calibrate+quantize": t1 - t0, "float inference": t2 - t1, "quantized inference": t3 - t2}


def bench(name: str, ckpt: Path, data: Path, method: str, tmp: Path) -> float:
    space_file = tmp / f"{name}.yaml"
    space_file.write_text(
        f"study: bench-{name}\ncheckpoint: {ckpt}\n"
        f"data: {{calibration: {data / 'calib'}, evaluation: {data / 'eval'}, eval_clips: 16}}\n"
        f"stage_timeout: 1800\ndimensions: {{width: {W}, calib_size: 32, calib_clip_length: {W}}}\n"
    )
    space = load_space(space_file)
    cfg = TrialConfig(width=W, calib_size=32, calib_clip_length=W, calib_fill="repeat", calib_method=method)
    # A sweep pays imports (torch.onnx, onnxruntime) and the worker start once: warm up on the same configuration
    # in a cache of its own (nothing of it is reused), then measure a steady-state trial on a cold cache.
    warm = Pipeline(space, StageCache(tmp / f"warm-{name}"))
    t0 = time.monotonic()
    cold = warm.run(cfg)
    cold_wall = time.monotonic() - t0
    warm.close()
    pipe = Pipeline(space, StageCache(tmp / f"cache-{name}"))
    t0 = time.monotonic()
    result = pipe.run(cfg)
    wall = time.monotonic() - t0
    pipe.close()
    hits = [stage for stage, info in result.stages.items() if info["cached"]]
    if hits:
        raise SystemExit(f"{name}: the measured trial reused cache entries ({', '.join(hits)}): not a cold trial")
    trial_rss = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024)
    if not result.ok:
        raise SystemExit(f"{name}: trial failed: {result.failure.signature}\n{result.failure.message}")
    onnx_path = Path(next(p for p, f in result.artifacts if f == "export"))
    cs = build_calibration_set(data / "calib", sample_rate=16000, width=W, clip_length=W, policy="repeat", size=32)
    ev = load_eval_set(data / "eval", sample_rate=16000, width=W, n_src=2, limit=16)
    raw = bare(onnx_path, cs.data[:, None, None, :], ev.mixtures[:, None, None, :], method, tmp)
    unavoidable = sum(raw.values())

    print(f"\n== {name}: W={W}, 32 calibration clips, 16 evaluation clips, {method} ==")
    for stage, info in result.stages.items():
        print(f"  {stage:<10} {info['seconds']:7.2f} s")
    print(f"  {'trial wall':<10} {wall:7.2f} s   (no stage a cache hit; the warm-up trial, cold imports: {cold_wall:.2f} s, {cold.status})")
    print("  bare compute: " + ", ".join(f"{k} {v:.2f} s" for k, v in raw.items()) + f" = {unavoidable:.2f} s")
    print(f"  trial wall / unavoidable compute (calibration+quantization+inference): {wall / unavoidable:.2f}x")
    excl = wall - result.stages["export"]["seconds"]
    print(f"  same, excluding the export stage (torch export + fidelity gate): {excl / unavoidable:.2f}x")
    print(f"  si_snr_db {result.metrics['si_snr_db']:.2f}  worst {result.metrics['si_snr_worst_db']:.2f}")
    print(
        f"  peak RSS during the trial (cumulative over this benchmark process): harness process {trial_rss[0]:.0f} MiB, "
        f"stage worker {trial_rss[1]:.0f} MiB"
    )
    return wall / unavoidable


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="demo,paper")
    ap.add_argument("--method", default="minmax", choices=["minmax", "percentile"])
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="hefsweep-bench-") as t:
        tmp = Path(t)
        data = tmp / "data"
        make_demo_dataset(data, seed=0, n_calib=32, calib_seconds=1.0, n_eval=16, eval_seconds=1.0)
        ratios: dict[str, float] = {}
        for name in args.models.split(","):
            if name == "demo":
                ckpt = ROOT / "assets" / "demo_convtasnet.pt"
            else:
                import torch

                from harness.model import PAPER_CONFIG, ConvTasNet4D
                from harness.model._checkpoint import save_checkpoint

                torch.manual_seed(0)
                ckpt = tmp / "paper.pt"
                save_checkpoint(ConvTasNet4D(PAPER_CONFIG), ckpt)
            ratios[name] = bench(name, ckpt, data, args.method, tmp)
    worst = max(ratios, key=lambda k: ratios[k])
    print(f"trial wall / unavoidable compute ({worst}, worst of {', '.join(ratios)}): {ratios[worst]:.2f}x (aim <= 1.1x)")


if __name__ == "__main__":
    main()
