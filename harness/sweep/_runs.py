"""What a trial's MLflow run gets: ``_log_result`` (tags, metrics, ``trial.json`` and the failure files in one
batch), ``_record_error`` (the error that stopped the trial), ``_settle`` (its background writes awaited), and
the one-line error of an artifact store that is full or read-only (``_artifact_error``)."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Any

from harness.errors import HarnessError, describe
from harness.pipeline import TrialResult
from harness.tracking import Tracker, quiet_mlflow


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
