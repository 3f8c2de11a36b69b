"""Load: four concurrent ``hefsweep worker`` processes fill one study with short trials; afterwards there is no
duplicate and no lost trial or run -- every Optuna trial has exactly one MLflow run and vice versa.

Stores: Optuna on a throwaway PostgreSQL database (what several workers share in the README's how-to; sqlite
would serialise them on one file lock), MLflow on the default local sqlite store under ``--root``. That is what
four workers on one machine get without a tracking server, and the harder case for "nothing lost": four processes
writing one sqlite file (the server path -- PostgreSQL behind ``mlflow server`` -- is exercised by
``tests/e2e/test_distributed.py``, and a server process would take CPU from the workers on a 2-core machine).

Trials are short on purpose (tiny Conv-TasNet, W=1024, one evaluation clip, two calibration clips, twelve distinct
configurations, half of them failing in optimize on an unknown layer): after the first few, every stage is a cache
hit (or a cached failure) shared through ``<root>/cache``, so a trial is mostly the bookkeeping under test (ask,
MLflow run, params, metrics, artifact files, tell).

``HEFSWEEP_LOAD_TRIALS`` sets the total (default 200; ``bench/reliability.py`` runs it at 200 too).
"""

from __future__ import annotations

import io
import os
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from harness.space import load_space
from harness.sweep import run_sweep

pytestmark = pytest.mark.slow

WORKERS = 4
TRIALS = int(os.environ.get("HEFSWEEP_LOAD_TRIALS", "200"))


def test_four_workers_one_store_no_duplicate_or_lost_trials(
    tiny_checkpoint: Path, demo_data: Path, tmp_path: Path, rel: Any, record: Any, pg_database: str
) -> None:
    import optuna
    from mlflow import MlflowClient
    from optuna.trial import TrialState

    dims = """  prelu: [keep, relu, maxmin]
  calib_method: [minmax, percentile]
  override_set: [none, ghost]
override_sets:
  none: []
  ghost:
    - {kind: precision16, layers: [no_such_layer]}"""  # half the configurations fail: FAILED runs under load too
    space = rel.write_space(tmp_path / "load.yaml", tiny_checkpoint, demo_data, study="load", trials=TRIALS,
                            width=1024, clips=1, dims=dims)  # fmt: skip
    root = tmp_path / "mlruns"
    run_sweep(load_space(space), trials=0, storage=pg_database, root=root, stream=io.StringIO())

    env = {**os.environ, "HEFSWEEP_THREADS": "1", "MLFLOW_ENABLE_ASYNC_LOGGING": "false"}
    env.pop("HEFSWEEP_CACHE_DIR", None)  # the workers share <root>/cache
    t0 = time.monotonic()
    logs = [(tmp_path / f"worker{i}.log").open("w+b") for i in range(WORKERS)]
    procs = [
        subprocess.Popen(rel.worker_cmd("load", TRIALS, root, storage=pg_database), cwd=tmp_path, env=env,
                         stdout=log, stderr=subprocess.STDOUT)  # fmt: skip
        for log in logs
    ]
    try:
        codes = [p.wait(timeout=60 + 6 * TRIALS) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    wall = time.monotonic() - t0
    outs = []
    for log in logs:
        log.seek(0)
        outs.append(log.read().decode(errors="replace"))
        log.close()
    assert codes == [0] * WORKERS, [o[-3000:] for o in outs]
    per_worker = [int(o.split("worker done: ")[1].split(" trials")[0]) for o in outs]

    study = optuna.load_study(study_name="load", storage=pg_database)
    trials = study.trials
    numbers = [t.number for t in trials]
    states = {s.name: sum(t.state == s for t in trials) for s in TrialState}
    client = MlflowClient(f"sqlite:///{root / 'mlflow.db'}")
    exp = client.get_experiment_by_name("load")
    runs = client.search_runs([exp.experiment_id], "tags.`hefsweep.role` = 'trial'", max_results=50000)
    run_trials = [int(r.data.tags["hefsweep.trial"]) for r in runs]
    attr_runs = [t.user_attrs.get("mlflow_run_id") for t in trials]
    duplicates = (len(numbers) - len(set(numbers))) + (len(run_trials) - len(set(run_trials))) + (
        len(attr_runs) - len(set(attr_runs))
    )
    lost = len(set(numbers) ^ set(run_trials)) + sum(a is None for a in attr_runs)
    record("load", workers=WORKERS, target=TRIALS, trials=len(trials), complete=states["COMPLETE"], runs=len(runs),
           duplicates=duplicates, lost=lost, per_worker=per_worker, wall_s=round(wall, 1),
           failed_trials=sum(t.user_attrs.get("status") == "failed" for t in trials),
           trials_per_s=round(len(trials) / wall, 2), store="optuna: postgresql, mlflow: sqlite")  # fmt: skip

    assert len(numbers) == len(set(numbers)) == len(trials)  # no duplicate trial numbers
    assert states["COMPLETE"] == len(trials), states  # none FAIL, RUNNING or WAITING: none lost
    assert TRIALS <= len(trials) <= TRIALS + WORKERS - 1  # MaxTrialsCallback: each worker may finish the one it began
    assert sum(per_worker) == len(trials) and min(per_worker) >= 1, per_worker  # every worker did work
    assert sorted(run_trials) == sorted(numbers)  # one run per trial, one trial per run
    assert {a for a in attr_runs} == {r.info.run_id for r in runs} and None not in attr_runs
    ok = [r for r in runs if r.data.tags["hefsweep.status"] == "ok"]
    failed = [r for r in runs if r.data.tags["hefsweep.status"] == "failed"]
    assert len(ok) + len(failed) == len(runs) and ok and failed
    assert all(r.info.status == "FINISHED" for r in ok)
    assert all(r.info.status == "FAILED" for r in failed)
    assert {r.data.tags["hefsweep.signature"] for r in failed} == {"optimize:OverrideTargetNotFound:no_such_layer"}
    assert len(client.search_runs([exp.experiment_id], "tags.`hefsweep.role` = 'parent'")) == 1
    values = {t.number: t.value for t in trials}
    for r in ok[:: max(1, len(ok) // 20)]:  # spot check: each run's metric is its own trial's value
        assert abs(r.data.metrics["si_snr_db"] - values[int(r.data.tags["hefsweep.trial"])]) < 1e-6
        assert [a.path for a in client.list_artifacts(r.info.run_id, "compiled")] == ["compiled/model.qdq.onnx"]
