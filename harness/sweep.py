"""The sweep: an Optuna study whose trials run the pipeline and log to MLflow.

One place decides a trial's fate (:func:`_grade`): a trial whose every stage passed returns its mean SI-SNR (the
objective, maximised); a trial whose stage failed is recorded as a COMPLETE trial with a graded constraint
violation (:mod:`harness.feasibility`) so that the sampler learns where the feasible region ends, with its
failure signature in the trial's user attributes and in its MLflow run (``hefsweep.status=failed``,
``hefsweep.signature``), and follow-up trials are enqueued from :mod:`harness.followups`. Neither ends the sweep.

Crash safety: the Optuna storage is an RDB storage with heartbeats. A trial whose worker dies (SIGKILL, a lost
machine) stops heartbeating; the next worker to start a trial fails it, ends its MLflow run as KILLED and
enqueues a retry (``RetryHeartbeatStaleTrialCallback``); a trial that never heartbeated is stale too, and so at
once is a trial whose recorded owner process on this machine is gone (:mod:`harness._heartbeat`): a sweep resumed
right after a SIGKILL retries the killed trial first. An interrupted trial's MLflow run is ended as KILLED too.
Any number of workers (``hefsweep worker``) on any number of machines can share one study through a PostgreSQL
storage and an MLflow tracking server.
"""

from __future__ import annotations

import contextlib
import copy
import errno
import json
import logging
import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from harness.cache import StageCache, default_cache_root
from harness.errors import ConfigError, HarnessError, causes, describe, root_cause
from harness.pipeline import Pipeline, TrialConfig, TrialResult
from harness.space import IntRange, SearchSpace
from harness.tracking import Tracker, default_tracking_uri, quiet_mlflow

__all__ = [
    "SweepSummary", "decide", "default_storage", "is_storage_error", "run_sweep", "study_space_file", "study_summary",
    "suggest",
]  # fmt: skip

log = logging.getLogger("harness.sweep")


def default_storage(root: Path) -> str:
    """``sqlite:///<abs root>/optuna.db``: the default Optuna storage, a local file under ``mlruns/``."""
    return f"sqlite:///{Path(root).resolve() / 'optuna.db'}"


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


class _Display:
    """Live progress: trial n/N, current stage, best so far."""

    def __init__(self, total: int, stream: TextIO) -> None:
        self.total = total
        self.stream = stream
        self.tty = stream.isatty()
        self.label = ""
        self.count = 0
        self.capacity: float | None = None  # mode: frontier: the current trial's capacity_macs (the objective)

    def trial(self, number: int, cfg: TrialConfig) -> None:
        from harness.space import ARCH_DIMS, DEPLOY_DEFAULTS

        # the deployment-shape and capacity dimensions only when a trial sets them (monolithic, untiled, the
        # checkpoint's size otherwise): the line stays readable
        quiet = {**DEPLOY_DEFAULTS, **dict.fromkeys(ARCH_DIMS)}
        p = {k: v for k, v in cfg.to_dict().items() if k not in quiet or v != quiet[k]}
        desc = " ".join(f"{k}={v}" for k, v in p.items())
        self.count += 1
        self.label = f"[{self.count}/{self.total} trial #{number}]"
        self.stream.write(f"{self.label} {desc}\n")
        self.stream.flush()

    def note(self, text: str) -> None:
        """A line about the current trial (e.g. why its ONNX Runtime screen was skipped)."""
        if self.tty:
            self.stream.write("\r" + " " * 60 + "\r")
        self.stream.write(f"{self.label}   {text}\n")
        self.stream.flush()

    def stage(self, name: str) -> None:
        if self.tty:
            self.stream.write(f"\r{self.label}   stage: {name:<10}")
            self.stream.flush()

    def done(self, result: TrialResult, best: tuple[float, int] | None) -> None:
        if self.tty:
            self.stream.write("\r" + " " * 60 + "\r")
        if result.ok:
            m = result.metrics
            what = f"ok      si_snr {m['si_snr_db']:6.2f} dB  worst {m['si_snr_worst_db']:6.2f} dB"
        elif result.info.get("screened_out"):
            what = f"PRUNED  screened out on onnxruntime (si_snr {result.metrics['screen_si_snr_db']:.2f} dB)"
        elif result.status == "pruned":
            what = f"PRUNED  after {result.info.get('pruned_after_clips')} clips (worse than the best trial)"
        else:
            assert result.failure is not None
            what = f"FAILED  {result.failure.signature}"
        secs = sum(v for k, v in result.metrics.items() if k.startswith("time_"))
        best_txt = f"best {best[0]:.2f} dB (trial #{best[1]})" if best else "best -"
        if self.capacity is not None:  # mode: frontier: the objective is capacity (MACs per input)
            what += f"  capacity {self.capacity / 1e6:.1f} MMAC"
            best_txt = f"best {best[0] / 1e6:.1f} MMAC (trial #{best[1]})" if best else "best -"
        self.stream.write(f"{self.label}   {what}  [{secs:.1f} s]  {best_txt}\n")
        self.stream.flush()


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


