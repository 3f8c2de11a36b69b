"""Run stage functions in a separate worker process with a timeout.

Vendor optimizers and compilers hang, segfault and leak. Every optimize / compile / emulate call therefore runs
in a worker process (``python -m harness._worker``) whose stdout and stderr go to the stage's log file. The
parent waits at most ``timeout`` seconds for each call, then kills the worker. The outcome is always one of:

- the function's return value (plus wall time and the worker's peak RSS) in :class:`IsolatedRun`;
- :class:`IsolatedFailure` with the exception class name and message raised in the worker (classified later by
  :mod:`harness.failures`), or ``Timeout`` / ``Crash`` when the worker hung or died.

A :class:`Worker` is reused across calls (starting a Python process and importing a runtime costs about a
second per stage), and is replaced after a timeout, a crash, or ``max_calls`` calls (to bound SDK leaks).
The worker is a fresh interpreter started with ``subprocess`` -- not ``multiprocessing`` -- so it never
re-imports the caller's ``__main__``. It may be **another interpreter** than the harness's (``Worker(python=...)``):
the Hailo DFC lives in its own environment (Python 3.10, numpy 1.26, onnx 1.16, TensorFlow) and its stages run
there. Only the worker side of the harness is put on that interpreter's path (:func:`worker_pythonpath`: the
``harness`` package alone, never the harness's site-packages), and only modules listed in
:data:`harness.WORKER_SIDE` may be imported there.

Each call runs with the folder of its log file as the current directory, so tools that write logs and scratch
folders into the current directory (the DFC writes ``hailo_sdk.client.log``, ``allocator.log`` ...) write them
into the stage's own working folder.
"""

from __future__ import annotations

import functools
import os
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

__all__ = ["IsolatedFailure", "IsolatedRun", "Worker", "run_isolated", "worker_env", "worker_pythonpath"]


@dataclass(frozen=True)
class IsolatedRun:
    """A worker's successful result."""

    value: Any
    seconds: float
    peak_rss_mb: float


class IsolatedFailure(Exception):
    """The isolated function raised, hung or crashed.

    Attributes:
        exc_class: Exception class name raised in the worker, or ``Timeout`` / ``Crash``.
        message: The exception message (or a description of the timeout / signal).
        traceback: The worker's formatted traceback, when there was one.
        seconds: Wall time until the failure was seen.
    """

    def __init__(self, exc_class: str, message: str, traceback_text: str = "", seconds: float = 0.0) -> None:
        self.exc_class = exc_class
        self.message = message
        self.traceback = traceback_text
        self.seconds = seconds
        super().__init__(f"{exc_class}: {message}")


@functools.cache
def worker_pythonpath() -> str:
    """A folder holding the ``harness`` package and nothing else, for another interpreter's ``PYTHONPATH``.

    In a source checkout that is the checkout itself; for an installed harness (``harness`` inside a
    site-packages folder, next to numpy 2, torch ...) it is a private folder with a symlink to the package, so
    that the DFC's interpreter never sees the harness's own third-party packages.
    """
    package = Path(__file__).resolve().parent
    root = package.parent
    if (root / "pyproject.toml").is_file():
        return str(root)
    folder = Path(tempfile.gettempdir()) / f"hefsweep-worker-path-{os.getuid()}"
    folder.mkdir(mode=0o700, exist_ok=True)
    link = folder / "harness"
    if not (link.is_symlink() and link.resolve() == package):
        tmp = folder / f".harness.{os.getpid()}"
        tmp.unlink(missing_ok=True)
        tmp.symlink_to(package, target_is_directory=True)
        os.replace(tmp, link)
    return str(folder)


