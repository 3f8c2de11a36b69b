"""Shared fixtures of the reliability suite: store snapshots, the CLI in and out of process, throwaway stores
(PostgreSQL databases, `mlflow server`, tmpfs mounts) and the figures that ``bench/reliability.py`` prints.

Helpers are handed out as fixtures (``--import-mode=importlib`` makes this conftest unimportable by name).

Figures: when ``HEFSWEEP_RELIABILITY_REPORT`` names a file, every :func:`record` call appends one JSON line
``{"test": nodeid, "kind": ..., ...}`` to it; ``bench/reliability.py`` runs this suite with it set and sums them.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import signal
import subprocess
import sys
import time
import traceback
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from support.mlflow_server import MlflowServer, free_port

REPO = Path(__file__).resolve().parents[2]
PG = "postgresql://postgres@127.0.0.1:5432"
REPORT_ENV = "HEFSWEEP_RELIABILITY_REPORT"


# -- figures for bench/reliability.py ------------------------------------------------------------------------------
@pytest.fixture
def record(request: pytest.FixtureRequest) -> Callable[..., None]:
    """``record(kind, **figures)``: append a measured figure to the report file (no-op when unset)."""

    def _record(kind: str, **figures: Any) -> None:
        path = os.environ.get(REPORT_ENV)
        if not path:
            return
        with open(path, "a") as fh:
            fh.write(json.dumps({"test": request.node.nodeid, "kind": kind, **figures}, default=str) + "\n")

    return _record


# -- store snapshots -----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class StoreState:
    """What a store holds: Optuna trials, MLflow runs, artifact files.

    Attributes:
        trials: ``(study, number) -> (state, values, params)`` over every study of the storage.
        runs: ``run_id -> (experiment name, status, hefsweep.role, hefsweep.trial)`` over every experiment.
        artifacts: ``relative path -> sha256`` of every file under the artifact folder.
    """

    trials: dict[tuple[str, int], tuple[str, Any, Any]]
    runs: dict[str, tuple[str, str, str | None, str | None]]
    artifacts: dict[str, str]

    def summary(self) -> str:
        return f"{len(self.trials)} trials, {len(self.runs)} runs, {len(self.artifacts)} artifact files"

    def diff(self, other: StoreState) -> str:
        """Human-readable differences (for assertion messages)."""
        out = []
        for name in ("trials", "runs", "artifacts"):
            a, b = getattr(self, name), getattr(other, name)
            gone = sorted(set(a) - set(b), key=str)[:5]
            new = sorted(set(b) - set(a), key=str)[:5]
            changed = sorted((k for k in set(a) & set(b) if a[k] != b[k]), key=str)[:5]
            if gone or new or changed:
                out.append(f"{name}: lost {gone}, new {new}, changed {[(k, a[k], b[k]) for k in changed]}")
        return "; ".join(out) or "identical"

    def preserved_in(self, other: StoreState, summaries: bool = True, parent_left_running: bool = False) -> bool:
        """Every trial, run and artifact of this state is in ``other``, unchanged.

        With ``summaries``, the study parent run's summary files (``trials.json`` and the ``space/`` copy), which every
        sweep that runs rewrites by design, are not compared (only that they still exist). With
        ``parent_left_running``, a parent run may have gone from FINISHED to RUNNING (a resumed study whose store
        then refused every write, the one that ends the parent run included); nothing else of it may change.
        """

        def same(name: str, k: Any, v: Any) -> bool:
            theirs = getattr(other, name)
            if k not in theirs:
                return False
            if summaries and name == "artifacts" and _is_summary(str(k)):
                return True
            if parent_left_running and name == "runs" and v[2] == "parent" and theirs[k][1] == "RUNNING":
                return bool(theirs[k][:1] + theirs[k][2:] == v[:1] + v[2:])
            return bool(theirs[k] == v)

        return all(all(same(n, k, v) for k, v in getattr(self, n).items()) for n in ("trials", "runs", "artifacts"))


def _is_summary(path: str) -> bool:
    parts = path.split("/")
    return len(parts) >= 4 and parts[2] == "artifacts" and (parts[3:] == ["trials.json"] or parts[3] == "space")


def store_state(storage: str, tracking_uri: str, artifacts: Path | None) -> StoreState:
    """Read a store back with the libraries' own clients (no hefsweep code)."""
    import optuna
    from mlflow import MlflowClient
    from mlflow.entities import ViewType

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    trials: dict[tuple[str, int], tuple[str, Any, Any]] = {}
    for s in optuna.get_all_study_summaries(storage, include_best_trial=False):
        study = optuna.load_study(study_name=s.study_name, storage=storage)
        for t in study.get_trials(deepcopy=False):
            trials[(s.study_name, t.number)] = (t.state.name, t.values, dict(t.params))
    client = MlflowClient(tracking_uri=tracking_uri)
    runs: dict[str, tuple[str, str, str | None, str | None]] = {}
    for exp in client.search_experiments(view_type=ViewType.ALL):
        for r in client.search_runs([exp.experiment_id], run_view_type=ViewType.ALL, max_results=5000):
            tags = r.data.tags
            runs[r.info.run_id] = (exp.name, r.info.status, tags.get("hefsweep.role"), tags.get("hefsweep.trial"))
    files: dict[str, str] = {}
    if artifacts is not None and artifacts.is_dir():
        for p in sorted(artifacts.rglob("*")):
            if p.is_file():
                files[str(p.relative_to(artifacts))] = hashlib.sha256(p.read_bytes()).hexdigest()
    return StoreState(trials, runs, files)


