"""The run loop, :func:`run_sweep`: the stores, the study and its parent run, the objective (one trial: its run,
the ONNX Runtime screen, the pipeline, the result logged and graded), Optuna's optimize loop and the summary."""

from __future__ import annotations

import contextlib
import logging
import sys
import time
from pathlib import Path
from typing import Any, TextIO

from harness.cache import StageCache, default_cache_root
from harness.errors import HarnessError
from harness.pipeline import Pipeline, TrialResult
from harness.space import SearchSpace
from harness.sweep._display import _best, _Display
from harness.sweep._grade import _check_frontier, _frontier_point, _in_top_k, _record_frontier, _screened_out, decide
from harness.sweep._runs import _artifact_error, _end_quietly, _log_result, _record_error, _settle
from harness.sweep._storage import _retry_of, _storage, _sweep_error, default_storage
from harness.sweep._study import _done, _open_study
from harness.sweep._suggest import _enqueue, suggest
from harness.sweep._summary import SweepSummary, _log_summary
from harness.tracking import Tracker, default_tracking_uri, quiet_mlflow

log = logging.getLogger("harness.sweep")


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
