"""harness/_heartbeat.py: no RUNNING trial escapes the heartbeat reaper."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import optuna
import pytest
from optuna.storages import RDBStorage
from optuna.trial import TrialState

from harness import _heartbeat
from harness._heartbeat import HeartbeatStorage


def _rows(db: Path) -> set[int]:
    with sqlite3.connect(db) as con:
        return {r[0] for r in con.execute("select trial_id from trial_heartbeats")}


def test_ask_writes_the_heartbeat_row_before_it_returns(tmp_path: Path) -> None:
    db = tmp_path / "o.db"
    storage = HeartbeatStorage(f"sqlite:///{db}", heartbeat_interval=1, grace_period=2)
    study = optuna.create_study(study_name="s", storage=storage)
    study.enqueue_trial({"x": 1.0})
    waiting = study.ask()  # a WAITING trial made RUNNING
    fresh = study.ask()  # a new trial created RUNNING
    assert _rows(db) == {waiting._trial_id, fresh._trial_id}

    plain = optuna.create_study(study_name="p", storage=RDBStorage(f"sqlite:///{tmp_path / 'p.db'}",
                                                                   heartbeat_interval=1, grace_period=2))  # fmt: skip
    plain.ask()
    assert _rows(tmp_path / "p.db") == set()  # Optuna's own storage: no row until a heartbeat thread writes one


def test_running_trial_without_a_row_goes_stale_after_the_grace_period(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"sqlite:///{tmp_path / 'o.db'}"
    foreign = optuna.create_study(study_name="s", storage=RDBStorage(url, heartbeat_interval=1, grace_period=2))
    silent = foreign.ask()._trial_id  # a process on the plain storage died here: no heartbeat row, ever
    alive = foreign.ask()._trial_id  # this one's worker lives and heartbeats later
    storage = HeartbeatStorage(url, heartbeat_interval=1, grace_period=2)
    study_id = foreign._study_id
    assert RDBStorage(url, heartbeat_interval=1, grace_period=2)._get_stale_trial_ids(study_id) == []  # Optuna: never

    clock = [1000.0]
    monkeypatch.setattr(_heartbeat.time, "monotonic", lambda: clock[0])
    assert storage._get_stale_trial_ids(study_id) == []  # first seen now
    clock[0] += 1.5
    storage.record_heartbeat(alive)
    assert storage._get_stale_trial_ids(study_id) == []  # within the grace period
    clock[0] += 1.0  # 2.5 s since first seen > grace 2 s
    assert storage._get_stale_trial_ids(study_id) == [silent]  # the one with a heartbeat is not


def test_fail_stale_trials_fails_and_retries_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    url = f"sqlite:///{tmp_path / 'o.db'}"
    optuna.create_study(study_name="s", storage=RDBStorage(url)).ask()
    retried: list[int] = []
    storage = HeartbeatStorage(url, heartbeat_interval=1, grace_period=2,
                               heartbeat_stale_trial_callback=lambda study, t: retried.append(t.number))  # fmt: skip
    study = optuna.load_study(study_name="s", storage=storage)
    clock = [0.0]
    monkeypatch.setattr(_heartbeat.time, "monotonic", lambda: clock[0])
    optuna.storages.fail_stale_trials(study)
    clock[0] = 3.0
    optuna.storages.fail_stale_trials(study)
    assert [t.state for t in study.trials] == [TrialState.FAIL] and retried == [0]


def test_a_running_trial_whose_owner_process_is_gone_is_stale_at_once(tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    url = f"sqlite:///{tmp_path / 'o.db'}"
    storage = HeartbeatStorage(url, heartbeat_interval=10, grace_period=600)
    study = optuna.create_study(study_name="s", storage=storage)
    mine = study.ask()._trial_id
    me = storage.get_trial(mine).user_attrs[_heartbeat.OWNER_ATTR]
    assert me == _heartbeat.owner() and me["pid"] == os.getpid()

    dead_proc = subprocess.Popen([sys.executable, "-c", "pass"])
    dead_proc.wait()

    def running(owner: object) -> int:
        tid = study.ask()._trial_id
        storage.set_trial_user_attr(tid, _heartbeat.OWNER_ATTR, owner)
        return tid

    dead = running({**me, "pid": dead_proc.pid})
    reused = running({**me, "start": str(int(me["start"]) - 1)})  # this pid, but another process's start time
    remote = running({**me, "host": "elsewhere", "pid": dead_proc.pid})  # another machine: the grace period decides
    rebooted = running({**me, "boot": "another-boot", "pid": dead_proc.pid})
    garbled = running("not an owner")
    assert sorted(storage._get_stale_trial_ids(study._study_id)) == sorted([dead, reused])
    assert {mine, remote, rebooted, garbled}.isdisjoint(storage._get_stale_trial_ids(study._study_id))

    # a WAITING trial made RUNNING records its new owner (a retry does not keep the dead one's)
    study.enqueue_trial({"x": 1.0}, user_attrs={_heartbeat.OWNER_ATTR: {**me, "pid": dead_proc.pid}})
    popped = study.ask()._trial_id
    assert storage.get_trial(popped).user_attrs[_heartbeat.OWNER_ATTR] == me


def test_the_storage_lock_serialises_processes_of_a_sqlite_storage(tmp_path: Path) -> None:
    import subprocess
    import sys
    import time

    url = f"sqlite:///{tmp_path / 'o.db'}"
    storage = HeartbeatStorage(url, heartbeat_interval=1, grace_period=2)
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time\nfrom harness._heartbeat import HeartbeatStorage\n"
         "with HeartbeatStorage(sys.argv[1], heartbeat_interval=1, grace_period=2).lock('x'):\n"
         "    print('held', flush=True)\n    time.sleep(1.5)\n", url],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
    t0 = time.monotonic()
    with storage.lock("x"):
        waited = time.monotonic() - t0
    with storage.lock("y"):  # another name: no wait
        pass
    holder.wait(10)
    assert waited > 0.8


def _commits(storage: HeartbeatStorage) -> list[int]:
    """Transactions that write (a read's session commits too, writing nothing)."""
    from sqlalchemy import event

    seen: list[int] = []
    writing = [False]

    def execute(conn: object, cursor: object, statement: str, *args: object) -> None:
        writing[0] |= statement.lstrip().split(" ", 1)[0].upper() in ("INSERT", "UPDATE", "DELETE")

    def commit(conn: object) -> None:
        if writing[0]:
            seen.append(1)
        writing[0] = False

    event.listen(storage.engine, "before_cursor_execute", execute)
    event.listen(storage.engine, "commit", commit)
    return seen


def test_deferred_attributes_are_written_with_the_trials_end_in_one_write(tmp_path: Path) -> None:
    db = tmp_path / "o.db"
    storage = HeartbeatStorage(f"sqlite:///{db}", heartbeat_interval=60, defer_attrs=True)
    study = optuna.create_study(study_name="s", storage=storage)
    trial = study.ask()
    commits = _commits(storage)
    trial.set_user_attr("status", "ok")
    trial.set_user_attr("signature", "optimize:X:y")
    trial.set_constraint("failure", 0.0)
    trial.set_user_attr("mlflow_run_id", "r1")  # read by other processes while the trial runs: written at once
    assert len(commits) == 1
    # this process reads what it set; another process (a plain storage) sees only what is written
    assert storage.get_trial(trial._trial_id).user_attrs["status"] == "ok"
    other = RDBStorage(f"sqlite:///{db}")
    assert set(other.get_trial(trial._trial_id).user_attrs) == {"mlflow_run_id", _heartbeat.OWNER_ATTR}
    study.tell(trial, 1.5)
    assert len(commits) == 2  # the end and every deferred attribute: one transaction
    done = other.get_trial(trial._trial_id)
    assert done.state == TrialState.COMPLETE and done.value == 1.5
    assert done.user_attrs["status"] == "ok" and done.user_attrs["signature"] == "optimize:X:y"
    assert done.system_attrs["constraints:failure"] == 0.0
    # a failing trial keeps its attributes too; a trial this process did not start is written through
    failing = study.ask()
    failing.set_user_attr("status", "failed")
    study.tell(failing, state=TrialState.FAIL)
    assert other.get_trial(failing._trial_id).user_attrs["status"] == "failed"
    assert not storage._deferred


def test_without_defer_every_attribute_is_written_at_once(tmp_path: Path) -> None:
    storage = HeartbeatStorage(f"sqlite:///{tmp_path / 'o.db'}", heartbeat_interval=60)
    study = optuna.create_study(study_name="s", storage=storage)
    trial = study.ask()
    commits = _commits(storage)
    trial.set_user_attr("status", "ok")
    trial.set_user_attr("signature", "x")
    assert len(commits) == 2
