"""Two workers on one study: Optuna on the machine's PostgreSQL, MLflow behind a real `mlflow server`."""

from __future__ import annotations

import io
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.mlflow_server import MlflowServer

from harness.space import load_space
from harness.sweep import run_sweep

pytestmark = pytest.mark.slow

PG = "postgresql://postgres@127.0.0.1:5432"


@pytest.fixture
def pg_databases() -> Iterator[tuple[str, str]]:
    """Two fresh databases (Optuna, MLflow) on the local PostgreSQL server, dropped afterwards."""
    psycopg = pytest.importorskip("psycopg")
    try:
        admin = psycopg.connect(f"{PG}/test", autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as exc:
        pytest.fail(f"the machine's PostgreSQL (127.0.0.1:5432) is required for this test: {exc}")
    names = [f"hefsweep_{kind}_{uuid.uuid4().hex[:8]}" for kind in ("optuna", "mlflow")]
    for n in names:
        admin.execute(f'CREATE DATABASE "{n}"')
    try:
        yield f"{PG}/{names[0]}", f"{PG}/{names[1]}"
    finally:
        for n in names:
            admin.execute(f'DROP DATABASE IF EXISTS "{n}" WITH (FORCE)')
        admin.close()


@pytest.fixture
def mlflow_server(tmp_path: Path, pg_databases: tuple[str, str]) -> Iterator[str]:
    server = MlflowServer(tmp_path / "mlflow_server", backend_store_uri=pg_databases[1])
    server.start()
    try:
        yield server.url
    finally:
        server.stop()


def test_two_workers_share_one_study(
    tiny_checkpoint: Path, demo_data: Path, tmp_path: Path, pg_databases: tuple[str, str], mlflow_server: str
) -> None:
    import optuna
    from mlflow import MlflowClient
    from optuna.trial import TrialState

    p = tmp_path / "d.yaml"
    p.write_text(f"""
study: dist
checkpoint: {tiny_checkpoint}
data: {{calibration: {demo_data / 'calib'}, evaluation: {demo_data / 'eval'}, eval_clips: 2, min_calibration_clips: 2}}
trials: 8
stage_timeout: 120
dimensions:
  prelu: [keep, relu, maxmin]
  norm: [gLN, cLN]
  width: [2048, 4000]
  calib_size: 4
""")
    storage = pg_databases[0]
    run_sweep(load_space(p), trials=0, storage=storage, tracking_uri=mlflow_server, root=tmp_path / "mlruns",
              stream=io.StringIO())  # fmt: skip
    cmd = [sys.executable, "-m", "harness.cli", "worker", "--study", "dist", "--trials", "8", "--storage", storage,
           "--tracking-uri", mlflow_server, "--root", str(tmp_path / "mlruns")]  # fmt: skip
    workers = [subprocess.Popen(cmd, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT) for _ in range(2)]
    outs = [w.communicate(timeout=600)[0].decode() for w in workers]
    assert all(w.returncode == 0 for w in workers), outs
    assert all("worker done:" in o for o in outs)

    study = optuna.load_study(study_name="dist", storage=storage)
    numbers = [t.number for t in study.trials]
    assert len(numbers) == len(set(numbers)) == len(study.trials)
    complete = [t for t in study.trials if t.state == TrialState.COMPLETE]
    assert 8 <= len(complete) <= 9  # MaxTrialsCallback may let each worker finish the trial it started
    assert all(t.state == TrialState.COMPLETE for t in study.trials)  # none lost
    per_worker = [int(o.split("worker done: ")[1].split(" trials")[0]) for o in outs]
    assert sum(per_worker) == len(complete) and min(per_worker) >= 1  # both workers did work

    client = MlflowClient(tracking_uri=mlflow_server)
    exp = client.get_experiment_by_name("dist")
    runs = client.search_runs([exp.experiment_id], "tags.`hefsweep.role` = 'trial'", max_results=100)
    assert sorted(int(r.data.tags["hefsweep.trial"]) for r in runs) == sorted(numbers)  # one run per trial
    assert {t.user_attrs["mlflow_run_id"] for t in complete} == {r.info.run_id for r in runs}
    assert all(r.info.status in ("FINISHED", "FAILED") for r in runs)
    assert len(client.search_runs([exp.experiment_id], "tags.`hefsweep.role` = 'parent'")) == 1
    ok = [r for r in runs if r.data.tags["hefsweep.status"] == "ok"]
    assert ok and all(r.info.artifact_uri.startswith("mlflow-artifacts:") for r in ok)
    assert [a.path for a in client.list_artifacts(ok[0].info.run_id, "compiled")] == ["compiled/model.qdq.onnx"]


_RACER = """
import io, sys, time
from pathlib import Path

import optuna.study

from harness.space import load_space
from harness.sweep import run_sweep

space, storage, flags, me, root = sys.argv[1:6]
flags = Path(flags)


class Rendezvous(io.StringIO):
    # the sweep's opening line comes right before it enqueues the start points: both workers get there, then go on
    def write(self, text):
        if text.startswith("hefsweep: study"):
            (flags / f"ready-{me}").touch()
            deadline = time.monotonic() + 60
            while len(list(flags.glob("ready-*"))) < 2 and time.monotonic() < deadline:
                time.sleep(0.01)
        return super().write(text)


real_skip = optuna.study.Study._should_skip_enqueue


def skip(self, params):
    found = real_skip(self, params)
    time.sleep(0.5)  # widen the window between Optuna's check and its write
    return found


optuna.study.Study._should_skip_enqueue = skip
run_sweep(load_space(space), trials=0, storage=storage, root=Path(root), stream=Rendezvous())
"""


def test_two_workers_on_a_new_study_enqueue_its_start_points_once(
    tiny_checkpoint: Path, demo_data: Path, tmp_path: Path, pg_databases: tuple[str, str]
) -> None:
    import time

    import optuna
    from optuna.trial import TrialState

    p = tmp_path / "e.yaml"
    p.write_text(f"""
study: starts
checkpoint: {tiny_checkpoint}
data: {{calibration: {demo_data / 'calib'}, evaluation: {demo_data / 'eval'}, eval_clips: 2, min_calibration_clips: 2}}
trials: 2
dimensions:
  prelu: [keep, relu, maxmin]
  norm: [gLN, cLN]
  width: 2048
  calib_size: 2
enqueue:
  - {{prelu: relu, norm: gLN}}
  - {{prelu: maxmin, norm: cLN}}
""")
    storage = pg_databases[0]
    flags = tmp_path / "flags"
    flags.mkdir()
    racer = tmp_path / "racer.py"
    racer.write_text(_RACER)

    def start(me: str) -> subprocess.Popen[bytes]:
        return subprocess.Popen([sys.executable, str(racer), str(p), storage, str(flags), me, str(tmp_path / me)],
                                cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)  # fmt: skip

    first = start("a")
    deadline = time.monotonic() + 120
    while not (flags / "ready-a").exists() and first.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)  # the study and its space are recorded: the second worker opens it, not races to create it
    second = start("b")
    outs = [w.communicate(timeout=300)[0].decode() for w in (first, second)]
    assert first.returncode == 0 and second.returncode == 0, outs

    study = optuna.load_study(study_name="starts", storage=storage)
    waiting = [t.system_attrs["fixed_params"] for t in study.get_trials(states=(TrialState.WAITING,))]
    assert sorted(waiting, key=str) == sorted([{"prelu": "relu", "norm": "gLN"}, {"prelu": "maxmin", "norm": "cLN"}],
                                              key=str), waiting  # fmt: skip
