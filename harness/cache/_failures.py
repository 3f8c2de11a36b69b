"""Failure records and which failures are recorded: :class:`FailureRecord` (``cached_failure.json``),
:class:`CachedBuildError` (what a failed or replayed build raises), :func:`unrecorded_reason` (the rules: known to
the classification table, and not transient), and the glue that classifies a failure as the pipeline does
(``_classify``, ``_logs``, ``_cause_parts``)."""

from __future__ import annotations

import builtins
import errno
import os
import re
import traceback
from dataclasses import dataclass
from pathlib import Path

from harness.failures import Failure, classify, classify_with_log
from harness.isolation import IsolatedFailure


_RECORD = "cached_failure.json"
_RECORD_FORMAT = 1


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
