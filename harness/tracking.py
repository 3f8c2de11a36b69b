"""MLflow tracking: one parent run per study, one child run per trial.

Uses :class:`mlflow.MlflowClient` with explicit run ids (no global active-run state), so several trials or
workers can log concurrently. Default store: ``sqlite:///<root>/mlflow.db`` with the experiment's artifacts
under ``<root>/artifacts/<experiment>`` -- the artifact location is given explicitly because MLflow would
otherwise root it at the current working directory (FINDINGS.md, warning 5).
"""

from __future__ import annotations

import contextlib
import json
import logging
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from harness.errors import HarnessError, causes, describe, root_cause

__all__ = [
    "Tracker",
    "default_tracking_uri",
    "is_tracking_store_error",
    "open_client",
    "probe_server",
    "quiet_mlflow",
    "run_space_file",
    "runs_url",
    "tracking_store_error",
    "trial_run",
]

log = logging.getLogger("harness.tracking")

_MAX_PARAM = 500


@contextlib.contextmanager
def quiet_mlflow(enabled: bool = True) -> Iterator[None]:
    """Silence MLflow's own error logging (a page of traceback per failed store call) for best-effort calls made
    after an error that is about to be shown in one line."""
    import mlflow  # noqa: F401 - its import configures the "mlflow" logger: first, or it undoes the level set here

    logger = logging.getLogger("mlflow")
    level = logger.level
    if enabled:
        logger.setLevel(logging.CRITICAL + 1)
    try:
        yield
    finally:
        logger.setLevel(level)


def probe_server(tracking_uri: str, timeout: float = 5.0) -> None:
    """Fail fast with one line when an ``http(s)`` tracking server does not answer (MLflow's own client retries for
    minutes). Any HTTP answer counts as reachable (a proxy may not route ``/health``); other URIs pass.

    Raises:
        HarnessError: the server does not answer within ``timeout`` seconds.
    """
    if not tracking_uri.startswith(("http://", "https://")):
        return
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(tracking_uri.rstrip("/") + "/health", timeout=timeout):  # noqa: S310 - the user's server
            pass
    except urllib.error.HTTPError:
        pass
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise HarnessError(
            f"MLflow tracking server {tracking_uri}",
            f"unreachable ({describe(reason if isinstance(reason, BaseException) else exc)})",
            "a running `mlflow server` at that address",
            "check --tracking-uri",
        ) from None


def open_client(tracking_uri: str) -> Any:
    """An ``MlflowClient`` (tracking and registry) for an *existing* store, after :func:`probe_server`.

    Raises:
        HarnessError: an unreachable server, or a ``sqlite:///`` store file that does not exist (MLflow would
            silently create an empty one).
    """
    probe_server(tracking_uri)
    if tracking_uri.startswith("sqlite:///") and not Path(tracking_uri.removeprefix("sqlite:///")).is_file():
        raise HarnessError(
            f"MLflow store {tracking_uri}", "no such database file", "a store written by `hefsweep sweep`",
            "check --root / --tracking-uri",
        )  # fmt: skip
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)


def is_tracking_store_error(exc: BaseException) -> bool:
    """Whether ``exc`` is a tracking store that cannot be used -- MLflow's own errors (a server's error replies, a
    locked or broken store), a refused or lost connection, a database or file error -- rather than a bug (which must
    show its traceback)."""
    import sqlite3

    import sqlalchemy.exc
    from mlflow.exceptions import MlflowException

    return any(
        isinstance(e, (MlflowException, sqlalchemy.exc.SQLAlchemyError, sqlite3.Error, OSError))  # requests: OSError
        for e in causes(exc)
    )


def tracking_store_error(tracking_uri: str, exc: BaseException) -> HarnessError:
    """One line for a tracking store that failed a call (locked, read-only, unreachable ...), with the root cause."""
    return HarnessError(
        f"MLflow tracking store {tracking_uri}",
        f"unreachable or unusable ({describe(root_cause(exc))})",
        "a reachable MLflow tracking URI (sqlite:///..., http://host:port)",
    )


def trial_run(client: Any, run_id: str, tracking_uri: str) -> Any:
    """The MLflow run of a sweep trial.

    Raises:
        HarnessError: no such run, an unusable store, or a run that is not a trial (``hefsweep.role``).
    """
    from mlflow.exceptions import MlflowException

    try:
        run = client.get_run(run_id)
    except MlflowException as exc:
        raise HarnessError(
            f"MLflow run {run_id}", f"not found in {tracking_uri} ({describe(exc, 160)})", "the id of a trial run"
        ) from None
    except Exception as exc:
        if not is_tracking_store_error(exc):
            raise  # a bug: its traceback, exit 2
        raise tracking_store_error(tracking_uri, exc) from None
    role = run.data.tags.get("hefsweep.role")
    if role != "trial":
        raise HarnessError(f"MLflow run {run_id}", f"has role {role!r}", "a sweep trial run (hefsweep.role=trial)")
    return run