def _open_study(space: SearchSpace, name: str, storage: Any, url: str) -> Any:
    import optuna

    # the study fingerprint: the search space, and the content of the checkpoint and the data it is computed from
    space_part, content = space.fingerprint(), space.content_fingerprint()
    fingerprint = json.dumps({**space_part, "content": content}, sort_keys=True)
    try:
        study = optuna.create_study(
            study_name=name,
            storage=storage,
            load_if_exists=True,
            direction="maximize",
            sampler=optuna.samplers.TPESampler(seed=space.seed, n_startup_trials=4),
            pruner=_pruner(space),
        )
        stored = study.user_attrs.get("hefsweep.space")
        if stored is None:
            study.set_user_attr("hefsweep.space", fingerprint)
            if space.source is not None:
                study.set_user_attr("hefsweep.space_file", str(space.source))
        else:
            if stored != fingerprint and json.loads(stored) == space_part:
                # a study created before the fingerprint covered the inputs, over the same space: from now on it does
                study.set_user_attr("hefsweep.space", fingerprint)
                stored = fingerprint
            if stored == fingerprint:
                # a trial whose owner process on this machine is gone (a sweep SIGKILLed and resumed right away) is
                # failed and retried now, even when this sweep runs no trial of its own
                optuna.storages.fail_stale_trials(study)
    except Exception as exc:
        if not is_storage_error(exc):
            raise  # a bug: its traceback, exit 2
        raise _storage_error(url, exc) from None
    if stored is not None and stored != fingerprint:
        where = f"study {name!r} in {url.split('@')[-1]}"
        old = json.loads(stored)
        if {k: v for k, v in old.items() if k != "content"} != space_part:
            raise ConfigError(where, "exists with a different search space",
                              "the space it was created with (use another --study name)")  # fmt: skip
        raise ConfigError(
            where,
            _inputs_changed(old.get("content") or {}, content, space),
            "the checkpoint and data it was created with (use --study NAME for a new study)",
        )
    return study


def _inputs_changed(old: dict[str, str], new: dict[str, str], space: SearchSpace) -> str:
    """What changed since a study was created, on one line: each changed input, its new and its recorded hash."""
    labels = {
        "checkpoint": f"checkpoint {space.checkpoint}",
        "calibration": f"calibration data {space.data.calibration}",
        "evaluation": f"evaluation data {space.data.evaluation}",
    }
    changed = [
        f"{label} (sha256 {new[k][:12]}, was {str(old.get(k))[:12]})" for k, label in labels.items() if old.get(k) != new[k]
    ]
    return "changed since the study was created: " + ", ".join(changed)


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


def _pruner(space: SearchSpace) -> Any:
    import optuna

    if space.pruner is None:
        return optuna.pruners.NopPruner()
    return optuna.pruners.WilcoxonPruner(
        p_threshold=space.pruner.p_threshold, n_startup_steps=space.pruner.n_startup_steps
    )


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


def _searched(params: dict[str, Any], space: SearchSpace) -> dict[str, Any]:
    """Only the searched dimensions (fixed ones are not Optuna params)."""
    dims = dict(space.dimension_items())
    return {
        k: v for k, v in params.items() if isinstance(dims.get(k), IntRange) or (isinstance(dims.get(k), list) and len(dims[k]) > 1)
    }


def _retry_of(study: Any, trial: Any) -> int | None:
    """The number of the stale trial this one retries (``RetryHeartbeatStaleTrialCallback`` records it)."""
    from optuna.storages import RetryHeartbeatStaleTrialCallback

    frozen = study._storage.get_trial(trial._trial_id)  # the live Trial does not expose system attrs
    return RetryHeartbeatStaleTrialCallback.retried_trial_number(frozen)


