"""The Optuna storage: an RDB storage with heartbeats (``_storage``; a stale trial's MLflow run is ended KILLED
and the trial retried, ``_retry_of`` names the trial a retry replaces), SQLite's WAL pragmas, and the one-line
errors of a storage that cannot be used (:func:`is_storage_error`, ``_storage_error``) or fills up under the
sweep (``_sweep_error``)."""

from __future__ import annotations

import copy
import errno
import logging
from pathlib import Path
from typing import Any

from harness.errors import HarnessError, causes, describe, root_cause
from harness.space import SearchSpace

log = logging.getLogger("harness.sweep")


def default_storage(root: Path) -> str:
    """``sqlite:///<abs root>/optuna.db``: the default Optuna storage, a local file under ``mlruns/``."""
    return f"sqlite:///{Path(root).resolve() / 'optuna.db'}"


def _storage(url: str, space: SearchSpace, tracker_factory: Any) -> Any:
    """An RDB storage with heartbeats; a stale trial's MLflow run is ended KILLED and the trial retried."""
    from optuna.storages import RetryHeartbeatStaleTrialCallback

    retry = RetryHeartbeatStaleTrialCallback(max_retry=space.heartbeat.max_retry)

    def on_failed(study: Any, trial: Any) -> None:
        from harness._heartbeat import OWNER_ATTR, owner_gone

        why = "owner process gone" if owner_gone(trial.user_attrs.get(OWNER_ATTR)) else "heartbeat stale"
        lost = {"hefsweep.status": "failed", "hefsweep.signature": "harness:WorkerLost:stale", "hefsweep.lost": why}
        try:
            tracker = tracker_factory(study.study_name)
            run_id = trial.user_attrs.get("mlflow_run_id")
            # the run id is this trial's only if its run says so (stores written by older versions let retries
            # inherit their parent trial's id)
            own = run_id and tracker.client.get_run(run_id).data.tags.get("hefsweep.trial") == str(trial.number)
            if not own:
                parent = tracker.parent_run(study.study_name, params={}, tags={})
                run_id = tracker.child_run(
                    parent, f"trial-{trial.number:04d}", params={}, tags={"hefsweep.study": study.study_name,
                                                                           "hefsweep.trial": str(trial.number)},
                )  # fmt: skip
            tracker.set_tags(run_id, lost)
            tracker.end(run_id, "KILLED")
        except Exception as exc:  # noqa: BLE001 - the retry must happen even if MLflow is down
            log.warning("could not mark the run of stale trial %d KILLED: %s", trial.number, exc)
        # the retry copies the trial's user attributes: never its run id (the retry gets a run of its own) nor its
        # owner (the process that runs the retry records itself)
        template = copy.deepcopy(trial)
        template.user_attrs = {k: v for k, v in trial.user_attrs.items() if k not in ("mlflow_run_id", OWNER_ATTR)}
        retry(study, template)

    kwargs: dict[str, Any] = {}
    if url.startswith("sqlite:"):
        kwargs["connect_args"] = {"timeout": 60}
    elif url.startswith("postgres"):
        kwargs["connect_args"] = {"connect_timeout": 10}
    try:
        from harness._heartbeat import HeartbeatStorage

        storage = HeartbeatStorage(
            url,
            engine_kwargs=kwargs,
            heartbeat_interval=space.heartbeat.interval,
            grace_period=space.heartbeat.grace,
            heartbeat_stale_trial_callback=on_failed,
            defer_attrs=True,  # a trial's attributes written with its end: one write per trial
        )
        if url.startswith("sqlite:"):
            _fast_sqlite(storage.engine)
        return storage
    except Exception as exc:
        if not is_storage_error(exc):
            raise  # a bug: its traceback, exit 2
        raise _storage_error(url, exc) from None


