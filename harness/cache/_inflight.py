"""In-flight markers: one worker builds a stage key while the others wait for its entry.

A marker is a small file ``<cache root>/locks/<stage>-<key>`` created atomically (``link`` of a complete file,
which fails when the name exists -- safe on local and network file systems shared by several machines). It
records its owner (:func:`harness._owner.owner`: host, boot id, pid namespace, pid, start time) and a random
token. While the owner builds, a thread refreshes the marker's modification time every ``stale_after / 4``
seconds. A waiter treats a marker as stale, and breaks it, when

- its owner ran on this machine and is gone (killed, crashed): at once; or
- it has not been refreshed (same inode and mtime) for ``stale_after`` seconds *of the waiter's own monotonic
  clock* -- no comparison of clocks across machines.

The marker only avoids duplicate work; correctness never rests on it. The cache's atomic publication still
decides (two builds of one key, e.g. after a marker was wrongly broken, publish one entry and drop the other).
A thread that already holds a marker never waits for another one (it builds at once), so nested builds cannot
deadlock.
"""

from __future__ import annotations

import json
import os
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness._owner import owner, owner_gone

__all__ = ["DEFAULT_STALE_AFTER", "InFlight", "Marker", "holding"]

#: A marker not refreshed for this long (waiter's clock) is stale; the owner refreshes 4 times per period.
DEFAULT_STALE_AFTER = 30.0

_HELD = threading.local()


def holding() -> bool:
    """Whether this thread holds a marker (it must not wait for another: see the module docstring)."""
    return bool(getattr(_HELD, "n", 0))


@dataclass
class Marker:
    """A held in-flight marker; :meth:`release` it (it is also released if the process dies: it goes stale)."""

    path: Path
    token: str
    ino: int
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def release(self) -> None:
        """Stop refreshing and remove the marker, if it is still this one."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        _HELD.n = max(getattr(_HELD, "n", 1) - 1, 0)
        try:
            if os.stat(self.path).st_ino == self.ino:
                os.unlink(self.path)
        except FileNotFoundError:
            pass  # broken by a waiter that judged it stale

    def _refresh(self, every: float) -> None:
        while not self._stop.wait(every):
            try:
                os.utime(self.path)
            except FileNotFoundError:
                return  # broken: the waiter builds too; publication keeps one entry
            except OSError:
                pass


class InFlight:
    """The markers of one cache root.

    Args:
        root: The cache root (markers live in ``<root>/locks``).
        stale_after: Seconds without a refresh after which a waiter breaks a marker.
        poll: Seconds between a waiter's looks (grows to 0.5 s).
    """

    def __init__(self, root: Path, stale_after: float = DEFAULT_STALE_AFTER, poll: float = 0.02) -> None:
        self.dir = Path(root) / "locks"
        self.stale_after = stale_after
        self.poll = poll

    def path(self, stage: str, key: str) -> Path:
        return self.dir / f"{stage}-{key}"

    def try_acquire(self, stage: str, key: str) -> Marker | None:
        """Create the marker, or None when another process holds it."""
        final = self.path(stage, key)
        token = uuid.uuid4().hex
        self.dir.mkdir(parents=True, exist_ok=True)
        tmp = self.dir / f".{final.name[:80]}.{token}"
        tmp.write_text(json.dumps({**owner(), "token": token, "time": time.time()}))
        try:
            os.link(tmp, final)
        except FileExistsError:
            return None
        finally:
            tmp.unlink(missing_ok=True)
        marker = Marker(final, token, os.stat(final).st_ino)
        marker._thread = threading.Thread(
            target=marker._refresh, args=(max(self.stale_after / 4, 0.01),), name=f"inflight-{stage}", daemon=True
        )
        marker._thread.start()
        _HELD.n = getattr(_HELD, "n", 0) + 1
        return marker

    def wait(self, stage: str, key: str, done: Callable[[], Any], max_wait: float | None = None) -> Any:
        """Wait while another process holds the marker of ``key``.

        Args:
            done: Called after each look; a non-None result (the published entry) ends the wait and is returned.
                It may raise (a recorded failure), which ends the wait too.
            max_wait: Give up after this many seconds (None: wait as long as the marker is alive).

        Returns:
            ``done()``'s result, or None when the marker is gone (released without a result, or broken as stale):
            the caller then tries to acquire it itself.
        """
        path = self.path(stage, key)
        start = last_change = time.monotonic()
        seen: tuple[int, int] | None = None
        delay = self.poll
        while True:
            result = done()
            if result is not None:
                return result
            try:
                st = os.stat(path)
            except FileNotFoundError:
                return None
            now = time.monotonic()
            if (st.st_ino, st.st_mtime_ns) != seen:
                seen, last_change = (st.st_ino, st.st_mtime_ns), now
            if now - last_change > self.stale_after or self._owner_gone(path):
                self._break(path, st.st_ino)
                return None
            if max_wait is not None and now - start > max_wait:
                return None
            time.sleep(delay)
            delay = min(delay * 1.5, 0.5)

    @staticmethod
    def _owner_gone(path: Path) -> bool:
        try:
            return owner_gone(json.loads(path.read_text()))
        except (OSError, ValueError):
            return False

    def _break(self, path: Path, ino: int) -> None:
        """Remove a stale marker -- the one judged stale (inode ``ino``), not a fresh one made meanwhile."""
        aside = path.with_name(f".broken-{path.name[:80]}.{uuid.uuid4().hex}")
        try:
            os.rename(path, aside)
        except FileNotFoundError:
            return
        try:
            if os.stat(aside).st_ino != ino:  # a new owner's marker: put it back unless yet another one exists
                try:
                    os.link(aside, path)
                except FileExistsError:
                    pass
        finally:
            aside.unlink(missing_ok=True)
