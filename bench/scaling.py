"""Trials per hour with 1 and 2 ``hefsweep worker`` processes sharing one study on PostgreSQL.

Each run gets a fresh PostgreSQL database (Optuna storage, on the machine's server at 127.0.0.1:5432), a fresh
MLflow sqlite store and a fresh stage cache, and the same enqueued configurations (so both runs do the same
work, with no cache hits across runs). Workers run with ``HEFSWEEP_THREADS=1`` and ``OMP_NUM_THREADS=1`` and each is pinned to
its own core with ``taskset`` (one thread each, as the issue asks: ONNX Runtime's calibration session inside
``quantize_static`` ignores thread settings).

Usage: python bench/scaling.py [--trials 16]
"""

from __future__ import annotations

import argparse
import io
import itertools
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from harness.audio import make_demo_dataset  # noqa: E402
from harness.space import load_space  # noqa: E402
from harness.sweep import run_sweep  # noqa: E402

PG = "postgresql://postgres@127.0.0.1:5432"


def configs(n: int) -> list[dict[str, object]]:
    grid = itertools.product(["keep", "relu", "maxmin"], ["gLN", "cLN"], [4000, 8000], ["minmax"], ["none", "io16"])
    # 3 x 2 x 2 x 1 x 2 = 24 distinct configurations
    keys = ("prelu", "norm", "width", "calib_method", "override_set")
    return [dict(zip(keys, c, strict=True)) for c in itertools.islice(grid, n)]


def run(workers: int, n: int, tmp: Path, data: Path) -> float:
    import psycopg

    db = f"hefsweep_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(f"{PG}/test", autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{db}"')
    try:
        root = tmp / f"w{workers}"
        space_file = tmp / f"w{workers}.yaml"
        space_file.write_text(
            f"study: scale\ncheckpoint: {ROOT / 'assets' / 'demo_convtasnet.pt'}\n"
            f"data: {{calibration: {data / 'calib'}, evaluation: {data / 'eval'}, eval_clips: 4}}\n"
            f"trials: {n}\nrepair_trials: false\n"
            "dimensions:\n  prelu: [keep, relu, maxmin]\n  norm: [gLN, cLN]\n  width: [4000, 8000]\n"
            "  calib_size: 8\n  calib_clip_length: 16000\n  calib_method: minmax\n  override_set: [none, io16]\n"
            "override_sets:\n  none: []\n  io16: [{kind: precision16, layers: [input, output]}]\n"
        )
        storage = f"{PG}/{db}"
        run_sweep(load_space(space_file), trials=0, storage=storage, root=root, stream=io.StringIO(),
                  enqueue=configs(n))  # fmt: skip
        env = {**os.environ, "HEFSWEEP_THREADS": "1", "OMP_NUM_THREADS": "1"}
        cmd = [sys.executable, "-m", "harness.cli", "worker", "--study", "scale", "--trials", str(n),
               "--storage", storage, "--root", str(root)]  # fmt: skip
        start = time.monotonic()
        cores = sorted(os.sched_getaffinity(0))
        # one thread each: worker i is pinned to one core (ONNX Runtime's calibration session ignores thread settings)
        procs = [
            subprocess.Popen(
                ["taskset", "-c", str(cores[i % len(cores)]), *cmd], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
            )
            for i in range(workers)
        ]
        outs = [p.communicate()[0].decode() for p in procs]
        wall = time.monotonic() - start
        if any(p.returncode for p in procs):
            raise SystemExit("a worker failed:\n" + "\n".join(outs))
        done = sum(int(o.split("worker done: ")[1].split(" trials")[0]) for o in outs)
        print(f"  {workers} worker(s): {done} trials in {wall:.1f} s -> {3600 * done / wall:.0f} trials/hour")
        return done / wall
    finally:
        with psycopg.connect(f"{PG}/test", autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=24)
    args = ap.parse_args()
    print(f"{os.cpu_count()} cores; demo model, {args.trials} distinct trials per run (worker start-up included)")
    with tempfile.TemporaryDirectory(prefix="hefsweep-scaling-") as t:
        tmp = Path(t)
        make_demo_dataset(tmp / "data", seed=0, n_calib=8, calib_seconds=1.0, n_eval=4, eval_seconds=1.0)
        one = run(1, args.trials, tmp, tmp / "data")
        two = run(2, args.trials, tmp, tmp / "data")
    print(f"speed-up with 2 workers: {two / one:.2f}x (aim >= 1.8x)")


if __name__ == "__main__":
    main()