def worker_env(python: str | None = None) -> dict[str, str]:
    """The environment of a worker (or probe) process running under ``python``: the harness on the path first."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (worker_pythonpath(), env.get("PYTHONPATH", "")) if p)
    return env


class Worker:
    """A reusable worker process. Not thread-safe: one call at a time.

    Args:
        max_calls: Replace the process after this many calls.
        python: The interpreter to run the worker under (default: the harness's own, ``sys.executable``).
    """

    def __init__(self, max_calls: int = 50, python: str | None = None) -> None:
        self.max_calls = max_calls
        self.python = python or sys.executable
        self._proc: subprocess.Popen[bytes] | None = None
        self._to: Connection | None = None
        self._from: Connection | None = None
        self._calls = 0

    def _start(self) -> None:
        to_r, to_w = os.pipe()
        from_r, from_w = os.pipe()
        env = worker_env(self.python)
        self._proc = subprocess.Popen(
            [self.python, "-m", "harness._worker", str(to_r), str(from_w)],
            pass_fds=(to_r, from_w),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env=env,
            start_new_session=True,
        )
        os.close(to_r)
        os.close(from_w)
        self._to = Connection(to_w, readable=False)
        self._from = Connection(from_r, writable=False)
        self._calls = 0

    def close(self) -> None:
        """Stop the worker process (kills it if it does not exit promptly)."""
        proc, self._proc = self._proc, None
        for conn in (self._to, self._from):
            if conn is not None:
                conn.close()
        self._to = self._from = None
        if proc is not None and proc.poll() is None:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.wait(10)

    def __enter__(self) -> Worker:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def call(self, target: str, *args: Any, timeout: float, log_path: Path | None = None, **kwargs: Any) -> IsolatedRun:
        """Call ``module:function`` with ``args`` in the worker.

        Args:
            target: ``"package.module:function"``; arguments and result must be picklable.
            *args: Positional arguments.
            timeout: Seconds to wait before the worker is killed.
            log_path: File that receives the call's stdout and stderr (appended); its folder is the call's current
                directory.
            **kwargs: Keyword arguments.

        Returns:
            The function's return value with wall time and the worker's peak RSS.

        Raises:
            IsolatedFailure: the function raised (its class name and message), timed out (``Timeout``) or the
                worker died without answering (``Crash``, with the signal or exit code).
        """
        if self._proc is None or self._proc.poll() is not None or self._calls >= self.max_calls:
            self.close()
            self._start()
        assert self._to is not None and self._from is not None and self._proc is not None
        self._calls += 1
        start = time.monotonic()
        try:
            self._to.send((target, args, kwargs, str(log_path) if log_path else None))
            msg = self._from.recv() if self._from.poll(timeout) else _TIMEOUT
        except (EOFError, OSError, BrokenPipeError):
            msg = None
        seconds = time.monotonic() - start
        if msg is _TIMEOUT:
            self.close()
            raise IsolatedFailure("Timeout", f"{target} did not finish within {timeout:g} s", seconds=seconds)
        if msg is None:
            proc = self._proc
            try:
                code = proc.wait(10)
            except subprocess.TimeoutExpired:
                code = None
            self.close()
            if code is not None and code < 0:
                raise IsolatedFailure("Crash", f"child died by {signal.Signals(-code).name}", seconds=seconds)
            raise IsolatedFailure("Crash", f"child exited with code {code} without a result", seconds=seconds)
        if msg[0] == "ok":
            return IsolatedRun(value=msg[1], seconds=seconds, peak_rss_mb=msg[2])
        raise IsolatedFailure(msg[1], msg[2], msg[3], seconds=seconds)


_TIMEOUT = ("timeout",)


def run_isolated(
    target: str,
    *args: Any,
    timeout: float,
    log_path: Path | None = None,
    python: str | None = None,
    **kwargs: Any,
) -> IsolatedRun:
    """One call in a fresh worker process (see :meth:`Worker.call`), under ``python`` (default: this one)."""
    with Worker(max_calls=1, python=python) as worker:
        return worker.call(target, *args, timeout=timeout, log_path=log_path, **kwargs)
