"""A trial's fate: :func:`decide` (status, signature, follow-up trials) and ``_grade`` (the graded constraints and
the objective value); the compile gate (``_in_top_k``) and the ONNX Runtime screen (``_screened_out``); ``mode:
frontier``'s capacity point (``_frontier_point``, ``_record_frontier``, ``_check_frontier``)."""

from __future__ import annotations

import math
from typing import Any

from harness.errors import ConfigError
from harness.pipeline import Pipeline, TrialConfig, TrialResult
from harness.space import SearchSpace
from harness.sweep._suggest import _enqueue, _searched
from harness.tracking import Tracker


def _in_top_k(study: Any, value: float, k: int) -> bool:
    """Whether ``value`` ranks among the ``k`` best SI-SNR values of the study's successful trials so far."""
    from optuna.trial import TrialState

    values = sorted(
        (t.value for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)) if t.user_attrs.get("status") == "ok"),
        reverse=True,
    )
    return len(values) < k or value >= values[k - 1]


def _screened_out(study: Any, value: float, space: SearchSpace) -> bool:
    """Whether a trial's ONNX Runtime screening SI-SNR falls below the keep fraction of earlier screens."""
    assert space.screen is not None
    earlier = sorted(
        (v for t in study.get_trials(deepcopy=False) if (v := t.user_attrs.get("screen_si_snr_db")) is not None),
        reverse=True,
    )
    if len(earlier) < space.screen.min_screened:
        return False
    keep = max(1, int(round(space.screen.keep_fraction * len(earlier))))
    return value < earlier[keep - 1]


def decide(
    study: Any, trial: Any, cfg: TrialConfig, result: TrialResult, space: SearchSpace, frontier: Any = None
) -> float:
    """The one place that decides a trial's fate in the study.

    Records status, signature and graded constraints on the trial, enqueues follow-up repair trials for a failure
    (when the space enables them), and returns the objective value to report: the mean SI-SNR, or in ``mode:
    frontier`` the trial's capacity (``frontier``, a :class:`~harness.feasibility.FrontierPoint`).
    """
    value = _grade(trial, result, space, frontier)
    trial.set_user_attr("status", result.status)
    if result.failure is not None:
        trial.set_user_attr("signature", result.failure.signature)
        if space.repair_trials:
            from harness.followups import propose

            proposed = list(propose(result.failure, cfg.to_dict(), space))
            _enqueue(study, [_searched(params, space) for _, params in proposed],
                     [{"hefsweep.repair_of": trial.number, "hefsweep.repair_rule": rule} for rule, _ in proposed])  # fmt: skip
    return value


def _grade(trial: Any, result: TrialResult, space: SearchSpace, frontier: Any = None) -> float:
    """Record the trial's constraints and return its objective value (see :mod:`harness.feasibility`); with a
    ``frontier`` point (``mode: frontier``) the value is the capacity, feasible or not, and no worst-clip floor."""
    from harness.feasibility import INFEASIBLE_VALUE, violation

    if result.failure is not None:
        from harness.failures import base_stage

        compile_failed = base_stage(result.failure.stage) == "compile"  # a split model's compile[seg 2/3] too
        trial.set_constraint("failure", 0.0 if compile_failed else violation(result.failure))
        trial.set_constraint("compile", violation(result.failure) if compile_failed else 0.0)
        trial.set_constraint("worst_clip", 0.0)
        return INFEASIBLE_VALUE if frontier is None else float(frontier.value)
    trial.set_constraint("failure", 0.0)
    trial.set_constraint("compile", 0.0)
    if frontier is not None:
        trial.set_constraint("worst_clip", 0.0)
        return float(frontier.value)
    floor = space.worst_clip_floor_db
    worst = result.metrics["si_snr_worst_db"]
    if floor is None:
        gap = 0.0
    elif math.isfinite(worst):
        gap = max(floor - worst, 0.0)
    else:
        gap = 100.0  # a NaN worst clip is far from any floor; Optuna refuses a NaN constraint
    trial.set_constraint("worst_clip", gap)
    return float(result.metrics["si_snr_db"])


def _frontier_point(pipeline: Pipeline, space: SearchSpace, cfg: TrialConfig) -> Any:
    """The trial's capacity (:func:`harness.feasibility.frontier_point`) in ``mode: frontier`` (the objective), or in
    ``mode: search`` when a capacity value is set (recorded, not the objective); None otherwise."""
    from harness.model import CAPACITY_DIMS

    if space.mode != "frontier" and all(getattr(cfg, k) is None for k in CAPACITY_DIMS):
        return None
    from harness.feasibility import frontier_point

    return frontier_point(pipeline.model.config, cfg.to_dict())


def _record_frontier(tracker: Tracker, trial: Any, run_id: str, point: Any, mode: str = "frontier") -> None:
    """A trial's capacity metrics and ``needs_retraining``, on its run and its Optuna trial, before any stage runs
    (so a trial that fails, or stops the sweep, has them too)."""
    flag = str(point.needs_retraining).lower()
    tracker.log_metrics(run_id, point.metrics)
    tracker.set_tags(run_id, {"hefsweep.needs_retraining": flag, "hefsweep.mode": mode})
    trial.set_user_attr("needs_retraining", point.needs_retraining)
    trial.set_user_attr("capacity_arch", point.arch)  # the effective architecture: the report's frontier axes
    for k, v in point.metrics.items():
        trial.set_user_attr(k, v)


def _check_frontier(space: SearchSpace) -> None:
    """Settings that rank trials by SI-SNR have no meaning when the objective is capacity: one line, before any trial.

    Raises:
        ConfigError: ``mode: frontier`` with ``goal_db``, ``pruner``, ``screen`` or ``compile_top_k``.
    """
    if space.mode != "frontier":
        return
    bad = [k for k in ("goal_db", "pruner", "screen", "compile_top_k") if getattr(space, k) is not None]
    if bad:
        raise ConfigError(
            f"{space.source or 'search space'}: {bad[0]}",
            "set with mode: frontier",
            "no goal_db, pruner, screen or compile_top_k in a frontier space (they rank trials by SI-SNR; the "
            "frontier's objective is capacity and every trial compiles)",
        )
