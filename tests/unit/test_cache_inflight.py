"""harness/cache/_inflight.py through StageCache.build: two workers needing one key build it once; a dead or silent
owner's marker is broken and the waiter builds."""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import time
from pathlib import Path
from typing import Any

import pytest

from harness.cache import _inflight
from harness.backends import OverrideTargetNotFound
from harness.cache import CachedBuildError, StageCache


def _builder(root: str, fail: bool, hold: float, stale_after: float, go: Any, queue: Any) -> None:
    cache = StageCache(Path(root), stale_after=stale_after)

    def fn(d: Path) -> dict:
        with open(Path(root) / "calls.txt", "a") as fh:  # one line per real build, whoever runs it
            fh.write(f"{os.getpid()}\n")
        time.sleep(hold)
        if fail:
            raise OverrideTargetNotFound("ghost", [], 3)
        (d / "who.txt").write_text(str(os.getpid()))
        return {"pid": os.getpid()}

    go.wait(10)
    try:
        entry = cache.build("s", "k", fn)
        queue.put(("ok", os.getpid(), entry.meta["pid"], entry.hit))
    except CachedBuildError as err:
        queue.put(("failed", os.getpid(), err.replayed, err.record is not None))


def _calls(root: Path) -> list[str]:
    return (root / "calls.txt").read_text().split()


@pytest.mark.parametrize("fail", [False, True])
def test_two_workers_racing_for_one_key_build_it_once(tmp_path: Path, fail: bool) -> None:
    ctx = multiprocessing.get_context("fork")
    go, queue = ctx.Barrier(2), ctx.Queue()
    # the build outlasts the stale period many times: the owner's refreshes keep its marker alive
    procs = [ctx.Process(target=_builder, args=(str(tmp_path), fail, 1.5, 0.3, go, queue)) for _ in range(2)]
    for p in procs:
        p.start()
    results = sorted(queue.get(timeout=30) for _ in procs)
    for p in procs:
        p.join(10)
        assert p.exitcode == 0
    assert len(_calls(tmp_path)) == 1, "the stage function ran in both workers"
    builder = int(_calls(tmp_path)[0])
    if not fail:
        assert {r[2] for r in results} == {builder}  # both got the builder's entry
        assert sorted(r[3] for r in results) == [False, True]  # the waiter's is a hit
    else:
        assert [r[0] for r in results] == ["failed", "failed"]
        by_pid = {r[1]: r for r in results}
        assert by_pid[builder][2:] == (False, True)  # built and recorded
        waiter = next(pid for pid in by_pid if pid != builder)
        assert by_pid[waiter][2] is True  # replayed from the record, not run again
    assert not list((tmp_path / "locks").iterdir())  # released


def _hang(root: str, ready: Any) -> None:
    cache = StageCache(Path(root))

    def fn(d: Path) -> dict:
        ready.set()
        time.sleep(600)
        return {}

    cache.build("s", "k", fn)


def test_a_killed_owner_on_this_machine_is_taken_over_at_once(tmp_path: Path) -> None:
    ctx = multiprocessing.get_context("fork")
    ready = ctx.Event()
    owner = ctx.Process(target=_hang, args=(str(tmp_path), ready))
    owner.start()
    assert ready.wait(20)
    assert len(list((tmp_path / "locks").iterdir())) == 1
    os.kill(owner.pid, signal.SIGKILL)
    owner.join(10)
    cache = StageCache(tmp_path, stale_after=600)  # only the dead owner can end the wait this soon
    start = time.monotonic()
    entry = cache.build("s", "k", lambda d: {"by": "waiter"})
    assert not entry.hit and entry.meta["by"] == "waiter"
    assert time.monotonic() - start < 5


def _foreign_marker(root: Path) -> Path:
    """A marker left by a worker on another machine (its liveness unknown here) that stopped refreshing it."""
    marker = _inflight.InFlight(root).path("s", "k")
    marker.parent.mkdir(parents=True)
    marker.write_text(json.dumps({"host": "elsewhere", "boot": "b", "pidns": "p", "pid": 1, "start": "1", "token": "t"}))
    return marker


def test_a_marker_not_refreshed_is_broken_after_the_stale_timeout(tmp_path: Path) -> None:
    _foreign_marker(tmp_path)
    cache = StageCache(tmp_path, stale_after=0.6)
    start = time.monotonic()
    entry = cache.build("s", "k", lambda d: {"by": "waiter"})
    waited = time.monotonic() - start
    assert entry.meta["by"] == "waiter"
    assert 0.6 <= waited < 5, waited
    assert not list((tmp_path / "locks").iterdir())


def test_a_waiter_takes_the_entry_another_machine_published(tmp_path: Path) -> None:
    marker = _foreign_marker(tmp_path)
    publisher = StageCache(tmp_path, dedupe=False)
    cache = StageCache(tmp_path, stale_after=600)
    real = cache.inflight.wait  # type: ignore[union-attr]
    looks: list[int] = []

    def wait(stage: str, key: str, done: Any, max_wait: float | None = None) -> Any:
        def done_after_publish() -> Any:
            looks.append(1)
            if len(looks) == 3:  # the other machine publishes while we wait (its marker is left behind)
                publisher.build("s", "k", lambda d: {"by": "other machine"})
            return done()

        return real(stage, key, done_after_publish, max_wait)

    cache.inflight.wait = wait  # type: ignore[union-attr,method-assign]
    entry = cache.build("s", "k", lambda d: pytest.fail("built again"))
    assert entry.hit and entry.meta["by"] == "other machine" and len(looks) == 3
    assert marker.exists()  # not ours to remove: it goes stale on its own


def test_a_build_inside_a_build_never_waits(tmp_path: Path) -> None:
    _foreign_marker(tmp_path)  # "s"/"k" looks busy forever (stale only after 600 s)
    cache = StageCache(tmp_path, stale_after=600)

    def outer(d: Path) -> dict:
        # holding the "o" marker, this thread must not wait for "k" (two workers nesting in opposite orders would
        # deadlock): it builds at once
        return {"inner": cache.build("s", "k", lambda d2: {"by": "nested"}).meta["by"]}

    start = time.monotonic()
    assert cache.build("s", "o", outer).meta["inner"] == "nested"
    assert time.monotonic() - start < 5
    assert not _inflight.holding()


def test_dedupe_off_takes_no_marker(tmp_path: Path) -> None:
    _foreign_marker(tmp_path)
    cache = StageCache(tmp_path, dedupe=False)
    assert cache.build("s", "k", lambda d: {"x": 1}).meta["x"] == 1


def test_a_marker_that_cannot_be_made_does_not_stop_the_build(tmp_path: Path) -> None:
    (tmp_path / "locks").write_text("not a folder")  # markers cannot be created (as on a cache folder gone odd)
    cache = StageCache(tmp_path)
    assert cache.build("s", "k", lambda d: {"x": 1}).meta["x"] == 1