def is_storage_error(exc: BaseException) -> bool:
    """Whether ``exc`` is an Optuna storage that cannot be used -- a bad URL, a refused or lost connection, a
    locked, full or read-only database, a missing database driver, a schema of another Optuna version -- rather
    than a bug (which must show its traceback)."""
    import sqlite3

    import sqlalchemy.exc
    from optuna.exceptions import StorageInternalError

    for e in causes(exc):
        if isinstance(e, (sqlalchemy.exc.SQLAlchemyError, StorageInternalError, sqlite3.Error, OSError)):
            return True
        if isinstance(e, ImportError) and "DB access module" in str(e):  # RDBStorage: no driver for the URL
            return True
        if isinstance(e, RuntimeError) and "compatible with the table schema" in str(e):  # RDBStorage's check
            return True
    return False


def _storage_error(url: str, exc: Exception) -> HarnessError:
    """One line for an unusable Optuna storage (the password part of the URL is not shown); a database that holds
    MLflow's tables (the tracking store's database given as the Optuna storage) is named as such."""
    mlflow_tables = _mlflow_tables(url)
    if mlflow_tables:
        return HarnessError(
            f"Optuna storage {url.split('@')[-1]}",
            f"the database holds MLflow's tables ({', '.join(mlflow_tables)})",
            "a database of its own for Optuna, not the MLflow tracking store's",
            hint="e.g. createdb optuna and --storage postgresql://user@host/optuna",
        )
    return HarnessError(
        f"Optuna storage {url.split('@')[-1]}",
        f"unusable ({describe(root_cause(exc))})",
        "a reachable, writable Optuna storage URL (sqlite:///..., postgresql://user@host/db)",
    )


#: Tables only an MLflow tracking store has (Optuna's schema has none of them).
_MLFLOW_TABLES = ("experiments", "runs", "metrics", "params")


def _mlflow_tables(url: str) -> list[str]:
    """The MLflow tables in the database at ``url`` (empty when there are none or it cannot be inspected)."""
    try:
        import sqlalchemy

        parsed = sqlalchemy.engine.make_url(url)
        if parsed.get_backend_name() == "sqlite" and not (parsed.database and Path(parsed.database).is_file()):
            return []  # inspecting would create the file
        connect = {"connect_timeout": 5} if parsed.get_backend_name().startswith("postgres") else {}
        engine = sqlalchemy.create_engine(parsed, connect_args=connect)
        try:
            names = set(sqlalchemy.inspect(engine).get_table_names())
        finally:
            engine.dispose()
    except Exception:  # noqa: BLE001 - only a better message is at stake; the caller reports the original error
        return []
    found = [t for t in _MLFLOW_TABLES if t in names]
    return found if len(found) >= 2 else []


def _fast_sqlite(engine: Any) -> None:
    """WAL journal + synchronous=NORMAL: a commit costs no fsync of the whole database (the local default store
    only; WAL needs a local file system, which a ``sqlite:///`` store under ``mlruns/`` is)."""
    from sqlalchemy import event

    def pragmas(conn: Any, _record: Any) -> None:
        cur = conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.close()

    event.listen(engine, "connect", pragmas)
    engine.dispose()  # connections opened before the listener get replaced


def _retry_of(study: Any, trial: Any) -> int | None:
    """The number of the stale trial this one retries (``RetryHeartbeatStaleTrialCallback`` records it)."""
    from optuna.storages import RetryHeartbeatStaleTrialCallback

    frozen = study._storage.get_trial(trial._trial_id)  # the live Trial does not expose system attrs
    return RetryHeartbeatStaleTrialCallback.retried_trial_number(frozen)


_NO_SPACE = (errno.ENOSPC, errno.EDQUOT, errno.EROFS)
_NO_SPACE_TEXT = ("database or disk is full", "disk i/o error", "readonly database", "read-only file system",
                  "no space left on device")  # fmt: skip


def _sweep_error(exc: BaseException, url: str) -> HarnessError | None:
    """The one-line error for a store that ran out of space or turned read-only under Optuna, or None for anything
    else (a bug: shown with its traceback). A trial's own ``HarnessError`` is recorded by the objective instead."""
    for e in causes(exc):
        if (isinstance(e, OSError) and e.errno in _NO_SPACE) or any(t in str(e).lower() for t in _NO_SPACE_TEXT):
            return HarnessError(
                f"Optuna storage {url.split('@')[-1]}",
                f"write failed ({describe(e)})",
                "a writable store with free space (finished trials and runs are kept)",
            )
    return None
