"""How a stage runs: through the stage cache (:meth:`_StageRunner._stage`: a failure classified, with the stage's
and its tools' log tails for a bare message), and in the stage worker process (:meth:`_StageRunner._isolated`).
Mixed into :class:`~harness.pipeline.Pipeline`."""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from harness.cache import CachedBuildError, StageCache, StageEntry
from harness.failures import classify, classify_with_log
from harness.isolation import IsolatedFailure, Worker
from harness.pipeline._trial import StagePruned, _NoiseUnavailable, _StageFailed

if TYPE_CHECKING:
    from harness.space import SearchSpace

log = logging.getLogger("harness.pipeline")

#: Logs a stage's tools write into its workdir (the DFC's, [T] real_dfc/README.md), read for bare failure messages.
_TOOL_LOGS = ("allocator.log", "hailo_sdk.client.log", "acceleras.log")
_LOG_TAIL = 256 * 1024


def _stage_logs(folder: Path | None, stage: str) -> str:
    """The tail of the stage's log and of the tool logs in its failed build's folder (empty when there are none)."""
    if folder is None:
        return ""
    parts = []
    for name in (f"{stage}.log", *_TOOL_LOGS):
        path = folder / name
        if path.is_file():
            with path.open("rb") as f:
                f.seek(max(0, path.stat().st_size - _LOG_TAIL))
                parts.append(f.read().decode("utf-8", "replace"))
    return "\n".join(parts)


class _StageRunner:
    """Runs one stage: cache lookup or build, failure classification, the isolated worker call."""

    space: SearchSpace
    cache: StageCache
    progress: Callable[[str], None]
    _workers: dict[str, Worker]

    if TYPE_CHECKING:  # provided by _Inputs

        def stage_python(self) -> str: ...

    def _stage(self, name: str, key: str, fn: Callable[[Path], dict[str, Any]], stages: dict[str, Any]) -> StageEntry:
        self.progress(name)
        start = time.monotonic()
        try:
            entry = self.cache.build(name, key, fn)
        except CachedBuildError as err:
            cause = err.cause
            if isinstance(cause, (StagePruned, _NoiseUnavailable)):  # not the stage's outcome: nothing published
                stages[name] = {"key": key, "cached": False, "seconds": time.monotonic() - start}
                raise cause from None
            if isinstance(cause, IsolatedFailure):
                # a bare message (the DFC's "Compilation failed") is classified from the stage's own log lines
                failure = classify_with_log(name, cause.exc_class, cause.message, _stage_logs(err.failed_dir, name))
                tb = cause.traceback
            else:
                import traceback

                failure = classify(name, type(cause).__name__, str(cause))
                tb = "".join(traceback.format_exception(cause))
            stages[name] = {"key": key, "cached": err.replayed, "seconds": time.monotonic() - start}
            raise _StageFailed(failure, err.failed_dir, tb) from None
        seconds = time.monotonic() - start if entry.hit else entry.meta.get("seconds", 0.0)
        stages[name] = {"key": key, "cached": entry.hit, "seconds": seconds}
        resources = entry.path / "resources.json"
        if not entry.hit and resources.is_file():
            stages[name]["peak_rss_mb"] = json.loads(resources.read_text())["peak_rss_mb"]
        return entry

    def _stage_loaded(
        self, name: str, key: str, fn: Callable[[Path], dict[str, Any]], stages: dict[str, Any], file: str
    ) -> tuple[StageEntry, np.ndarray]:
        """:meth:`_stage`, then its ``file`` loaded at once; an entry pruned between the lookup and the load (a
        concurrent ``hefsweep cache prune``) is built again."""
        for attempt in (1, 2):
            entry = self._stage(name, key, fn, stages)
            try:
                return entry, np.load(entry.path / file)
            except FileNotFoundError:
                if attempt == 2:
                    raise
                log.info("%s %s: pruned after its lookup; building it again", name, key[:12])
        raise AssertionError("unreachable")

    def _isolated(self, stage: str, target: str, workdir: Path, *args: Any) -> Any:
        """``harness._stage_calls:<target>`` in the stage worker; the noise stage (it only reads files and runs
        ONNX Runtime) always runs under the harness's own interpreter, backend stages under the backend's."""
        python = sys.executable if stage == "noise" else self.stage_python()
        worker = self._workers.get(python)
        if worker is None:
            worker = self._workers[python] = Worker(python=python)
        spec = self.space.backend_spec()
        run = worker.call(
            f"harness._stage_calls:{target}",
            spec,
            *args,
            timeout=spec.timeout(stage, self.space.stage_timeout),
            log_path=workdir / f"{stage}.log",
        )
        (workdir / "resources.json").write_text(
            json.dumps({"child_seconds": run.seconds, "peak_rss_mb": run.peak_rss_mb})
        )
        return run.value
