"""Processes as owners: who holds a trial or a cache marker, and whether that process is known to be gone.

Shared by :mod:`harness._heartbeat` (trial owners) and :mod:`harness.cache._inflight` (stage-cache markers); imports
nothing heavy.
"""

from __future__ import annotations

import os
import socket
from typing import Any

__all__ = ["owner", "owner_gone"]


def _read(path: str) -> str | None:
    try:
        with open(path) as fh:
            return fh.read().strip()
    except OSError:
        return None


def _start_time(pid: int) -> str | None:
    """The start time of process ``pid`` (clock ticks since boot, ``/proc/<pid>/stat`` field 22), None if there is
    no such live process."""
    stat = _read(f"/proc/{pid}/stat")
    if stat is None:
        return None
    fields = stat.rsplit(")", 1)[-1].split()
    if len(fields) < 20 or fields[0] in ("Z", "X"):  # a zombie (killed, not reaped yet) is gone too
        return None
    return fields[19]


def _machine() -> dict[str, str | None]:
    try:
        pidns = os.readlink("/proc/self/ns/pid")
    except OSError:
        pidns = None
    return {"host": socket.gethostname(), "boot": _read("/proc/sys/kernel/random/boot_id"), "pidns": pidns}


def owner() -> dict[str, Any]:
    """This process as a trial owner: ``host``, ``boot`` (boot id), ``pidns`` (pid namespace), ``pid``, ``start``."""
    return {**_machine(), "pid": os.getpid(), "start": _start_time(os.getpid())}


def owner_gone(recorded: Any) -> bool:
    """Whether the process described by ``recorded`` (see :func:`owner`) is known to be gone: it ran on this
    machine -- same host, boot and pid namespace, all known -- and its pid is absent or now belongs to a process
    that started at another time. Anything else (another machine, no ``/proc``, a malformed record) is not known."""
    if not isinstance(recorded, dict):
        return False
    here = _machine()
    if any(here[k] is None or recorded.get(k) != here[k] for k in here):
        return False
    pid, start = recorded.get("pid"), recorded.get("start")
    if not isinstance(pid, int) or pid <= 0 or start is None:
        return False
    now = _start_time(pid)
    if now is None:  # no such process (this machine has /proc: ``boot`` was read from it)
        return True
    return now != str(start)
