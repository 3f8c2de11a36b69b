"""Run a stage function in a child process with a timeout.

Vendor optimizers and compilers hang, segfault and leak. Every optimize / compile / emulate call therefore
runs in a fresh ``spawn`` child whose stdout and stderr go to the stage's log file. The parent waits at most
``timeout`` seconds, then kills the child. The outcome is always one of:

- the function's return value (plus the child's peak RSS and wall time in :class:`IsolatedRun`);
- :class:`IsolatedFailure` with the exception class name and message raised in the child (classified later
  by :mod:`harness.failures`), or with ``Timeout`` / ``Crash`` when the child hung or died by a signal.
"""

from __future__ import annotations

import importlib
import multiprocessing as mp
import os
import resource
import signal
import sys
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["IsolatedFailure", "IsolatedRun", "run_isolated"]


@dataclass(frozen=True)
class IsolatedRun:
    """A child's successful result."""

    value: Any
    seconds: float
    peak_rss_mb: float


class IsolatedFailure(Exception):
    """The isolated function raised, hung or crashed.

    Attributes:
        exc_class: Exception class name raised in the child, or ``Timeout`` / ``Crash``.
        message: The exception message (or a description of the timeout / signal).
        traceback: The child's formatted traceback, when there was one.
        seconds: Wall time until the failure was seen.
    """

    def __init__(self, exc_class: str, message: str, traceback_text: str = "", seconds: float = 0.0) -> None:
        self.exc_class = exc_class
        self.message = message
        self.traceback = traceback_text
        self.seconds = seconds
        super().__init__(f"{exc_class}: {message}")


def _child(conn: Any, target: str, args: tuple[Any, ...], kwargs: dict[str, Any], log_path: str | None) -> None:
    if log_path:
        fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        os.close(fd)
    try:
        module, func = target.split(":")
        fn = getattr(importlib.import_module(module), func)
        value = fn(*args, **kwargs)
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
        conn.send(("ok", value, rss))
    except BaseException as exc:  # noqa: BLE001 - everything is reported to the parent
        tb = traceback.format_exc()
        sys.stderr.write(tb)
        sys.stderr.flush()
        try:
            conn.send(("err", type(exc).__name__, str(exc), tb))
        except Exception:  # noqa: BLE001 - unpicklable payloads must not hide the error
            conn.send(("err", type(exc).__name__, repr(exc), tb))
    finally:
        conn.close()


def run_isolated(
    target: str,
    *args: Any,
    timeout: float,
    log_path: Path | None = None,
    **kwargs: Any,
) -> IsolatedRun:
    """Call ``module:function`` with ``args`` in a spawned child process.

    Args:
        target: ``"package.module:function"``; the function and its arguments must be picklable.
        *args: Positional arguments.
        timeout: Seconds to wait before the child is killed.
        log_path: File that receives the child's stdout and stderr (appended).
        **kwargs: Keyword arguments.

    Returns:
        The function's return value with wall time and peak RSS.

    Raises:
        IsolatedFailure: the function raised (its class name and message), timed out (``Timeout``) or the
            child died without answering (``Crash``, with the signal or exit code).
    """
    ctx = mp.get_context("spawn")
    parent, child = ctx.Pipe(duplex=False)
    proc = ctx.Process(
        target=_child, args=(child, target, args, kwargs, str(log_path) if log_path else None), daemon=True
    )
    start = time.monotonic()
    proc.start()
    child.close()
    try:
        if parent.poll(timeout):
            try:
                msg = parent.recv()
            except EOFError:
                msg = None
        else:
            msg = None
            if proc.is_alive():
                proc.kill()
                proc.join(5)
                raise IsolatedFailure(
                    "Timeout", f"{target} did not finish within {timeout:g} s", seconds=time.monotonic() - start
                )
        proc.join(30)
        seconds = time.monotonic() - start
        if msg is None:
            code = proc.exitcode
            if code is not None and code < 0:
                name = signal.Signals(-code).name
                raise IsolatedFailure("Crash", f"child died by {name}", seconds=seconds)
            raise IsolatedFailure("Crash", f"child exited with code {code} without a result", seconds=seconds)
        if msg[0] == "ok":
            return IsolatedRun(value=msg[1], seconds=seconds, peak_rss_mb=msg[2])
        raise IsolatedFailure(msg[1], msg[2], msg[3], seconds=seconds)
    finally:
        if proc.is_alive():
            proc.kill()
            proc.join(5)
        parent.close()
