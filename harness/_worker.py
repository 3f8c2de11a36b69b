"""The worker process of :mod:`harness.isolation`: ``python -m harness._worker READ_FD WRITE_FD``.

Loops over requests ``(target, args, kwargs, log_path)`` received on READ_FD, runs ``module:function`` with
stdout/stderr redirected to ``log_path`` and the log's folder as the current directory, and answers on WRITE_FD with ``("ok", value, peak_rss_mb)`` (the call's own peak RSS: reset before each call) or
``("err", class_name, message, traceback)``. Exits when the parent closes the pipe.

Worker side (see :data:`harness.WORKER_SIDE`): this module may run under the DFC's own interpreter, so it imports
only the standard library and runs on Python 3.10.
"""

from __future__ import annotations

import importlib
import os
import resource
import sys
import traceback
from multiprocessing.connection import Connection
from typing import Any


def _redirect(log_path: str | None, saved: tuple[int, int]) -> None:
    sys.stdout.flush()
    sys.stderr.flush()
    if log_path:
        fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        os.close(fd)
    else:
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)


def _reset_peak_rss() -> bool:
    """Reset this process's peak RSS (VmHWM) to its current RSS (Linux: "5" to ``/proc/self/clear_refs``)."""
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


def _peak_rss_mb(reset: bool) -> float:
    """The peak RSS since the last reset (``VmHWM``), or -- where it cannot be reset -- the process's lifetime peak
    (``ru_maxrss``; a reused worker's earlier stages included)."""
    if reset:
        try:
            with open("/proc/self/status") as fh:
                for line in fh:
                    if line.startswith("VmHWM:"):
                        return int(line.split()[1]) / 1024.0
        except (OSError, ValueError, IndexError):
            pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _serve(inbox: Connection, outbox: Connection) -> None:
    saved = (os.dup(1), os.dup(2))
    home = os.getcwd()
    while True:
        try:
            target, args, kwargs, log_path = inbox.recv()
        except EOFError:
            return
        _redirect(log_path, saved)
        os.chdir(os.path.dirname(os.path.abspath(log_path)) if log_path else home)
        reply: tuple[Any, ...]
        reset = _reset_peak_rss()  # the stage's own peak, not the reused worker's lifetime one
        try:
            module, func = target.split(":")
            value = getattr(importlib.import_module(module), func)(*args, **kwargs)
            reply = ("ok", value, _peak_rss_mb(reset))
        except Exception as exc:  # noqa: BLE001 - every failure is reported to the parent
            tb = traceback.format_exc()
            sys.stderr.write(tb)
            reply = ("err", type(exc).__name__, str(exc), tb)
        _redirect(None, saved)
        os.chdir(home)
        try:
            outbox.send(reply)
        except Exception as exc:  # noqa: BLE001 - e.g. an unpicklable result
            outbox.send(("err", type(exc).__name__, f"cannot send the result back: {exc}", ""))


def _die_with_parent() -> None:
    """Ask Linux to SIGKILL this worker when its parent dies (a SIGKILLed sweep must not leave it running)."""
    try:
        import ctypes
        import signal

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass  # not Linux: the worker still exits at its next request (EOF on the pipe)


def main(argv: list[str]) -> None:
    """Serve requests on the two pipe file descriptors given on the command line."""
    _die_with_parent()
    _serve(Connection(int(argv[1]), writable=False), Connection(int(argv[2]), readable=False))


if __name__ == "__main__":
    main(sys.argv)
