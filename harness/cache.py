"""Content-hash stage cache, with failures cached too.

A stage's key is the sha256 of canonical JSON over (stage name, stage version, its parameters, the keys of
the stages it consumes). A result is a directory built in a private temp folder and published with one
``rename`` -- so a reader never sees a half-written entry, concurrent workers building the same key do not
corrupt each other (the loser's copy is discarded), and an entry is never overwritten.

A build that fails for a *known, deterministic* reason is published the same way, as a failure record: the
next ``build`` of that key raises the same :class:`CachedBuildError` in milliseconds without running the stage
(``replayed=True``). Only failures the classification table (:mod:`harness.failures`) knows are recorded -- an
unclassified failure may be a bug in the harness, whatever its class, and is retried next time -- and transient
causes never are (see :func:`unrecorded_reason`): a timeout or a crashed worker, an interrupt, running out of
memory or disk, file-system trouble on the cache itself, a missing module, a programming error in the harness,
or any exception marked ``transient = True``. A record that the current rules would not write (e.g. one left by
an older version) is dropped instead of replayed.

Layout under the root (``<root>/cache`` by default, or ``$HEFSWEEP_CACHE_DIR``, see :func:`default_cache_root`)::

    <stage>/<key>/                published results (``stage.json`` holds the stage's metadata)
    failures/<stage>/<key>/       recorded failures: ``cached_failure.json`` + what the build left (logs)
    failed/<stage>-<key12>-<id>/  output of failed builds that were not recorded (transient causes, or a
                                  failure another worker recorded first), kept for the trial's artifacts
    tmp/                          builds in progress
    locks/<stage>-<key>           in-flight markers of builds in progress (:mod:`harness._inflight`)
    trash/                        entries being deleted by :meth:`StageCache.prune`
    reuse/, repairs/              owned by the pipeline (shared calibration ranges, repair logs)

An entry's age is the time since it was last *used*: publication, or a cache hit (a hit touches the entry's
folder). :meth:`StageCache.scan` and :meth:`StageCache.prune` implement ``hefsweep cache {info,prune}``.
"""

from __future__ import annotations

import builtins
import errno
import hashlib
import json
import logging
import os
import re
import shutil
import socket
import threading
import time
import traceback
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from harness._inflight import DEFAULT_STALE_AFTER, InFlight, holding
from harness.failures import Failure, classify, classify_with_log
from harness.isolation import IsolatedFailure

__all__ = [
    "CACHE_DIR_ENV",
    "CacheItem",
    "CachedBuildError",
    "FailureRecord",
    "PruneReport",
    "StageCache",
    "StageEntry",
    "canonical_json",
    "default_cache_root",
    "file_sha256",
    "folder_bytes",
    "stage_key",
    "unrecorded_reason",
]

log = logging.getLogger("harness.cache")

#: Environment variable that moves the stage cache out of ``<root>/cache`` (e.g. onto a shared disk).
CACHE_DIR_ENV = "HEFSWEEP_CACHE_DIR"

#: Top-level folders of the cache root that are not stages.
RESERVED = frozenset({"tmp", "failed", "failures", "trash", "reuse", "repairs", "locks"})

#: ``tmp/`` and ``failed/`` folders untouched for this long are leftovers that ``prune`` removes.
LEFTOVER_AGE_S = 3600.0

_RECORD = "cached_failure.json"
_RECORD_FORMAT = 1


def default_cache_root(root: Path) -> Path:
    """Where the stage cache lives: ``$HEFSWEEP_CACHE_DIR`` when set (``~`` expanded), else ``<root>/cache``.

    Args:
        root: The folder of the local stores (``mlruns/`` by default).
    """
    env = os.environ.get(CACHE_DIR_ENV, "").strip()
    if env:
        return Path(env).expanduser()
    return Path(root) / "cache"