def study_summary(study: str, storage: str) -> Any:
    """The Optuna ``StudySummary`` of an existing study.

    Raises:
        HarnessError: no such sqlite file (Optuna would create one), an unusable storage, or no such study.
    """
    import optuna

    if storage.startswith("sqlite:///") and not Path(storage.removeprefix("sqlite:///")).is_file():
        raise HarnessError(
            f"Optuna storage {storage}", "no such database file", "the store of a sweep (`--root` or `--storage`)"
        )
    try:
        summaries = {s.study_name: s for s in optuna.get_all_study_summaries(storage, include_best_trial=False)}
    except Exception as exc:
        if not is_storage_error(exc):
            raise  # a bug: its traceback, exit 2
        raise _storage_error(storage, exc) from None
    if study not in summaries:
        names = sorted(summaries)
        shown = ", ".join(names[:10]) + (" ..." if len(names) > 10 else "")
        raise HarnessError(f"study {study!r}", f"not found in {storage.split('@')[-1]}",
                           f"one of: {shown or 'none (run `hefsweep sweep` first)'}")  # fmt: skip
    return summaries[study]


def study_space_file(study: str, storage: str) -> Path:
    """The search-space file a study was created from (recorded in the study's user attributes).

    Raises:
        HarnessError: the study does not exist or has no recorded space file.
    """
    summary = study_summary(study, storage)
    path = summary.user_attrs.get("hefsweep.space_file")
    if not path:
        raise HarnessError(f"study {study!r}", "no recorded space file", "--space SPACE.yaml")
    return Path(path)


def _done(study: Any) -> int:
    from optuna.trial import TrialState

    return len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED)))