def default_tracking_uri(root: Path) -> str:
    """``sqlite:///<abs root>/mlflow.db``."""
    return f"sqlite:///{Path(root).resolve() / 'mlflow.db'}"


def runs_url(base: str, experiment_id: str) -> str:
    """The MLflow UI URL that opens the runs table (not the GenAI overview, FINDINGS.md warning 6)."""
    return f"{base.rstrip('/')}/#/experiments/{experiment_id}/runs?workflowType=machine_learning"


def run_space_file(client: Any, run: Any, needed_for: str, given: Path | None = None) -> Path:
    """The search-space file of a trial run: ``given``, else the path its parent (study) run recorded as ``space``.

    Args:
        client: An ``MlflowClient``.
        run: The trial's ``mlflow.entities.Run``.
        needed_for: What the caller needs it for (ends up in the error).
        given: A path the user passed instead (e.g. ``--space``).

    Raises:
        HarnessError: no parent run, no ``space`` param, or no such file on this machine.
    """
    rid = run.info.run_id
    where = "the --space given"
    if given is None:
        parent_id = run.data.tags.get("mlflow.parentRunId")
        if not parent_id:
            raise HarnessError(f"MLflow run {rid}", "has no parent run", "a trial run logged by `hefsweep sweep`")
        recorded = client.get_run(parent_id).data.params.get("space")
        if not recorded or recorded == "None":
            raise HarnessError(f"parent run {parent_id}", "has no 'space' param", "the search-space path the sweep used")
        given, where = Path(recorded), f"param 'space' of run {parent_id}"
    if not Path(given).is_file():
        raise HarnessError(f"search space {given} ({where})", "no such file on this machine",
                           f"the space YAML the sweep used ({needed_for})")  # fmt: skip
    return Path(given)


def _flat(prefix: str, obj: Any, out: dict[str, Any]) -> dict[str, Any]:
    if isinstance(obj, dict):
        for k, v in obj.items():
            _flat(f"{prefix}.{k}" if prefix else str(k), v, out)
    else:
        out[prefix] = obj
    return out


