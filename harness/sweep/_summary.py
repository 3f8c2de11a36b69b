"""What a sweep did: :class:`SweepSummary`, and the parent run's summary (``_log_summary``: trial counts, the best
trial, ``trials.json``)."""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from typing import Any

from harness.tracking import Tracker

log = logging.getLogger("harness.sweep")


@dataclass
class SweepSummary:
    """What a sweep did (also logged to the parent run)."""

    study: str
    n_trials: int = 0
    n_ok: int = 0
    n_failed: int = 0
    n_pruned: int = 0
    best_value: float | None = None
    best_trial: int | None = None
    best_run_id: str | None = None
    signatures: dict[str, int] = field(default_factory=dict)
    experiment_id: str = ""
    parent_run_id: str = ""
    seconds: float = 0.0
    objective: str = "si_snr_db"  # what best_value is (capacity_macs in mode: frontier)


def _log_summary(tracker: Tracker, parent: str, study: Any, summary: SweepSummary, *, quiet: bool = False) -> None:
    try:
        import optuna

        states = [t.state for t in study.trials]
        tracker.log_metrics(
            parent,
            {
                "n_trials": len(states),
                "n_complete": sum(s == optuna.trial.TrialState.COMPLETE for s in states),
                "n_ok": sum(t.user_attrs.get("status") == "ok" for t in study.trials),
                "n_failed": sum(t.user_attrs.get("status") == "failed" for t in study.trials),
                "n_lost": sum(s == optuna.trial.TrialState.FAIL for s in states),
                "sweep_seconds": summary.seconds,
                **({f"best_{summary.objective}": float(study.best_value)} if _has_best(study) else {}),
            },
        )
        if _has_best(study):
            tracker.set_tags(
                parent,
                {"hefsweep.best_trial": study.best_trial.number, "hefsweep.best_run_id": study.best_trial.user_attrs.get("mlflow_run_id", "")},
            )
        rows = [
            {
                "number": t.number,
                "state": t.state.name,
                "value": t.value if t.value is not None and math.isfinite(t.value) else None,
                "params": t.params,
                "signature": t.user_attrs.get("signature"),
                "constraints": t.constraints,
                "mlflow_run_id": t.user_attrs.get("mlflow_run_id"),
            }
            for t in study.trials
        ]
        tracker.log_json(parent, rows, "trials.json")
        tracker.end(parent, "FINISHED")
    except Exception as exc:  # noqa: BLE001 - a summary failure must not hide the sweep's own outcome
        # after a full or read-only store stopped the sweep, its one-line error says it all
        (log.debug if quiet else log.warning)("could not log the sweep summary to the parent run: %s", exc)
        try:
            tracker.end(parent, "FINISHED")
        except Exception:  # noqa: BLE001
            pass


def _has_best(study: Any) -> bool:
    try:
        _ = study.best_trial
        return True
    except ValueError:
        return False
