"""Test helpers shipped with the package: functions that misbehave on purpose, for isolation and fault tests."""

from __future__ import annotations

import ctypes
import os
import signal
import time

__all__ = ["crash_segfault", "echo", "hang", "raise_error", "write_then_crash"]


def echo(value: object) -> object:
    """Return ``value`` (a child that works)."""
    print(f"echo {value!r}")
    return value


def hang(seconds: float = 3600.0) -> None:
    """Sleep far past any stage timeout."""
    time.sleep(seconds)


def crash_segfault() -> None:
    """Die by SIGSEGV, as a native SDK crash would."""
    ctypes.string_at(0)
    os.kill(os.getpid(), signal.SIGSEGV)  # in case reading address 0 did not fault


def raise_error(kind: str, message: str) -> None:
    """Raise an exception of a dynamically named class (to mimic SDK exception classes)."""
    raise type(kind, (RuntimeError,), {})(message)


def write_then_crash(path: str) -> None:
    """Write a log line, then exit abruptly without a result."""
    print(f"about to die, see {path}", flush=True)
    os._exit(3)
