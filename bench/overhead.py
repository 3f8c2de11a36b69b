"""Harness bookkeeping per trial (Optuna + MLflow + cache) vs a raw loop doing the same stage work.

Two passes over the same distinct configurations, each with a fresh stage cache:

1. raw: ``Pipeline.run(cfg)`` in a loop (the stage work: export, calibration, quantization, compile, emulation;
   the stage cache is part of the pipeline, so its cost is counted in raw -- its own bookkeeping is reported
   separately below from the cache's per-stage timing);
2. sweep: ``run_sweep`` with those configurations enqueued (Optuna sqlite storage with heartbeats, MLflow sqlite
   store: parent run, one child run per trial with params, tags, metrics and artifacts).

Overhead per trial = (sweep wall - start-up - raw wall) / trials, reported as a share of the sweep's wall time
per trial. Start-up, excluded and printed apart, is what every ``run_sweep`` call pays once whatever its number of
trials (opening the Optuna and MLflow stores, the parent run, the summary): measured as a ``run_sweep`` of no
trials on the same, already created stores. The order of the passes alternates over repetitions to cancel warm-up
effects; the figure is the mean over repetitions with its 95 % confidence interval (Student t), so that a 3 %
aim is resolved only when the interval is narrower than that (raise ``--repeats`` until it is).

Usage: python bench/overhead.py [--trials 8] [--repeats 4] [--width 16000]
"""

from __future__ import annotations

import argparse
import io
import statistics
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
from harness.sweep import run_sweep  # noqa: E402

DIMS = [
    {"prelu": p, "norm": n, "override_set": o}
    for p in ("keep", "relu", "maxmin")
    for n in ("gLN", "cLN")
    for o in ("none", "io16")
]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=8)
    ap.add_argument("--repeats", type=int, default=4)
    ap.add_argument("--width", type=int, default=16000, help="input width W of every trial")
    args = ap.parse_args()
    dims = [{**d, "width": args.width} for d in DIMS[: args.trials]]
    with tempfile.TemporaryDirectory(prefix="hefsweep-overhead-") as t:
        tmp = Path(t)
        make_demo_dataset(tmp / "data", seed=0, n_calib=16, calib_seconds=1.0, n_eval=8, eval_seconds=1.0)
        space_file = tmp / "o.yaml"
        space_file.write_text(
            f"study: o\ncheckpoint: {ROOT / 'assets' / 'demo_convtasnet.pt'}\n"
            f"data: {{calibration: {tmp / 'data' / 'calib'}, evaluation: {tmp / 'data' / 'eval'}, eval_clips: 8}}\n"
            "repair_trials: false\n"
            f"dimensions:\n  prelu: [keep, relu, maxmin]\n  norm: [gLN, cLN]\n  width: {args.width}\n  calib_size: 16\n"
            "  calib_clip_length: 16000\n  override_set: [none, io16]\n"
            "override_sets:\n  none: []\n  io16: [{kind: precision16, layers: [input, output]}]\n"
        )
        space = load_space(space_file)
        # warm imports (torch.onnx, onnxruntime, mlflow) so neither pass pays them
        Pipeline(space, StageCache(tmp / "warm")).run(TrialConfig(width=args.width, calib_size=16, calib_clip_length=16000))
        shares: list[float] = []
        per_trial: list[float] = []
        startups: list[float] = []
        for rep in range(args.repeats):
            order = ("raw", "sweep") if rep % 2 == 0 else ("sweep", "raw")
            walls: dict[str, float] = {}
            for kind in order:
                if kind == "raw":
                    pipe = Pipeline(space, StageCache(tmp / f"raw{rep}"))
                    start = time.monotonic()
                    for d in dims:
                        assert pipe.run(TrialConfig(**{**d, "calib_size": 16, "calib_clip_length": 16000})).ok
                    pipe.close()
                    walls["raw"] = time.monotonic() - start
                else:
                    root = tmp / f"sweep{rep}"
                    start = time.monotonic()
                    run_sweep(space, trials=0, root=root, stream=io.StringIO())  # one-time: creates stores, study
                    walls["create"] = time.monotonic() - start
                    start = time.monotonic()
                    run_sweep(space, trials=0, root=root, stream=io.StringIO())  # what every call pays: start-up
                    walls["startup"] = time.monotonic() - start
                    start = time.monotonic()
                    s = run_sweep(space, trials=len(dims), root=root, stream=io.StringIO(), enqueue=dims)
                    walls["sweep"] = time.monotonic() - start
                    assert s.n_ok == len(dims), s
            extra = (walls["sweep"] - walls["startup"] - walls["raw"]) / len(dims)
            share = extra / ((walls["sweep"] - walls["startup"]) / len(dims))
            shares.append(share)
            per_trial.append(extra)
            startups.append(walls["startup"])
            print(
                f"  repeat {rep + 1}: raw {walls['raw']:.2f} s, sweep {walls['sweep']:.2f} s for {len(dims)} trials "
                f"(start-up {walls['startup']:.2f} s excluded; store creation {walls['create']:.2f} s not in either): "
                f"{1000 * extra:+.0f} ms/trial = {100 * share:+.1f} % of trial wall time",
                flush=True,
            )
    ms, ms_half = _mean_ci([1000 * x for x in per_trial])
    pct, pct_half = _mean_ci([100 * x for x in shares])
    print(f"  start-up per sweep call (excluded above): {statistics.mean(startups):.2f} s")
    print(
        f"bookkeeping per trial: {ms:+.0f} ms +- {ms_half:.0f} ms, {pct:+.1f} % +- {pct_half:.1f} % of trial wall time "
        f"(mean, 95 % CI over {args.repeats} repeats; start-up excluded; aim <= 3 % and <= 50 ms)"
    )


def _mean_ci(xs: list[float]) -> tuple[float, float]:
    """Mean and the half-width of its 95 % confidence interval (Student t; inf for one sample)."""
    from scipy import stats

    mean = statistics.mean(xs)
    if len(xs) < 2:
        return mean, float("inf")
    return mean, float(stats.t.ppf(0.975, len(xs) - 1)) * statistics.stdev(xs) / len(xs) ** 0.5


if __name__ == "__main__":
    main()