def snapshot(root: Path, storage: str | None = None, tracking_uri: str | None = None) -> StoreState:
    """The state of a local store under ``root`` (or of ``storage`` / ``tracking_uri`` with ``root``'s artifacts)."""
    root = Path(root).resolve()
    return store_state(
        storage or f"sqlite:///{root / 'optuna.db'}",
        tracking_uri or f"sqlite:///{root / 'mlflow.db'}",
        root / "artifacts",
    )


# -- the command line ----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class CliResult:
    code: int
    out: str
    err: str
    seconds: float

    @property
    def err_lines(self) -> list[str]:
        return [line for line in self.err.splitlines() if line.strip()]


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]) -> Callable[[list[str]], CliResult]:
    """Run ``hefsweep ARGV`` in this process. An escaping exception counts as exit 2 with its traceback on stderr
    (the README's contract for bugs); argparse's ``SystemExit`` keeps its code."""
    import logging

    from harness.cli import main

    def _run(argv: list[str]) -> CliResult:
        capsys.readouterr()
        env = dict(os.environ)
        root_level = logging.getLogger().level
        start = time.monotonic()
        tb = ""
        try:
            code = main([str(a) for a in argv])
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 2
        except Exception:  # noqa: BLE001 - a bug: report it like the console script would
            code, tb = 2, traceback.format_exc()
        finally:
            os.environ.clear()
            os.environ.update(env)
            logging.getLogger().setLevel(root_level)
        seconds = time.monotonic() - start
        cap = capsys.readouterr()
        return CliResult(code, cap.out, (cap.err + tb).strip(), seconds)

    return _run


