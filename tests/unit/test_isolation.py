from __future__ import annotations

from pathlib import Path

import pytest

from harness.isolation import IsolatedFailure, run_isolated


def test_value_and_log(tmp_path: Path) -> None:
    log = tmp_path / "s.log"
    res = run_isolated("harness.testing:echo", {"a": [1, 2]}, timeout=60, log_path=log)
    assert res.value == {"a": [1, 2]}
    assert res.peak_rss_mb > 1
    assert "echo {'a': [1, 2]}" in log.read_text()


def test_exception_class_and_message_cross_the_boundary(tmp_path: Path) -> None:
    with pytest.raises(IsolatedFailure) as err:
        run_isolated(
            "harness.testing:raise_error", "NegativeSlopeExponentNonFixable", "Desired shift is 10.0", timeout=60
        )
    assert err.value.exc_class == "NegativeSlopeExponentNonFixable"
    assert err.value.message == "Desired shift is 10.0"
    assert "Traceback" in err.value.traceback


def test_timeout_kills_the_child() -> None:
    with pytest.raises(IsolatedFailure) as err:
        run_isolated("harness.testing:hang", timeout=2)
    assert err.value.exc_class == "Timeout"
    assert 2 <= err.value.seconds < 30


def test_segfault_becomes_crash() -> None:
    with pytest.raises(IsolatedFailure) as err:
        run_isolated("harness.testing:crash_segfault", timeout=60)
    assert err.value.exc_class == "Crash"
    assert "SIGSEGV" in err.value.message


def test_exit_without_result(tmp_path: Path) -> None:
    log = tmp_path / "x.log"
    with pytest.raises(IsolatedFailure) as err:
        run_isolated("harness.testing:write_then_crash", str(log), timeout=60, log_path=log)
    assert err.value.exc_class == "Crash"
    assert "code 3" in err.value.message
    assert "about to die" in log.read_text()


def test_worker_is_reused_and_replaced_after_a_crash(tmp_path: Path) -> None:
    from harness.isolation import Worker

    with Worker() as w:
        a = w.call("os:getpid", timeout=60).value
        b = w.call("os:getpid", timeout=60).value
        assert a == b  # one process serves consecutive calls
        with pytest.raises(IsolatedFailure, match="SIGSEGV"):
            w.call("harness.testing:crash_segfault", timeout=60)
        c = w.call("os:getpid", timeout=60).value
        assert c != a  # a fresh worker after the crash
        with pytest.raises(IsolatedFailure) as err:
            w.call("harness.testing:hang", timeout=1)
        assert err.value.exc_class == "Timeout"
        assert w.call("harness.testing:echo", 5, timeout=60).value == 5


def test_worker_recycles_after_max_calls() -> None:
    from harness.isolation import Worker

    with Worker(max_calls=2) as w:
        pids = [w.call("os:getpid", timeout=60).value for _ in range(4)]
    assert pids[0] == pids[1] != pids[2] == pids[3]