def canonical_json(obj: Any) -> str:
    """Deterministic JSON (sorted keys, no whitespace, paths and other objects as strings)."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)


def stage_key(stage: str, version: int, params: dict[str, Any], upstream: tuple[str, ...] = ()) -> str:
    """The content hash of a stage invocation."""
    payload = canonical_json({"stage": stage, "version": version, "params": params, "upstream": list(upstream)})
    return hashlib.sha256(payload.encode()).hexdigest()


_HASH_LOCK = threading.Lock()
_HASH_MEMO: dict[tuple[str, int, int], str] = {}
_RACY_NS = 2_000_000_000  # files younger than this are not memoized (timestamp granularity)


def file_sha256(path: str | os.PathLike[str]) -> str:
    """SHA-256 hex digest of a file's bytes, memoized on ``(path, size, mtime_ns)``.

    The stat fingerprint costs one ``stat`` call instead of re-reading the file. Its blind spot is a
    rewrite that keeps both the size and the modification time, which can happen within the file
    system's timestamp granularity (a few ms). As in git's "racily clean" rule, a file modified less
    than :data:`_RACY_NS` ago is therefore hashed every time and only memoized once it is older.

    Args:
        path: The file to hash.

    Returns:
        The 64-character hex digest.
    """
    p = Path(path).resolve()
    st = p.stat()
    fingerprint = (str(p), st.st_size, st.st_mtime_ns)
    with _HASH_LOCK:
        cached = _HASH_MEMO.get(fingerprint)
    if cached is not None:
        return cached
    digest = hashlib.sha256()
    with p.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    hexdigest = digest.hexdigest()
    if time.time_ns() - st.st_mtime_ns > _RACY_NS:
        with _HASH_LOCK:
            _HASH_MEMO[fingerprint] = hexdigest
    return hexdigest


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


@dataclass(frozen=True)
class FailureRecord:
    """A recorded (deterministic) stage failure, as stored in ``failures/<stage>/<key>/cached_failure.json``.

    Attributes:
        exc_class: The exception class name (for isolated stages, the class raised in the worker).
        message: The exception message, exactly as the pipeline classifies it (``str(exc)``).
        traceback: The formatted traceback.
        when: Unix time the failure was recorded.
        seconds: How long the build ran before it failed.
        path: The record's folder (also holds what the failed build wrote, e.g. its logs).
    """

    stage: str
    key: str
    exc_class: str
    message: str
    traceback: str
    when: float
    seconds: float
    path: Path

    def to_error(self) -> CachedBuildError:
        """The error a replay raises: the pipeline classifies it exactly like the original."""
        cause = IsolatedFailure(self.exc_class, self.message, self.traceback)
        return CachedBuildError(self.stage, cause, self.path, replayed=True, record=self)


class CachedBuildError(Exception):
    """A stage build failed, now or (``replayed``) in an earlier build of the same key.

    Attributes:
        stage: The stage name.
        cause: The original exception when the build ran now; an :class:`~harness.isolation.IsolatedFailure`
            carrying the recorded class name, message and traceback when ``replayed``.
        failed_dir: What the failed build wrote (logs); for a recorded failure, the record's folder.
        replayed: True when the stage did not run because the failure of this key was recorded earlier.
        record: The failure record (set when the failure was recorded now or replayed), else None.
    """

    def __init__(
        self,
        stage: str,
        cause: BaseException,
        failed_dir: Path,
        replayed: bool = False,
        record: FailureRecord | None = None,
    ) -> None:
        self.stage = stage
        self.cause = cause
        self.failed_dir = failed_dir
        self.replayed = replayed
        self.record = record
        super().__init__(f"{stage}: {cause}")


# -- which failures are recorded -------------------------------------------------------------------------------
_OSERROR_CLASSES = frozenset(
    name for name, obj in vars(builtins).items() if isinstance(obj, type) and issubclass(obj, OSError)
)
#: Never recorded: the stage's process hung or died, or the run was interrupted.
_TRANSIENT_CLASSES = frozenset(
    {"Timeout", "Crash", "MemoryError", "KeyboardInterrupt", "SystemExit", "GeneratorExit", "TimeoutError",
     "InterruptedError", "BlockingIOError", "ConnectionError", "BrokenPipeError", "ConnectionAbortedError",
     "ConnectionRefusedError", "ConnectionResetError"}
)  # fmt: skip
#: Never recorded, even when classified: the environment or the harness itself is broken, not the configuration.
#: (Classes such as ``KeyError``, ``IndexError``, ``ValueError``, ``ZeroDivisionError`` and ``RuntimeError`` are
#: recorded only when the classification table knows the failure, e.g. a backend's classified ``ValueError``.)
_BUG_CLASSES = frozenset(
    {"ImportError", "ModuleNotFoundError", "AttributeError", "NameError", "UnboundLocalError", "TypeError",
     "AssertionError", "NotImplementedError", "RecursionError", "SyntaxError", "IndentationError"}
)  # fmt: skip
#: OSErrors about the machine, wherever they happen.
_DEVICE_ERRNOS = frozenset(
    getattr(errno, n)
    for n in ("ENOSPC", "EDQUOT", "EROFS", "EIO", "EMFILE", "ENFILE", "ENOMEM", "EAGAIN", "EBUSY", "ESTALE",
              "EINTR", "ETIMEDOUT", "EPIPE")
    if hasattr(errno, n)
)  # fmt: skip
#: Messages of host resource exhaustion, whatever the class (e.g. ONNX Runtime's RuntimeError on std::bad_alloc).
_RESOURCE_RE = re.compile(
    r"std::bad_alloc|bad allocation|Cannot allocate memory|Failed to allocate memory|CUDA out of memory|"
    r"No space left on device|Disk quota exceeded"
)
_ERRNO_RE = re.compile(r"\[Errno (?P<errno>\d+)\]")
_PATH_RE = re.compile(r": '(?P<path>[^']+)'")


def _under(path: str | os.PathLike[str] | None, root: Path) -> bool:
    if not path:
        return False
    try:
        p = Path(os.fsdecode(path)).resolve()
        return p == root or root in p.parents
    except (OSError, ValueError, RuntimeError):
        return False


def unrecorded_reason(
    cause: BaseException, cache_root: Path, stage: str, log_text: str | None = None
) -> str | None:
    """Why a build failure must not be recorded (so it is retried next time), or None to record it.

    A failure is recorded only when the classification table knows it -- :func:`harness.failures.classify` of
    (``stage``, class name, message) gives a signature other than ``stage:Class:unclassified``, computed as
    :meth:`harness.pipeline.Pipeline._stage` does (an isolated failure's message completed from ``log_text``) --
    and its cause is not transient. Not recorded:

    - an exception whose class sets ``transient = True`` (e.g. :class:`harness.pipeline.StagePruned`: a stage
      stopped early is not the stage's outcome);
    - an :class:`~harness.isolation.IsolatedFailure` of class ``Timeout`` or ``Crash`` (hung or killed worker);
    - ``BaseException``s that are not ``Exception``s (``KeyboardInterrupt``, ``SystemExit``), ``MemoryError``,
      connection and timeout errors;
    - any error whose message reports host memory or disk exhaustion (``std::bad_alloc``, ``Cannot allocate
      memory``, ``No space left on device`` ...);
    - ``OSError``s with a device-level errno (``ENOSPC``, ``EDQUOT``, ``EROFS``, ``EIO``, ``EMFILE`` ...), with
      no file name, or about a file inside the cache (``EACCES``/``ENOENT`` on the cache itself);
    - errors that mean the harness or its environment is broken rather than the configuration:
      ``ImportError``, ``AttributeError``, ``NameError``, ``TypeError``, ``AssertionError`` ... (even when
      classified);
    - anything else the table does not classify: a bare ``KeyError``, ``IndexError``, ``ValueError``,
      ``ZeroDivisionError`` or ``RuntimeError`` is more likely a harness bug than the configuration's outcome
      (a backend's ``ValueError`` that the table knows, e.g. Hailo's ``Couldn't detect CalibrationDataType``,
      is recorded).

    The same rules apply to failures raised in an isolated worker (by class name, errno and path parsed from
    the message).

    Args:
        cause: What the build raised.
        cache_root: The cache's root folder (an ``OSError`` under it is the cache's own trouble).
        stage: The stage that failed (the classification depends on it).
        log_text: The failed build's stage and tool logs (see :func:`harness.pipeline._stage_logs`), with which
            an isolated failure's bare message is classified.
    """
    root = Path(cache_root).resolve()
    if isinstance(cause, IsolatedFailure):
        cls, message = cause.exc_class, cause.message
        m = _ERRNO_RE.search(message)
        err_no = int(m["errno"]) if m else None
        p = _PATH_RE.search(message)
        filename: str | None = p["path"] if p else None
        is_os = cls in _OSERROR_CLASSES
    else:
        if not isinstance(cause, Exception):
            return f"{type(cause).__name__} is an interruption, not a stage outcome"
        cls = type(cause).__name__
        if getattr(cause, "transient", False) is True:
            return f"{cls} is marked transient"
        is_os = isinstance(cause, OSError)
        err_no = cause.errno if isinstance(cause, OSError) else None
        filename = cause.filename if isinstance(cause, OSError) else None
        if isinstance(cause, OSError) and _under(cause.filename2, root):
            return f"{cls} on the cache itself ({cause.filename2})"
    if cls in _TRANSIENT_CLASSES:
        return f"{cls} is transient"
    m = _RESOURCE_RE.search(cause.message if isinstance(cause, IsolatedFailure) else str(cause))
    if m:
        return f"{cls} says {m.group(0)!r}: the machine ran out of a resource"
    if cls in _BUG_CLASSES:
        return f"{cls} means a broken environment or harness, not a bad configuration"
    if is_os:
        if err_no in _DEVICE_ERRNOS:
            return f"{cls} errno {err_no} ({errno.errorcode.get(err_no, '?')}) is about the machine"
        if not filename:
            return f"{cls} names no file; cannot tell whether it is the cache's own trouble"
        if _under(filename, root):
            return f"{cls} on the cache itself ({filename})"
    failure = _classify(stage, cause, log_text)
    if not failure.known:
        return f"{failure.signature} is not in the classification table: it may be a harness bug, not an outcome"
    return None


def _classify(stage: str, cause: BaseException, log_text: str | None) -> Failure:
    """The failure as :meth:`harness.pipeline.Pipeline._stage` classifies it."""
    if isinstance(cause, IsolatedFailure):
        return classify_with_log(stage, cause.exc_class, cause.message, log_text)
    return classify(stage, type(cause).__name__, str(cause))


def _logs(folder: Path, stage: str, cause: BaseException) -> str | None:
    """The logs an isolated failure is classified with (the pipeline reads the same files), else None."""
    if not isinstance(cause, IsolatedFailure):
        return None
    from harness.pipeline import _stage_logs  # the pipeline's own reader: one definition of which logs count

    try:
        return _stage_logs(folder, stage)
    except OSError:
        return None


def _cause_parts(cause: BaseException) -> tuple[str, str, str]:
    """(class name, message, traceback) exactly as :meth:`harness.pipeline.Pipeline._stage` classifies them."""
    if isinstance(cause, IsolatedFailure):
        return cause.exc_class, cause.message, cause.traceback
    return type(cause).__name__, str(cause), "".join(traceback.format_exception(cause))


def _write_durable(path: Path, text: str) -> None:
    """Write and fsync (the folder is renamed into place right after, so its content must be on disk)."""
    with path.open("w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())


# -- inspection and pruning ----------------------------------------------------------------------------------
ItemKind = Literal["entry", "failure", "tmp", "failed", "trash"]


@dataclass(frozen=True)
class CacheItem:
    """One removable thing in the cache (see :meth:`StageCache.scan`).

    Attributes:
        kind: ``entry`` (published result), ``failure`` (recorded failure), or leftovers: ``tmp`` (build in
            progress or abandoned), ``failed`` (unrecorded failed build), ``trash`` (interrupted prune).
        stage: The stage (for leftovers, parsed from the folder name; may be empty).
        key: The key (for leftovers, the folder name).
        path: The folder.
        bytes: Size of the files in it.
        used: Unix time of last use (the folder's mtime; a cache hit touches it). For ``tmp`` and ``failed``,
            the newest mtime inside.
    """

    kind: ItemKind
    stage: str
    key: str
    path: Path
    bytes: int
    used: float


@dataclass
class PruneReport:
    """What :meth:`StageCache.prune` removed (or, with ``dry_run``, would remove)."""

    removed: list[CacheItem] = field(default_factory=list)
    dry_run: bool = False

    @property
    def bytes_freed(self) -> int:
        """Total size of the removed items."""
        return sum(i.bytes for i in self.removed)

    def count(self, kind: str) -> int:
        """How many items of ``kind`` were removed."""
        return sum(i.kind == kind for i in self.removed)


def _tree(path: Path) -> tuple[int, float]:
    """(total file bytes, newest mtime) of a folder, without following symlinks."""
    size, newest = 0, 0.0
    stack = [path]
    while stack:
        d = stack.pop()
        try:
            newest = max(newest, d.stat().st_mtime)
            with os.scandir(d) as it:
                for e in it:
                    st = e.stat(follow_symlinks=False)
                    newest = max(newest, st.st_mtime)
                    if e.is_dir(follow_symlinks=False):
                        stack.append(Path(e.path))
                    else:
                        size += st.st_size
        except FileNotFoundError:
            continue  # removed concurrently
    return size, newest


def folder_bytes(path: Path) -> int:
    """Total size of the files under a folder (0 if it does not exist)."""
    return _tree(path)[0] if path.is_dir() else 0


def _subdirs(path: Path) -> list[Path]:
    try:
        return sorted(p for p in path.iterdir() if p.is_dir())
    except FileNotFoundError:
        return []


class StageCache:
    """Directory-per-key store of stage results and recorded failures.

    Safe for concurrent processes on one file system: publication is a single ``rename`` of a complete folder,
    nothing published is ever modified or overwritten, and :meth:`prune` renames an entry away before deleting
    it, so a reader sees a whole entry or none.

    Two workers that need one key at once do not both build it: the first leaves an in-flight marker
    (:mod:`harness._inflight`) and the others wait for its entry or failure record; a marker whose owner died is
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

    # -- inspection and pruning -----------------------------------------------------------------------------
    def stages(self) -> list[str]:
        """Stage names that have entries or failure records."""
        names = {p.name for p in _subdirs(self.root) if p.name not in RESERVED}
        names |= {p.name for p in _subdirs(self.root / "failures")}
        return sorted(names)

    def scan(self, kinds: Iterable[ItemKind] = ("entry", "failure", "tmp", "failed", "trash")) -> list[CacheItem]:
        """Every entry, failure record and leftover folder, with its size and last use."""
        wanted = set(kinds)
        items: list[CacheItem] = []
        for stage in self.stages():
            if "entry" in wanted:
                for p in _subdirs(self.root / stage):
                    size, _ = _tree(p)
                    items.append(CacheItem("entry", stage, p.name, p, size, _mtime(p)))
            if "failure" in wanted:
                for p in _subdirs(self.root / "failures" / stage):
                    size, _ = _tree(p)
                    items.append(CacheItem("failure", stage, p.name, p, size, _mtime(p)))
        for kind in ("tmp", "failed", "trash"):
            if kind in wanted:
                for p in _subdirs(self.root / kind):
                    size, newest = _tree(p)
                    stage = p.name.rsplit("-", 2)[0] if p.name.count("-") >= 2 else ""
                    items.append(CacheItem(kind, stage, p.name, p, size, newest))  # type: ignore[arg-type]
        return items

    def remove(self, item: CacheItem) -> bool:
        """Delete one item: rename it into ``trash/`` (atomic for readers), then delete it.

        Returns:
            False when it was already gone (removed concurrently).
        """
        target = item.path
        if item.kind != "trash":
            target = self.root / "trash" / f"{item.stage or 'x'}-{item.key[:12]}-{uuid.uuid4().hex[:8]}"
            target.parent.mkdir(parents=True, exist_ok=True)
            try:
                os.rename(item.path, target)
            except FileNotFoundError:
                return False
        shutil.rmtree(target, ignore_errors=True)
        return True

    def prune(
        self,
        *,
        older_than_days: float | None = None,
        stage: str | None = None,
        failures_only: bool = False,
        keep_last: int | None = None,
        dry_run: bool = False,
        now: float | None = None,
    ) -> PruneReport:
        """Remove entries and failure records, and clean leftovers.

        Selection: entries and failure records (only failure records with ``failures_only``) of ``stage`` (all
        stages if None) not used for ``older_than_days``, except the ``keep_last`` most recently used of each
        stage. With no selector at all (no age, stage, failures-only or keep-last), nothing published is
        removed. Always: ``tmp/`` and ``failed/`` folders untouched for :data:`LEFTOVER_AGE_S` (of ``stage``,
        if given) and interrupted-prune folders in ``trash/``.

        Args:
            older_than_days: Minimum age (days since last use).
            stage: Restrict to one stage.
            failures_only: Remove failure records only (keep results).
            keep_last: Keep this many most recently used items per stage.
            dry_run: Report what would be removed; remove nothing.
            now: Current Unix time (for tests).

        Returns:
            The :class:`PruneReport`.
        """
        now = time.time() if now is None else now
        report = PruneReport(dry_run=dry_run)
        selecting = older_than_days is not None or stage is not None or failures_only or keep_last is not None
        kinds: tuple[ItemKind, ...] = ("failure",) if failures_only else ("entry", "failure")
        chosen: list[CacheItem] = []
        if selecting:
            published = [i for i in self.scan(kinds) if stage is None or i.stage == stage]
            protected: set[Path] = set()
            if keep_last:
                by_stage: dict[str, list[CacheItem]] = {}
                for i in published:
                    by_stage.setdefault(i.stage, []).append(i)
                for group in by_stage.values():
                    protected |= {i.path for i in sorted(group, key=lambda i: -i.used)[:keep_last]}
            min_age = (older_than_days or 0.0) * 86400.0
            chosen += [i for i in published if i.path not in protected and now - i.used >= min_age]
        for i in self.scan(("tmp", "failed", "trash")):
            if i.kind == "trash" or (now - i.used >= LEFTOVER_AGE_S and (stage is None or i.stage == stage)):
                chosen.append(i)
        for item in chosen:
            if dry_run or self.remove(item):
                report.removed.append(item)
        return report


def _mtime(p: Path) -> float:
    try:
        return p.stat().st_mtime
    except FileNotFoundError:
        return 0.0


def _touch(p: Path) -> None:
    """Mark a folder as used now (best effort: a read-only cache still works)."""
    try:
        os.utime(p)
    except OSError:
        pass