def run_cli_process(
    argv: list[str], *, cwd: Path, env: dict[str, str] | None = None, timeout: float = 120
) -> CliResult:
    """``python -m harness.cli ARGV`` in a child process; a run past ``timeout`` is killed (code -9)."""
    full_env = {**os.environ, "MLFLOW_ENABLE_ASYNC_LOGGING": "false", **(env or {})}
    start = time.monotonic()
    proc = subprocess.Popen(
        [sys.executable, "-m", "harness.cli", *map(str, argv)],
        cwd=cwd,
        env=full_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    try:
        out, err = proc.communicate(timeout=timeout)
        code = proc.returncode
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        code = -9
    return CliResult(code, out.decode(errors="replace"), err.decode(errors="replace").strip(), time.monotonic() - start)





# -- spaces and small stores ---------------------------------------------------------------------------------------
SPACE = """
study: {study}
checkpoint: {ckpt}
data: {{calibration: {calib}, evaluation: {eval}, eval_clips: {clips}, min_calibration_clips: 2}}
trials: {trials}
stage_timeout: {stage_timeout}
repair_trials: false
{extra}
dimensions:
  width: {width}
  calib_size: 2
{dims}
"""


def write_space(
    path: Path,
    ckpt: Path,
    data: Path,
    *,
    study: str = "rel",
    trials: int = 2,
    width: int = 2048,
    clips: int = 2,
    stage_timeout: float = 60,
    dims: str = "",
    extra: str = "",
    calib: Path | None = None,
    evaluation: Path | None = None,
) -> Path:
    """A small search-space YAML (tiny W, two eval clips, two calibration clips)."""
    path.write_text(
        SPACE.format(
            study=study, ckpt=ckpt, calib=calib or data / "calib", eval=evaluation or data / "eval", clips=clips,
            trials=trials, stage_timeout=stage_timeout, width=width, dims=dims, extra=extra,
        )  # fmt: skip
    )
    return path





@pytest.fixture(scope="session")
def shared_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One stage cache for the whole suite (set as HEFSWEEP_CACHE_DIR where tests want fast repeated trials)."""
    return tmp_path_factory.mktemp("stage_cache")


def make_store(root: Path, space: Path, trials: int, enqueue: list[dict[str, Any]] | None = None) -> Any:
    """A local store with ``trials`` finished trials of ``space`` (in this process)."""
    from harness.space import load_space
    from harness.sweep import run_sweep

    return run_sweep(load_space(space), trials=trials, root=root, stream=io.StringIO(), enqueue=enqueue)





# -- sqlite locks, tmpfs mounts ------------------------------------------------------------------------------------
LOCKER = """
import sqlite3, sys, time
con = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=30)
con.execute("BEGIN EXCLUSIVE")
print("locked", flush=True)
time.sleep(float(sys.argv[2]))
con.execute("COMMIT")
"""


@contextlib.contextmanager
def sqlite_exclusive_lock(db: Path, hold: float = 3600) -> Iterator[subprocess.Popen[bytes]]:
    """Hold ``BEGIN EXCLUSIVE`` on ``db`` from another process for ``hold`` seconds (or until the block ends)."""
    proc = subprocess.Popen([sys.executable, "-c", LOCKER, str(db), str(hold)], stdout=subprocess.PIPE)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().decode().strip()
        assert line == "locked", f"could not lock {db}: {line!r}"
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(10)





def _mount(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["mount", *args], capture_output=True, text=True, timeout=30)


@contextlib.contextmanager
def tmpfs_mount(where: Path, size: str = "32m") -> Iterator[Path]:
    """Mount a tmpfs at ``where`` (skips the test where mounting is not permitted); unmounted afterwards."""
    where.mkdir(parents=True, exist_ok=True)
    r = _mount("-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where))
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({r.stderr.strip() or r.returncode}); the scenario needs one")
    try:
        yield where
    finally:
        for _ in range(20):
            if subprocess.run(["umount", str(where)], capture_output=True).returncode == 0:
                break
            time.sleep(0.5)
        else:
            subprocess.run(["umount", "-l", str(where)], capture_output=True)


def remount_readonly(where: Path) -> None:
    r = _mount("-o", "remount,ro", str(where))
    if r.returncode != 0:
        pytest.skip(f"cannot remount {where} read-only ({r.stderr.strip()}); root would ignore chmod")


def fill_up(where: Path, leave_kib: int) -> Path:
    """Fill the file system of ``where`` until ``leave_kib`` KiB are free (one preallocated file)."""
    st = os.statvfs(where)
    free = st.f_bavail * st.f_frsize
    filler = where / "filler.bin"
    size = max(free - leave_kib * 1024, 0)
    with open(filler, "wb") as fh:
        os.posix_fallocate(fh.fileno(), 0, size)
    return filler





# -- real services: PostgreSQL databases, mlflow server ------------------------------------------------------------
def closed_port() -> int:
    """A local port nothing listens on (bound, then released)."""
    return free_port()





@contextlib.contextmanager
def pg_database_cm(prefix: str = "hefsweep_rel") -> Iterator[str]:
    """A fresh database on the machine's PostgreSQL (127.0.0.1:5432, trust auth), dropped afterwards."""
    psycopg = pytest.importorskip("psycopg")
    try:
        admin = psycopg.connect(f"{PG}/test", autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as exc:
        pytest.fail(f"the machine's PostgreSQL (127.0.0.1:5432) is required for this test: {exc}")
    name = f"{prefix}_{uuid.uuid4().hex[:8]}"
    admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"{PG}/{name}"
    finally:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


@pytest.fixture
def pg_database() -> Iterator[str]:
    with pg_database_cm() as url:
        yield url


@pytest.fixture
def mlflow_server_factory(tmp_path: Path) -> Iterator[Callable[..., MlflowServer]]:
    servers: list[MlflowServer] = []

    def make(name: str = "server", port: int | None = None) -> MlflowServer:
        s = MlflowServer(tmp_path / name, port=port)
        servers.append(s)
        return s

    yield make
    for s in servers:
        s.stop()


# -- pipes into the CLI's worker processes -------------------------------------------------------------------------
def worker_cmd(study: str, total: int, root: Path, storage: str | None = None, tracking_uri: str | None = None) -> list[str]:
    cmd = [sys.executable, "-m", "harness.cli", "worker", "--study", study, "--trials", str(total), "--root", str(root)]
    if storage:
        cmd += ["--storage", storage]
    if tracking_uri:
        cmd += ["--tracking-uri", tracking_uri]
    return cmd


@pytest.fixture(scope="session")
def rel() -> Any:
    """The suite's helpers as one namespace (plain functions and classes of this module)."""
    import types

    return types.SimpleNamespace(
        snapshot=snapshot,
        store_state=store_state,
        run_cli_process=run_cli_process,
        write_space=write_space,
        make_store=make_store,
        sqlite_lock=sqlite_exclusive_lock,
        tmpfs_mount=tmpfs_mount,
        remount_readonly=remount_readonly,
        fill_up=fill_up,
        free_port=free_port,
        closed_port=closed_port,
        pg_database=pg_database_cm,
        MlflowServer=MlflowServer,
        worker_cmd=worker_cmd,
        CliResult=CliResult,
        StoreState=StoreState,
    )
