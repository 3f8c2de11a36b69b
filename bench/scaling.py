"""Trials per hour with 1, 2 and 4 ``hefsweep worker`` processes sharing one study on PostgreSQL.

Each run gets a fresh PostgreSQL database (Optuna storage, on the machine's server at 127.0.0.1:5432), a fresh
MLflow sqlite store and a fresh stage cache, and the same enqueued configurations (so every run does the same
work, with no cache hits across runs), in the order of :func:`harness.schedule.spread` (neighbouring trials need
different exports). Workers run with ``HEFSWEEP_THREADS=1`` and ``OMP_NUM_THREADS=1`` and worker i is pinned to
core i mod cores with ``taskset`` (one thread each: ONNX Runtime's calibration session inside ``quantize_static``
ignores thread settings): 2 workers get a core each, 4 workers share 2 cores.

Duplicated work is counted from the stores: a stage built by a trial (its run's tag ``hefsweep.cached.<stage>`` is
``false``) more often than the cache holds entries of that stage was built twice for one key (the in-flight
markers of :mod:`harness.cache._inflight` make a second worker wait for the first one's entry instead).

Usage: python bench/scaling.py [--trials 24] [--workers 1,2,4]; no PostgreSQL server answering: it says so, exit 0.
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
from harness.cache import StageCache  # noqa: E402
from harness.schedule import spread  # noqa: E402
from harness.space import load_space  # noqa: E402
from harness.sweep import run_sweep  # noqa: E402

PG = "postgresql://postgres@127.0.0.1:5432"


def configs(n: int) -> list[dict[str, object]]:
    grid = itertools.product(["keep", "relu", "maxmin"], ["gLN", "cLN"], [4000, 8000], ["minmax"], ["none", "io16"])
    # 3 x 2 x 2 x 1 x 2 = 24 distinct configurations
    keys = ("prelu", "norm", "width", "calib_method", "override_set")
    return spread([dict(zip(keys, c, strict=True)) for c in itertools.islice(grid, n)])


def duplicates(root: Path) -> tuple[int, int]:
    """(stage builds that repeated a key another trial built, stage builds) over the run's trials."""
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{root.resolve() / 'mlflow.db'}")
    exp = client.get_experiment_by_name("scale")
    runs = client.search_runs([exp.experiment_id], "tags.`hefsweep.role` = 'trial'", max_results=1000)
    built: dict[str, int] = {}
    for r in runs:
        failed = r.data.tags.get("hefsweep.failed_stage")
        for k, v in r.data.tags.items():
            stage = k.removeprefix("hefsweep.cached.")
            if k.startswith("hefsweep.cached.") and v == "false" and stage != failed:
                built[stage] = built.get(stage, 0) + 1
    entries: dict[str, int] = {}
    for item in StageCache(root / "cache").scan(("entry",)):
        entries[item.stage] = entries.get(item.stage, 0) + 1
    dup = sum(max(n - entries.get(stage, 0), 0) for stage, n in built.items())
    return dup, sum(built.values())


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
        dup, built = duplicates(root)
        print(f"  {workers} worker(s) on {min(workers, len(cores))} core(s): {done} trials in {wall:.1f} s -> "
              f"{3600 * done / wall:.0f} trials/hour; stage builds {built}, of which duplicated {dup}", flush=True)  # fmt: skip
        return done / wall
    finally:
        with psycopg.connect(f"{PG}/test", autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')


def _server() -> str | None:
    """Why no PostgreSQL server can be used, or None."""
    try:
        import psycopg

        with psycopg.connect(f"{PG}/test", connect_timeout=3):
            return None
    except Exception as exc:  # noqa: BLE001 - any failure means: no server to measure against
        return f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=24)
    ap.add_argument("--workers", default="1,2,4", help="worker counts to run (the first is the baseline)")
    args = ap.parse_args()
    counts = [int(w) for w in args.workers.split(",")]
    why = _server()
    if why is not None:
        print(f"scaling: skipped, no PostgreSQL server answers at {PG} ({why})")
        return
    cores = len(os.sched_getaffinity(0))
    print(f"{cores} cores; demo model, {args.trials} distinct trials per run (worker start-up included)")
    rates: dict[int, float] = {}
    with tempfile.TemporaryDirectory(prefix="hefsweep-scaling-") as t:
        tmp = Path(t)
        make_demo_dataset(tmp / "data", seed=0, n_calib=8, calib_seconds=1.0, n_eval=4, eval_seconds=1.0)
        for w in counts:
            rates[w] = run(w, args.trials, tmp, tmp / "data")
    base = counts[0]
    for w in counts[1:]:
        if w != 2:
            print(f"speed-up with {w} workers on {min(w, cores)} cores over {base}: {rates[w] / rates[base]:.2f}x")
    if 2 in rates and base != 2:
        print(f"speed-up with 2 workers: {rates[2] / rates[base]:.2f}x (aim >= 1.8x)")


if __name__ == "__main__":
    main()