def run_sweep(
    space: SearchSpace,
    *,
    trials: int | None = None,
    timeout: float | None = None,
    study_name: str | None = None,
    storage: str | None = None,
    tracking_uri: str | None = None,
    root: Path = Path("mlruns"),
    stream: TextIO | None = None,
    enqueue: list[dict[str, Any]] | None = None,
    total: int | None = None,
) -> SweepSummary:
    """Run (or resume, or join) a sweep.

    Args:
        space: The validated search space.
        trials: Trials to run now (default: the space's ``trials``; 0 creates/opens the study and runs none).
        timeout: Time budget in seconds (default: the space's ``timeout``).
        study_name: Study (and MLflow experiment) name (default: the space's ``study``).
        storage: Optuna storage URL (default: ``sqlite:///<root>/optuna.db``).
        tracking_uri: MLflow tracking URI (default: ``sqlite:///<root>/mlflow.db``).
        root: Folder of the default local stores, artifacts and the stage cache.
        stream: Where live progress goes (default stdout).
        enqueue: Configurations (dimension name -> value) to try first, before the sampler's own.
        total: Worker mode: run until the study holds this many finished trials (shared by all workers).

    Returns:
        The :class:`SweepSummary`.

    Raises:
        HarnessError: bad input (checkpoint, audio), unusable stores, a study with another space.
    """
    import optuna

    import warnings

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)  # heartbeats, retries
    start = time.monotonic()
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    name = study_name or space.study
    n_trials = space.trials if trials is None else trials
    stream = stream or sys.stdout

    _check_frontier(space)
    cache = StageCache(default_cache_root(root))
    pipeline = Pipeline(space, cache)
    pipeline.validate_inputs()
    screen = None
    if space.screen is not None and space.backend != "ort":
        screen = Pipeline(space.model_copy(update={"backend": "ort", "backend_options": {}, "max_repairs": 0}), cache)
    url = storage or default_storage(root)
    uri = tracking_uri or default_tracking_uri(root)

    def tracker_factory(study_name: str) -> Tracker:
        return Tracker(uri, study_name, root / "artifacts")

    versions = {f"hefsweep.version.{k}": v for k, v in pipeline.backend_versions().items()}  # SDK missing: stop here
    tracker = Tracker(uri, name, root / "artifacts", background=True)  # each trial's writes flushed by _settle
    tracker.check()
    study = _open_study(space, name, _storage(url, space, tracker_factory), url)
    parent = tracker.parent_run(
        name,
        params={"space": str(space.source), "backend": space.backend, "checkpoint": str(space.checkpoint)},
        tags={"hefsweep.backend": space.backend, "optuna.storage": url.split("@")[-1]},
    )
    if space.source is not None:
        try:
            tracker.log_artifact(parent, space.source, "space")
        except OSError as exc:  # a full or read-only artifact store: one line, the parent run not left RUNNING
            _end_quietly(tracker, parent, "FINISHED")  # the study's run, as every sweep leaves it (no trial ran)
            raise _artifact_error(f"artifact store of the parent run {parent}", exc) from None
    summary = SweepSummary(study=name, experiment_id=tracker.experiment_id, parent_run_id=parent)
    if space.mode == "frontier":
        from harness.feasibility import FRONTIER_OBJECTIVE

        summary.objective = FRONTIER_OBJECTIVE
    callbacks: list[Any] = []
    if total is not None:
        from optuna.study import MaxTrialsCallback
        from optuna.trial import TrialState

        callbacks.append(MaxTrialsCallback(total, states=(TrialState.COMPLETE, TrialState.PRUNED)))
        n_trials = max(total - _done(study), 0)
    display = _Display(n_trials, stream)
    pipeline.progress = display.stage
    stream.write(
        f"hefsweep: study '{name}' ({len(study.trials)} earlier trials), backend {space.backend}, "
        f"{n_trials} trials, MLflow experiment {tracker.experiment_id}\n"
    )

    def trial_run(trial: optuna.Trial) -> float:
        cfg = suggest(trial, space)
        display.trial(trial.number, cfg)
        extra = {k: str(v) for k, v in trial.user_attrs.items() if k.startswith("hefsweep.repair")}
        retried = _retry_of(study, trial)
        if retried is not None:
            extra["hefsweep.retry_of"] = str(retried)
        run_id = tracker.child_run(
            parent,
            f"trial-{trial.number:04d}",
            params={**cfg.to_dict(), "backend": space.backend},
            tags={"hefsweep.study": name, "hefsweep.trial": str(trial.number), **versions, **extra},
        )
        trial.set_user_attr("mlflow_run_id", run_id)
        point = _frontier_point(pipeline, space, cfg)
        if point is not None:
            _record_frontier(tracker, trial, run_id, point, space.mode)
        frontier = point if space.mode == "frontier" else None  # the objective only in mode: frontier
        if frontier is not None:
            display.capacity = frontier.value
        on_clip = None
        if space.pruner is not None:

            def on_clip(step: int, value: float) -> bool:
                trial.report(value, step)
                return bool(trial.should_prune())

        gate = None
        if space.compile_top_k is not None:
            k = space.compile_top_k

            def gate(value: float) -> bool:
                return _in_top_k(study, value, k)

        try:
            result = None
            if screen is not None:
                screened = screen.run(cfg)
                if screened.failure is not None and screened.failure.stage in ("export", "calibrate"):
                    result = screened  # backend-independent: the Hailo run would fail the same way
                elif screened.ok:
                    v = screened.metrics["si_snr_db"]
                    trial.set_user_attr("screen_si_snr_db", v)
                    tracker.log_metrics(run_id, {"screen_si_snr_db": v})
                    if _screened_out(study, v, space):
                        info = {"pruned_after_clips": 0, "screened_out": True}
                        result = TrialResult("pruned", {"screen_si_snr_db": v}, None, (), screened.stages, info)
                else:
                    # e.g. an override set that names HN layers or roles, which the ONNX model has not: the trial
                    # runs on the backend unscreened, and says so
                    assert screened.failure is not None
                    why = screened.failure.signature
                    trial.set_user_attr("screen", f"skipped: {why}")
                    tracker.set_tags(run_id, {"hefsweep.screen": "skipped", "hefsweep.screen_skipped": why})
                    display.note(f"screen on onnxruntime skipped ({why}); running on {space.backend} unscreened")
            if result is None:
                result = pipeline.run(cfg, on_clip=on_clip, compile_gate=gate)
        except (KeyboardInterrupt, SystemExit):  # an interrupt, not a failure of this configuration
            tracker.set_tags(run_id, {"hefsweep.status": "failed", "hefsweep.signature": "harness:Interrupted:-"})
            tracker.end(run_id, "KILLED")
            raise
        except Exception as exc:
            # a user error found mid-trial (the sweep stops with its one line) or a bug (its traceback, exit 2):
            # either way a failure of its own, not an interrupt
            kind = f"{type(exc).__name__}:-" if isinstance(exc, HarnessError) else f"Bug:{type(exc).__name__}"
            _record_error(tracker, trial, run_id, f"harness:{kind}", exc)
            raise
        try:
            _log_result(tracker, run_id, result)
            tracker.end(run_id, "FAILED" if result.status == "failed" else "FINISHED")
            tracker.flush()  # the run's records are in before the trial's fate is decided (background writes)
        except OSError as exc:  # a full or read-only artifact store: stop with one line, keep what is finished
            try:
                with quiet_mlflow():
                    tracker.set_tags(run_id, {"hefsweep.status": "failed", "hefsweep.signature": "harness:ArtifactWrite:-"})
            except Exception:  # noqa: BLE001 - the store may refuse this too
                pass
            _end_quietly(tracker, run_id, "FAILED")
            with contextlib.suppress(Exception), quiet_mlflow():
                tracker.flush()
            raise _artifact_error(f"artifact store of run {run_id}", exc) from None
        if result.status == "pruned":
            trial.set_user_attr("status", "pruned")
            summary.n_trials += 1
            summary.n_pruned += 1
            display.done(result, _best(study, None, trial.number))
            raise optuna.TrialPruned(f"emulation stopped after {result.info.get('pruned_after_clips')} clips")
        if space.pruner is not None and result.ok and not study._storage.get_trial(trial._trial_id).intermediate_values:
            for step, v in enumerate(result.info.get("per_clip_si_snr_db", [])):  # emulation came from the cache
                trial.report(v, step)
        value = decide(study, trial, cfg, result, space, frontier)
        summary.n_trials += 1
        if result.ok:
            summary.n_ok += 1
            if summary.best_value is None or value > summary.best_value:
                summary.best_value, summary.best_trial, summary.best_run_id = value, trial.number, run_id
            display.done(result, _best(study, value, trial.number))
            floor_ok = space.worst_clip_floor_db is None or result.metrics["si_snr_worst_db"] >= space.worst_clip_floor_db
            if space.goal_db is not None and value >= space.goal_db and floor_ok:
                stream.write(f"goal reached: si_snr_db {value:.2f} >= {space.goal_db:g}; stopping\n")
                study.stop()
            return value
        assert result.failure is not None
        sig = result.failure.signature
        summary.n_failed += 1
        summary.signatures[sig] = summary.signatures.get(sig, 0) + 1
        display.done(result, _best(study, None, trial.number))
        return value

    stopped: list[HarnessError] = []

    def objective(trial: optuna.Trial) -> float:
        try:
            try:
                value = trial_run(trial)
            except optuna.TrialPruned:
                _settle(tracker, trial)
                raise
            except BaseException:
                with contextlib.suppress(Exception), quiet_mlflow():
                    tracker.flush()  # best effort: what the run says about the error that stops the trial
                raise
            _settle(tracker, trial)  # its MLflow writes are done before the trial counts as done
            return value
        except HarnessError as exc:  # shown even if Optuna then fails to record the trial (a full disk)
            stopped.append(exc)
            raise

    _enqueue(study, [*space.enqueue, *(enqueue or ())])
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    failure: HarnessError | None = None
    try:
        if n_trials > 0:
            study.optimize(objective, n_trials=n_trials, timeout=timeout or space.timeout, callbacks=callbacks)
    except Exception as exc:
        failure = stopped[-1] if stopped else _sweep_error(exc, url)
        if failure is None:
            raise
    finally:
        pipeline.close()
        if screen is not None:
            screen.close()
        summary.seconds = time.monotonic() - start
        with quiet_mlflow(failure is not None):
            _log_summary(tracker, parent, study, summary, quiet=failure is not None)
            try:
                tracker.close()  # the summary's writes (each trial's were checked when it finished)
            except Exception as exc:  # noqa: BLE001 - as in _log_summary: never hides the sweep's own outcome
                (log.debug if failure is not None else log.warning)("could not log the sweep summary: %s", exc)
    if failure is not None:
        raise failure from None
    return summary


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