class Tracker:
    """The MLflow sink for one study.

    With ``background=True``, the writes of a run -- params, tags and metrics batches, artifact uploads and the
    run's end -- leave the caller's thread at once: one background thread performs them in submission order.
    :meth:`flush` waits for all of them and raises the first error: the sweep flushes before a trial counts as
    done and before it exits, so a crash loses nothing that a finished trial claims. Run creation and reads stay
    synchronous. (MLflow's own ``log_batch(..., synchronous=False)`` is not used: it logs batches on a pool of 10
    threads, so two batches of one run may land out of order, and on a sqlite store the concurrent writers
    contend for the database lock -- measured here, a trial's flush then took ~1 s instead of milliseconds.)

    A local ``sqlite:///`` store is opened in WAL mode with ``synchronous=NORMAL`` (a commit costs no fsync of the
    database; committed rows survive a killed process), as the Optuna store is.

    Args:
        tracking_uri: Any MLflow tracking URI.
        experiment: Experiment name (the study name).
        artifact_root: For local stores, the folder under which the experiment's artifacts live.
        background: Log off the caller's thread (see above); then call :meth:`flush` / :meth:`close`.
    """

    def __init__(
        self, tracking_uri: str, experiment: str, artifact_root: Path | None = None, background: bool = False
    ) -> None:
        self.tracking_uri = tracking_uri
        self.experiment = experiment
        self.artifact_root = artifact_root
        self.background = background
        self._client: Any = None
        self._experiment_id: str | None = None
        self._pool: Any = None  # the artifact/end thread (a ThreadPoolExecutor with one worker)
        self._pending: list[Any] = []  # futures of the thread's jobs, in submission order
        self._lock = threading.Lock()

    @property
    def client(self) -> Any:
        if self._client is None:
            from mlflow import MlflowClient

            client = MlflowClient(tracking_uri=self.tracking_uri)
            if self.tracking_uri.startswith("sqlite:///"):
                _wal(client)
            self._client = client
        return self._client

    # -- background writes ---------------------------------------------------------------------------------------
    def _batch(self, run_id: str, metrics: list[Any] = (), params: list[Any] = (), tags: list[Any] = ()) -> None:  # type: ignore[assignment]
        if not (metrics or params or tags):
            return
        self._later(self.client.log_batch, run_id, list(metrics), list(params), list(tags))

    def _later(self, fn: Any, *args: Any) -> None:
        """Run ``fn(*args)`` now, or (``background``) on the tracker's thread, after the jobs submitted before."""
        if not self.background:
            fn(*args)
            return
        with self._lock:
            if self._pool is None:
                from concurrent.futures import ThreadPoolExecutor

                self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix=_THREAD)
                _quiet_thread()
            self._pending.append(self._pool.submit(fn, *args))

    def flush(self) -> None:
        """Wait until every background write is done.

        Raises:
            Exception: the first write that failed (every other write was still attempted).
        """
        first: BaseException | None = None
        while True:
            with self._lock:
                pending, self._pending = self._pending, []
            if not pending:
                break
            for fut in pending:
                try:
                    fut.result()
                except Exception as exc:  # noqa: BLE001 - the first is raised below, after the rest are done
                    first = first or exc
        if first is not None:
            raise first

    def close(self) -> None:
        """:meth:`flush`, then stop the background thread (the tracker can still be used: it starts another)."""
        try:
            self.flush()
        finally:
            with self._lock:
                pool, self._pool = self._pool, None
            if pool is not None:
                pool.shutdown(wait=True)

    def _store_error(self, exc: BaseException) -> HarnessError:
        return tracking_store_error(self.tracking_uri, exc)

    def check(self, timeout: float = 5.0) -> None:
        """:func:`probe_server` for this tracker's URI."""
        probe_server(self.tracking_uri, timeout)

    @property
    def experiment_id(self) -> str:
        """The experiment id, creating the experiment on first use.

        Raises:
            HarnessError: the tracking store cannot be reached.
        """
        if self._experiment_id is None:
            try:
                exp = self.client.get_experiment_by_name(self.experiment)
                if exp is None:
                    loc = None
                    # A local store gets an explicit artifact folder (MLflow would root it at the CWD); a tracking
                    # server keeps its own artifact root, which every worker can reach.
                    if self.artifact_root is not None and not self.tracking_uri.startswith(("http://", "https://")):
                        loc = (Path(self.artifact_root).resolve() / self.experiment).as_uri()
                    self._experiment_id = self.client.create_experiment(self.experiment, artifact_location=loc)
                else:
                    self._experiment_id = exp.experiment_id
            except Exception as exc:
                if not is_tracking_store_error(exc):
                    raise  # a bug: its traceback, exit 2
                raise self._store_error(exc) from None
        return self._experiment_id

    def parent_run(self, study: str, params: dict[str, Any], tags: dict[str, str]) -> str:
        """Find the study's parent run (resuming a study) or create it.

        Raises:
            HarnessError: the store is unreachable, locked or read-only.
        """
        try:
            with quiet_mlflow():  # MLflow logs a page of traceback per store error; ours is the one line below
                return self._parent_run(study, params, tags)
        except HarnessError:
            raise
        except Exception as exc:
            if not is_tracking_store_error(exc):
                raise  # a bug: its traceback, exit 2
            raise self._store_error(exc) from None

    def _parent_run(self, study: str, params: dict[str, Any], tags: dict[str, str]) -> str:
        found = self.client.search_runs(
            [self.experiment_id],
            filter_string=f"tags.`hefsweep.study` = '{study}' and tags.`hefsweep.role` = 'parent'",
            max_results=1,
        )
        if found:
            run_id: str = found[0].info.run_id
            if found[0].info.status != "RUNNING":
                self.client.update_run(run_id, status="RUNNING")
            return run_id
        run = self.client.create_run(
            self.experiment_id,
            run_name=f"study-{study}",
            tags={"hefsweep.study": study, "hefsweep.role": "parent", **tags},
        )
        self.log_params(run.info.run_id, params)
        return str(run.info.run_id)

    def child_run(self, parent_id: str, name: str, params: dict[str, Any], tags: dict[str, str]) -> str:
        """Create a trial's run under the parent."""
        run = self.client.create_run(
            self.experiment_id,
            run_name=name,
            tags={"mlflow.parentRunId": parent_id, "hefsweep.role": "trial", **tags},
        )
        self.log_params(run.info.run_id, params)
        return str(run.info.run_id)

    def log_params(self, run_id: str, params: dict[str, Any]) -> None:
        from mlflow.entities import Param

        flat = _flat("", params, {})
        items = [Param(k, str(v)[:_MAX_PARAM]) for k, v in flat.items()]
        for i in range(0, len(items), 100):
            self._batch(run_id, params=items[i : i + 100])

    def log_metrics(self, run_id: str, metrics: dict[str, float], step: int = 0) -> None:
        import math
        import time

        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        items = [Metric(k, float(v), now, step) for k, v in metrics.items() if v is not None and math.isfinite(float(v))]
        self._batch(run_id, metrics=items)

    def set_tags(self, run_id: str, tags: dict[str, Any]) -> None:
        from mlflow.entities import RunTag

        self._batch(run_id, tags=[RunTag(k, str(v)[:5000]) for k, v in tags.items()])

    def log_result(
        self,
        run_id: str,
        tags: dict[str, Any],
        metrics: dict[str, float],
        files: list[tuple[Path | str, str | None, str | None]],
    ) -> None:
        """Log a trial's tags and metrics in one batch and its files in one upload.

        Args:
            run_id: The run.
            tags: Tag values (stringified).
            metrics: Finite metric values (others are skipped).
            files: ``(source, folder, name)``: a file path (``name`` None keeps its name) or text content.
        """
        import math
        import os
        import shutil
        import time

        from mlflow.entities import Metric, RunTag

        now = int(time.time() * 1000)
        self._batch(
            run_id,
            metrics=[Metric(k, float(v), now, 0) for k, v in metrics.items() if v is not None and math.isfinite(float(v))],
            tags=[RunTag(k, str(v)[:5000]) for k, v in tags.items()],
        )
        # staged now (hard links: the trial's files may change after this returns), uploaded on the tracker's thread
        tmp = tempfile.mkdtemp(prefix="hefsweep-artifacts-")
        try:
            staged = 0
            for source, folder, name in files:
                dest_dir = Path(tmp) / folder if folder else Path(tmp)
                dest_dir.mkdir(parents=True, exist_ok=True)
                if isinstance(source, Path):
                    if not source.exists():
                        continue
                    dest = dest_dir / (name or source.name)
                    try:
                        os.link(source, dest)  # no copy of large models on the same file system
                    except OSError:
                        shutil.copyfile(source, dest)
                else:
                    (dest_dir / str(name)).write_text(source)
                staged += 1
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        self._later(self._upload, run_id, tmp, staged)

    def _upload(self, run_id: str, tmp: str, staged: int) -> None:
        import shutil

        try:
            if staged:
                self.client.log_artifacts(run_id, tmp)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    def log_artifact(self, run_id: str, path: Path, folder: str | None = None) -> None:
        self.client.log_artifact(run_id, str(path), folder)

    def log_json(self, run_id: str, obj: Any, name: str, folder: str | None = None) -> None:
        with tempfile.TemporaryDirectory() as tmp:
            p = Path(tmp) / name
            p.write_text(json.dumps(obj, indent=2, default=str))
            self.log_artifact(run_id, p, folder)

    def log_text(self, run_id: str, text: str, name: str, folder: str | None = None) -> None:
        with tempfile.TemporaryDirectory() as tmp:
            p = Path(tmp) / name
            p.write_text(text)
            self.log_artifact(run_id, p, folder)

    def end(self, run_id: str, status: str = "FINISHED") -> None:
        """End a run: ``FINISHED``, ``FAILED`` or ``KILLED`` (``background``: after its pending writes)."""
        self._later(self.client.set_terminated, run_id, status)


