"""Optuna's RDB storage without the window in which a dead worker's trial stays RUNNING forever.

Optuna reaps (fails, then retries) a RUNNING trial whose heartbeat row is older than the grace period, but only a
trial that has a row: the first one is written by the worker's heartbeat thread after ``ask()`` returned, so a
worker killed in between leaves a trial that no one ever fails. Two changes close that window:

1. A trial that becomes RUNNING through this storage gets its heartbeat row in the same storage call, before
   ``ask()`` returns (the heartbeat thread then updates it).
2. A RUNNING trial without a row (made by a process that does not use this class) is stale once this process has
   seen it without one for longer than the grace period, measured on this process's monotonic clock: no
   comparison of clocks across machines or time zones.

And one that needs no grace period at all: each trial that becomes RUNNING through this storage records its owner
(user attribute ``hefsweep.owner``: host, boot id, pid namespace, pid and the process's start time). A RUNNING
trial whose owner ran on this machine (same host, boot and pid namespace) but whose process is gone -- no such
pid, or a pid reused by a process that started at another time -- is stale at once: a sweep killed with SIGKILL
and resumed right away fails (and retries) the killed trial before it runs anything else. Owners on other
machines, or where ``/proc`` cannot tell, are left to the heartbeat grace period.

:meth:`HeartbeatStorage.lock` serialises a check-then-write (enqueueing a trial unless it exists) across the
processes of one storage: an advisory lock on PostgreSQL and MySQL, a lock on a file next to a sqlite database.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import time
from collections.abc import Iterator, Sequence
from typing import Any

import sqlalchemy
import sqlalchemy.exc
from optuna.storages import RDBStorage
from optuna.storages._rdb import models
from optuna.trial import FrozenTrial, TrialState

from harness._owner import owner, owner_gone

__all__ = ["OWNER_ATTR", "HeartbeatStorage", "owner", "owner_gone"]

OWNER_ATTR = "hefsweep.owner"


#: Attributes other processes read while the trial runs (the stale-trial callback): never deferred.
_IMMEDIATE = frozenset({OWNER_ATTR, "mlflow_run_id"})


class HeartbeatStorage(RDBStorage):
    """:class:`optuna.storages.RDBStorage` whose RUNNING trials always heartbeat or go stale.

    With ``defer_attrs`` (the sweep's storage), the user and system attributes a running trial of this process
    sets (status, signature, constraints ...) are kept in memory -- this process's reads see them -- and written
    in the same transaction that finishes the trial: one write per trial instead of one per attribute. A trial
    whose process dies is failed and retried by the stale-trial reaper, so nothing it claimed is lost. Attributes
    that other processes read while the trial runs (its owner and ``mlflow_run_id``) are written at once.
    """

    def __init__(self, *args: Any, defer_attrs: bool = False, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._unbeaten: dict[int, float] = {}  # trial id -> when this process first saw it RUNNING without a row
        self._defer = defer_attrs
        self._deferred: dict[int, tuple[dict[str, Any], dict[str, Any]]] = {}  # trial id -> (user, system) attrs

    def _create_new_trial(self, study_id: int, template_trial: FrozenTrial | None = None) -> FrozenTrial:
        # Optuna's caching wrapper calls this one directly (not create_new_trial)
        trial = super()._create_new_trial(study_id, template_trial)
        if trial.state == TrialState.RUNNING and self._defer:
            self._deferred[trial._trial_id] = ({}, {})
        if trial.state == TrialState.RUNNING and self.heartbeat_interval is not None:
            me = owner()
            self.set_trial_user_attr(trial._trial_id, OWNER_ATTR, me)
            trial.user_attrs = {**trial.user_attrs, OWNER_ATTR: me}  # the caching wrapper keeps this copy
            self.record_heartbeat(trial._trial_id)
        return trial

    def set_trial_state_values(self, trial_id: int, state: TrialState, values: Sequence[float] | None = None) -> bool:
        deferred = self._deferred.get(trial_id)
        if state.is_finished() and deferred is not None and (deferred[0] or deferred[1]):
            changed = self._finish_with_attrs(trial_id, state, values, *deferred)
        else:
            changed = super().set_trial_state_values(trial_id, state, values)
        if state.is_finished():
            self._deferred.pop(trial_id, None)
        if changed and state == TrialState.RUNNING:
            if self._defer:
                self._deferred[trial_id] = ({}, {})
            if self.heartbeat_interval is not None:
                self.set_trial_user_attr(trial_id, OWNER_ATTR, owner())
                self.record_heartbeat(trial_id)
        return changed

    def _finish_with_attrs(
        self,
        trial_id: int,
        state: TrialState,
        values: Sequence[float] | None,
        user: dict[str, Any],
        system: dict[str, Any],
    ) -> bool:
        """``RDBStorage.set_trial_state_values`` for a finishing trial, with its deferred attributes, in one
        transaction."""
        from datetime import datetime

        from optuna.storages._rdb.storage import _create_scoped_session

        try:
            with _create_scoped_session(self.scoped_session) as session:
                trial = models.TrialModel.find_or_raise_by_id(trial_id, session, for_update=True)
                self.check_trial_is_updatable(trial_id, trial.state)
                for key, value in user.items():
                    self._set_trial_attr_without_commit(session, models.TrialUserAttributeModel, trial_id, key, value)
                for key, value in system.items():
                    self._set_trial_attr_without_commit(session, models.TrialSystemAttributeModel, trial_id, key, value)
                if values is not None:
                    for objective, v in enumerate(values):
                        self._set_trial_value_without_commit(session, trial, objective, v)
                trial.state = state
                trial.datetime_complete = datetime.now()
        except sqlalchemy.exc.IntegrityError:
            return False
        return True

    def set_trial_user_attr(self, trial_id: int, key: str, value: Any) -> None:
        deferred = self._deferred.get(trial_id)
        if deferred is None or key in _IMMEDIATE:
            super().set_trial_user_attr(trial_id, key, value)
        else:
            deferred[0][key] = json.loads(json.dumps(value))  # as stored: a value that is not JSON fails now

    def set_trial_system_attr(self, trial_id: int, key: str, value: Any) -> None:
        deferred = self._deferred.get(trial_id)
        if deferred is None:
            super().set_trial_system_attr(trial_id, key, value)
        else:
            deferred[1][key] = json.loads(json.dumps(value))

    def get_trial(self, trial_id: int) -> FrozenTrial:
        return self._merged(super().get_trial(trial_id))

    def _get_trials(self, *args: Any, **kwargs: Any) -> list[FrozenTrial]:
        return [self._merged(t) for t in super()._get_trials(*args, **kwargs)]

    def _merged(self, trial: FrozenTrial) -> FrozenTrial:
        deferred = self._deferred.get(trial._trial_id)
        if deferred is not None and trial.state == TrialState.RUNNING and (deferred[0] or deferred[1]):
            trial.user_attrs = {**trial.user_attrs, **deferred[0]}
            trial.system_attrs = {**trial.system_attrs, **deferred[1]}
        return trial

    @contextlib.contextmanager
    def lock(self, name: str, timeout: float = 600.0) -> Iterator[None]:
        """Hold the storage-wide lock ``name`` (every process of this storage waits for it) for the block.

        PostgreSQL: ``pg_advisory_lock`` on a connection of its own; MySQL: ``GET_LOCK``; sqlite: ``flock`` on
        ``<database>.<hash>.lock`` beside the file (sqlite's own locks would block this process's other
        connection); an in-memory sqlite database (one process) or another dialect: no lock.
        """
        key = int.from_bytes(hashlib.sha256(f"hefsweep:{name}".encode()).digest()[:8], "big", signed=True)
        dialect = self.engine.dialect.name
        database = self.engine.url.database
        if dialect == "postgresql":
            with self.engine.connect() as conn:
                conn.execute(sqlalchemy.text("SELECT pg_advisory_lock(:k)"), {"k": key})
                conn.commit()
                try:
                    yield
                finally:
                    conn.execute(sqlalchemy.text("SELECT pg_advisory_unlock(:k)"), {"k": key})
                    conn.commit()
        elif dialect == "mysql":
            with self.engine.connect() as conn:
                got = conn.execute(sqlalchemy.text("SELECT GET_LOCK(:n, :t)"), {"n": f"hefsweep{key}", "t": timeout})
                if got.scalar() != 1:
                    raise TimeoutError(f"storage lock {name!r} not acquired in {timeout:g} s")
                try:
                    yield
                finally:
                    conn.execute(sqlalchemy.text("SELECT RELEASE_LOCK(:n)"), {"n": f"hefsweep{key}"})
        elif dialect == "sqlite" and database and database != ":memory:" and not database.startswith("file:"):
            import fcntl

            try:
                fh = open(f"{database}.{key & 0xFFFFFFFF:08x}.lock", "a")  # noqa: SIM115 - closed below
            except OSError:  # a read-only folder: nothing can be written to the database beside it either
                yield
                return
            with fh:
                fcntl.flock(fh, fcntl.LOCK_EX)
                try:
                    yield
                finally:
                    fcntl.flock(fh, fcntl.LOCK_UN)
        else:
            yield

    def _get_stale_trial_ids(self, study_id: int) -> list[int]:
        stale = super()._get_stale_trial_ids(study_id)
        assert self.heartbeat_interval is not None
        grace = self.grace_period if self.grace_period is not None else 2 * self.heartbeat_interval
        beat = models.TrialHeartbeatModel
        query = (
            sqlalchemy.select(models.TrialModel.trial_id)
            .outerjoin(beat, beat.trial_id == models.TrialModel.trial_id)
            .where(models.TrialModel.study_id == study_id)
            .where(models.TrialModel.state == TrialState.RUNNING)
            .where(beat.trial_heartbeat_id.is_(None))
        )
        attr = models.TrialUserAttributeModel
        owned = (
            sqlalchemy.select(models.TrialModel.trial_id, attr.value_json)
            .join(attr, attr.trial_id == models.TrialModel.trial_id)
            .where(models.TrialModel.study_id == study_id)
            .where(models.TrialModel.state == TrialState.RUNNING)
            .where(attr.key == OWNER_ATTR)
        )
        with self.engine.connect() as conn:
            silent = {row[0] for row in conn.execute(query)}
            owners = list(conn.execute(owned))
        now = time.monotonic()
        self._unbeaten = {tid: self._unbeaten.get(tid, now) for tid in silent}
        stale += [tid for tid, seen in self._unbeaten.items() if now - seen > grace and tid not in stale]
        return stale + [tid for tid, value in owners if tid not in stale and owner_gone(_json(value))]


def _json(text: str) -> Any:
    try:
        return json.loads(text)
    except (TypeError, ValueError):
        return None