def _record_error(tracker: Tracker, trial: Any, run_id: str, signature: str, exc: Exception) -> None:
    """Best effort: the trial and its run say which error stopped it (``failure.txt`` holds its traceback); the run
    ends FAILED. A store that refuses this too does not hide the error itself."""
    import traceback

    text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    try:
        trial.set_user_attr("status", "failed")
        trial.set_user_attr("signature", signature)
    except Exception:  # noqa: BLE001 - the error that stopped the trial is the one to show
        pass
    try:
        with quiet_mlflow():
            tags = {"hefsweep.status": "failed", "hefsweep.signature": signature, "hefsweep.error": describe(exc)}
            tracker.log_result(run_id, tags, {}, [(f"{signature}\n\n{text}", None, "failure.txt")])
    except Exception:  # noqa: BLE001 - as above
        pass
    _end_quietly(tracker, run_id, "FAILED")


def _settle(tracker: Tracker, trial: Any) -> None:
    """Wait for the trial's background MLflow writes. A full or read-only artifact store stops the sweep with one
    line; the run is tagged ``harness:ArtifactWrite:-`` and ends FAILED (the finished trials and runs are kept).

    Raises:
        HarnessError: an artifact upload failed with an ``OSError``.
    """
    try:
        tracker.flush()
    except OSError as exc:
        run_id = trial.user_attrs.get("mlflow_run_id", "?")
        with contextlib.suppress(Exception), quiet_mlflow():
            tracker.set_tags(run_id, {"hefsweep.status": "failed", "hefsweep.signature": "harness:ArtifactWrite:-"})
            tracker.end(run_id, "FAILED")
            tracker.flush()
        raise _artifact_error(f"artifact store of run {run_id}", exc) from None