_THREAD = "hefsweep-tracker"


class _NotTrackerThread(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not record.threadName.startswith(_THREAD)


def _quiet_thread() -> None:
    """Drop MLflow's own error logging (a page of traceback per failed store call) from the tracker's thread: each
    failure is raised by :meth:`Tracker.flush` and shown there, in one line or as a bug's traceback."""
    import mlflow  # noqa: F401 - configures the "mlflow" logger's handlers

    for handler in logging.getLogger("mlflow").handlers:
        if not any(isinstance(f, _NotTrackerThread) for f in handler.filters):
            handler.addFilter(_NotTrackerThread())


def _wal(client: Any) -> None:
    """WAL journal + ``synchronous=NORMAL`` on a local sqlite MLflow store (see :class:`Tracker`)."""
    from sqlalchemy import event

    store = client._tracking_client.store
    engine = getattr(store, "engine", None)
    if engine is None:
        return

    def pragmas(conn: Any, _record: Any) -> None:
        cur = conn.cursor()
        try:
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            # a bounded WAL: checkpoint every 32 pages and truncate to 128 KiB, so the store needs little more free
            # space than with a rollback journal (a nearly full disk fails on the artifact, not on the rows)
            cur.execute("PRAGMA wal_autocheckpoint=32")
            cur.execute("PRAGMA journal_size_limit=131072")
        except Exception:  # noqa: BLE001 - a read-only store: reads still work; writes fail with their own error
            pass
        finally:
            cur.close()

    event.listen(engine, "connect", pragmas)
    engine.dispose()  # connections opened before the listener get replaced
