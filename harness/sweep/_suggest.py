"""Suggestion and enqueueing: a trial's configuration drawn from the space (:func:`suggest`), the searched
dimensions of a configuration (``_searched``), and ``_enqueue`` (start points and follow-up trials, enqueued once
across all workers of a storage under its enqueue lock)."""

from __future__ import annotations

import contextlib
from typing import Any

from harness.pipeline import TrialConfig
from harness.space import IntRange, SearchSpace


def suggest(trial: Any, space: SearchSpace) -> TrialConfig:
    """Draw one trial's configuration (fixed dimensions are not Optuna parameters)."""
    values: dict[str, Any] = {}
    for name, dim in space.dimension_items():
        if isinstance(dim, IntRange):
            values[name] = trial.suggest_int(name, dim.low, dim.high, step=dim.step, log=dim.log)
        elif isinstance(dim, list) and len(dim) > 1:
            values[name] = trial.suggest_categorical(name, dim)
        else:
            values[name] = dim[0] if isinstance(dim, list) else dim  # fixed: an MLflow param, not an Optuna one
    return TrialConfig(**values)


def _enqueue(study: Any, configs: list[dict[str, Any]], user_attrs: list[dict[str, Any]] | None = None) -> None:
    """Enqueue each configuration unless the study holds a trial with those params already, as one step across all
    workers of the storage: two workers opening a new study at once enqueue its start points once (Optuna's
    ``skip_if_exists`` alone checks, then writes, so both would)."""
    if not configs:
        return
    from harness._heartbeat import HeartbeatStorage

    storage = study._storage
    storage = storage if isinstance(storage, HeartbeatStorage) else getattr(storage, "_backend", None)
    lock = storage.lock(f"enqueue:{study.study_name}") if isinstance(storage, HeartbeatStorage) else contextlib.nullcontext()
    with lock:
        for i, params in enumerate(configs):
            study.enqueue_trial(params, user_attrs=user_attrs[i] if user_attrs else None, skip_if_exists=True)


def _searched(params: dict[str, Any], space: SearchSpace) -> dict[str, Any]:
    """Only the searched dimensions (fixed ones are not Optuna params)."""
    dims = dict(space.dimension_items())
    return {
        k: v for k, v in params.items() if isinstance(dims.get(k), IntRange) or (isinstance(dims.get(k), list) and len(dims[k]) > 1)
    }