def _artifact_error(obj: str, exc: OSError) -> HarnessError:
    return HarnessError(obj, f"write failed ({describe(exc)})",
                        "a writable artifact location with free space (finished trials and runs are kept)")  # fmt: skip


def _end_quietly(tracker: Tracker, run_id: str, status: str) -> None:
    try:
        with quiet_mlflow():
            tracker.end(run_id, status)
    except Exception:  # noqa: BLE001 - the store may refuse this too; the error that stopped us is shown
        pass


def _best(study: Any, value: float | None, number: int) -> tuple[float, int] | None:
    try:
        bt = study.best_trial
        best = (float(bt.value), bt.number)
    except ValueError:
        best = None
    if value is not None and (best is None or value > best[0]):
        best = (value, number)
    return best


def _log_result(tracker: Tracker, run_id: str, result: TrialResult) -> None:
    tags: dict[str, Any] = {"hefsweep.status": result.status}
    if result.failure is not None:
        tags["hefsweep.signature"] = result.failure.signature
        tags["hefsweep.failed_stage"] = result.failure.stage
    for k, v in (result.info.get("repair") or {}).items():
        if k != "final_override_set":
            tags[f"hefsweep.{k}"] = v
    if "compiled" in result.info:
        tags["hefsweep.compiled"] = str(result.info["compiled"]).lower()
    if result.info.get("screened_out"):
        tags["hefsweep.screen"] = "screened_out"
    if "compile" in result.info:
        tags["hefsweep.artifact_sha256"] = result.info["compile"]["sha256"]
        tags["hefsweep.artifact"] = f"compiled/{result.info['compile']['file']}"
    for path, folder in result.artifacts:
        if folder == "optimize" and Path(path).suffix == ".har" and Path(path).is_file():
            from harness.cache import file_sha256

            # what a Hailo promote re-emulates: recorded now, verified there like the HEF's hash
            tags["hefsweep.har_sha256"] = file_sha256(Path(path))
    if "eval_key" in result.info:
        tags["hefsweep.eval_set"] = result.info["eval_key"]
    if "calibration_key" in result.info:
        tags["hefsweep.calibration_set"] = result.info["calibration_key"]
    fired = result.info.get("fired")
    if fired is not None:
        tags["hefsweep.substitutions_fired"] = ",".join(fired) or "none"
    tags.update({f"hefsweep.cached.{k}": str(v["cached"]).lower() for k, v in result.stages.items()})
    metrics = dict(result.metrics)
    fid = result.info.get("fidelity") or {}
    metrics.update(fid)
    if "compile" in result.info:
        metrics["n_qlinear_ops"] = result.info["compile"].get("n_qlinear_ops", 0)
        metrics["model_size_bytes"] = result.info["compile"].get("size_bytes", 0)
    files: list[tuple[Path | str, str | None, str | None]] = [(p, f or None, None) for p, f in result.artifacts]
    info = {k: v for k, v in result.info.items() if k != "traceback"}
    files.append((json.dumps({"status": result.status, "stages": result.stages, **info}, indent=2, default=str), None, "trial.json"))
    if result.failure is not None:
        files.append((json.dumps(result.failure.to_dict(), indent=2), None, "failure.json"))
        text = f"{result.failure.signature}\n\n{result.failure.message}\n\n{result.info.get('traceback', '')}"
        files.append((text, None, "failure.txt"))
    # one batch for tags + metrics, one upload for all files (each tracking call costs a round trip)
    tracker.log_result(run_id, tags, metrics, files)


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
