"""Optuna's RDB storage without the window in which a dead worker's trial stays RUNNING forever.

Optuna reaps (fails, then retries) a RUNNING trial whose heartbeat row is older than the grace period, but only a
trial that has a row: the first one is written by the worker's heartbeat thread after ``ask()`` returned, so a
worker killed in between leaves a trial that no one ever fails. Two changes close that window:

1. A trial that becomes RUNNING through this storage gets its heartbeat row in the same storage call, before
   ``ask()`` returns (the heartbeat thread then updates it).
2. A RUNNING trial without a row (made by a process that does not use this class) is stale once this process has
   seen it without one for longer than the grace period, measured on this process's monotonic clock: no
   comparison of clocks across machines or time zones.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import sqlalchemy
from optuna.storages import RDBStorage
from optuna.storages._rdb import models
from optuna.trial import FrozenTrial, TrialState

__all__ = ["HeartbeatStorage"]


class HeartbeatStorage(RDBStorage):
    """:class:`optuna.storages.RDBStorage` whose RUNNING trials always heartbeat or go stale."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._unbeaten: dict[int, float] = {}  # trial id -> when this process first saw it RUNNING without a row

    def _create_new_trial(self, study_id: int, template_trial: FrozenTrial | None = None) -> FrozenTrial:
        # Optuna's caching wrapper calls this one directly (not create_new_trial)
        trial = super()._create_new_trial(study_id, template_trial)
        if trial.state == TrialState.RUNNING and self.heartbeat_interval is not None:
            self.record_heartbeat(trial._trial_id)
        return trial

    def set_trial_state_values(self, trial_id: int, state: TrialState, values: Sequence[float] | None = None) -> bool:
        changed = super().set_trial_state_values(trial_id, state, values)
        if changed and state == TrialState.RUNNING and self.heartbeat_interval is not None:
            self.record_heartbeat(trial_id)
        return changed

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
        with self.engine.connect() as conn:
            silent = {row[0] for row in conn.execute(query)}
        now = time.monotonic()
        self._unbeaten = {tid: self._unbeaten.get(tid, now) for tid in silent}
        return stale + [tid for tid, seen in self._unbeaten.items() if now - seen > grace and tid not in stale]
