"""The store: :class:`StageCache` -- lookup, :meth:`~StageCache.build` (an in-flight marker, the build in a temp
folder, publication by one ``rename``), a failure recorded or kept under ``failed/``, a recorded failure replayed
-- and :class:`StageEntry`, a published result."""

from __future__ import annotations

import json
import logging
import os
import shutil
import socket
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.cache._failures import (
    _RECORD,
    _RECORD_FORMAT,
    CachedBuildError,
    FailureRecord,
    _cause_parts,
    _logs,
    unrecorded_reason,
)
from harness.cache._inflight import DEFAULT_STALE_AFTER, InFlight, holding
from harness.cache._prune import CacheItem, _Pruning

log = logging.getLogger("harness.cache")


@dataclass(frozen=True)
class StageEntry:
    """A published stage result.

    Attributes:
        hit: True when the entry was found in the cache, False when this call built it.
        seconds: How long the build took (0 for a hit).
    """

    stage: str
    key: str
    path: Path
    meta: dict[str, Any]
    hit: bool
    seconds: float


def _write_durable(path: Path, text: str) -> None:
    """Write and fsync (the folder is renamed into place right after, so its content must be on disk)."""
    with path.open("w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())


class StageCache(_Pruning):
    """Directory-per-key store of stage results and recorded failures.

    Safe for concurrent processes on one file system: publication is a single ``rename`` of a complete folder,
    nothing published is ever modified or overwritten, and :meth:`prune` renames an entry away before deleting
    it, so a reader sees a whole entry or none.

    Two workers that need one key at once do not both build it: the first leaves an in-flight marker
    (:mod:`harness.cache._inflight`) and the others wait for its entry or failure record; a marker whose owner died is
    broken at once on its machine, or after ``stale_after`` seconds without a refresh from another machine.

    Args:
        root: The cache folder (see :func:`default_cache_root`).
        record_failures: Record deterministic build failures and replay them (default True).
        dedupe: Wait for another worker's build of the same key instead of building it too (default True).
        stale_after: Seconds without a refresh after which another worker's in-flight marker is broken.
    """

    def __init__(
        self,
        root: Path,
        record_failures: bool = True,
        dedupe: bool = True,
        stale_after: float = DEFAULT_STALE_AFTER,
    ) -> None:
        # absolute: entry paths cross into the stage worker, which runs each call in the stage's own folder
        self.root = Path(root).absolute()
        self.record_failures = record_failures
        self.inflight = InFlight(self.root, stale_after) if dedupe else None

    def path(self, stage: str, key: str) -> Path:
        """Where the entry for ``key`` lives (whether or not it exists)."""
        return self.root / stage / key

    def failure_path(self, stage: str, key: str) -> Path:
        """Where the failure record for ``key`` lives (whether or not it exists)."""
        return self.root / "failures" / stage / key

    def lookup(self, stage: str, key: str) -> StageEntry | None:
        """The published entry, or None."""
        final = self.path(stage, key)
        meta_file = final / "stage.json"
        try:
            meta = json.loads(meta_file.read_text())
        except (FileNotFoundError, NotADirectoryError):
            return None
        _touch(final)
        return StageEntry(stage, key, final, meta, True, 0.0)

    def lookup_failure(self, stage: str, key: str) -> FailureRecord | None:
        """The recorded failure of ``key``, or None (also when the record is unreadable or being pruned)."""
        folder = self.failure_path(stage, key)
        try:
            raw = json.loads((folder / _RECORD).read_text())
            record = FailureRecord(
                stage, key, raw["exc_class"], raw["message"], raw["traceback"], raw["when"], raw["seconds"], folder
            )
        except (OSError, ValueError, KeyError, TypeError):
            return None
        _touch(folder)
        return record

    def build(
        self,
        stage: str,
        key: str,
        fn: Callable[[Path], dict[str, Any]],
        clock: Callable[[], float] | None = None,
    ) -> StageEntry:
        """Return the entry for ``key``, building it with ``fn(tmpdir) -> meta`` if it is not published yet.

        While another worker builds ``key`` (its in-flight marker is live), wait for its entry or failure record
        instead of building it too.

        Raises:
            CachedBuildError: ``fn`` raised (``cause`` is what it raised; its partial output is kept in
                ``failed_dir``), or an earlier build of ``key`` failed for a recorded reason (``replayed``;
                ``fn`` is not called). ``KeyboardInterrupt`` and ``SystemExit`` propagate unwrapped.
        """
        found = self._ready(stage, key)
        if found is not None:
            return found
        marker = None
        if self.inflight is not None and not holding():
            while marker is None:
                try:
                    marker = self.inflight.try_acquire(stage, key)
                except OSError as exc:  # the markers are best effort: the build below still publishes atomically
                    log.debug("%s %s: no in-flight marker (%s)", stage, key[:12], exc)
                    break
                if marker is None:  # another worker builds it: its entry or failure record is ours too
                    found = self.inflight.wait(stage, key, lambda: self._ready(stage, key))
                    if found is not None:
                        return found  # type: ignore[no-any-return]
        if marker is not None:
            try:
                found = self._ready(stage, key)  # published between our miss and our marker
            except BaseException:
                marker.release()
                raise
            if found is not None:
                marker.release()
                return found
        try:
            return self._build(stage, key, fn, clock)
        finally:
            if marker is not None:
                marker.release()

    def _ready(self, stage: str, key: str) -> StageEntry | None:
        """The published entry, or None if there is none yet.

        Raises:
            CachedBuildError: a replayable failure of ``key`` is recorded.
        """
        found = self.lookup(stage, key)
        if found is not None:
            return found
        if self.record_failures:
            record = self.lookup_failure(stage, key)
            if record is not None:
                stale = self._unreplayable(record)
                if stale is None:
                    raise record.to_error()
                # e.g. a harness bug recorded by an older version: retry the build instead of replaying it
                log.info("%s %s: recorded failure dropped: %s", stage, key[:12], stale)
                self.remove(CacheItem("failure", stage, key, record.path, 0, 0.0))
        return None

    def _build(
        self, stage: str, key: str, fn: Callable[[Path], dict[str, Any]], clock: Callable[[], float] | None
    ) -> StageEntry:
        now = clock or time.monotonic
        tmp = self.root / "tmp" / f"{stage}-{key[:12]}-{uuid.uuid4().hex[:8]}"
        tmp.mkdir(parents=True)
        start = now()
        try:
            meta = fn(tmp)
        except BaseException as exc:
            seconds = now() - start
            err = self._failed(stage, key, tmp, exc, seconds)
            if not isinstance(exc, Exception):
                raise  # an interrupt is not a stage outcome
            raise err from exc
        seconds = now() - start
        meta = {**meta, "seconds": seconds}
        _write_durable(tmp / "stage.json", json.dumps(meta, indent=2, default=str))
        final = self.path(stage, key)
        final.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.rename(tmp, final)
        except OSError:
            # Another worker published the same key first: keep theirs, drop ours.
            shutil.rmtree(tmp, ignore_errors=True)
            existing = self.lookup(stage, key)
            if existing is None:
                raise
            return existing
        return StageEntry(stage, key, final, meta, False, seconds)

    def _failed(self, stage: str, key: str, tmp: Path, exc: BaseException, seconds: float) -> CachedBuildError:
        """Record the failure (or keep the output under ``failed/``) and return the error to raise."""
        if self.record_failures:
            reason = unrecorded_reason(exc, self.root, stage, _logs(tmp, stage, exc))
        else:
            reason = "failure recording is off"
        if reason is None:
            try:
                record = self._record(stage, key, tmp, exc, seconds)
            except OSError as rec_exc:  # e.g. ENOSPC while writing the record: retried next time
                reason = f"could not write the record ({rec_exc})"
                log.warning("%s %s: %s", stage, key[:12], reason)
            else:
                if record is not None:
                    return CachedBuildError(stage, exc, record.path, replayed=False, record=record)
                reason = "another worker recorded this key's failure first"
        log.debug("%s %s: failure not recorded: %s", stage, key[:12], reason)
        failed = self.root / "failed" / tmp.name
        try:
            failed.parent.mkdir(parents=True, exist_ok=True)
            os.replace(tmp, failed)
        except OSError:
            failed = tmp
        return CachedBuildError(stage, exc, failed)

    def _unreplayable(self, record: FailureRecord) -> str | None:
        """Why a recorded failure would not be recorded today (so it must not be replayed), or None."""
        cause = record.to_error().cause  # replayed as an IsolatedFailure: classified with the record's logs
        return unrecorded_reason(cause, self.root, record.stage, _logs(record.path, record.stage, cause))

    def _record(self, stage: str, key: str, tmp: Path, exc: BaseException, seconds: float) -> FailureRecord | None:
        """Publish ``tmp`` (the failed output plus the record) as the key's failure; None if one exists."""
        exc_class, message, tb = _cause_parts(exc)
        when = time.time()
        record = {
            "format": _RECORD_FORMAT,
            "stage": stage,
            "key": key,
            "exc_class": exc_class,
            "message": message,
            "traceback": tb,
            "when": when,
            "when_iso": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(when)),
            "seconds": seconds,
            "host": socket.gethostname(),
            "pid": os.getpid(),
        }
        _write_durable(tmp / _RECORD, json.dumps(record, indent=2))
        final = self.failure_path(stage, key)
        final.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.rename(tmp, final)  # fails on an existing (never empty) record: never overwritten
        except OSError:
            if final.is_dir():
                (tmp / _RECORD).unlink(missing_ok=True)
                return None
            raise
        return FailureRecord(stage, key, exc_class, message, tb, when, seconds, final)


def _touch(p: Path) -> None:
    """Mark a folder as used now (best effort: a read-only cache still works)."""
    try:
        os.utime(p)
    except OSError:
        pass
