"""harness/tracking.py: background writes land whole and in order once flushed; a failed upload is raised by flush
(the rest still written); the local sqlite store runs in WAL mode."""

from __future__ import annotations

import sqlite3
import tempfile
import threading
from pathlib import Path
from typing import Any

import pytest

from harness.tracking import Tracker, default_tracking_uri


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One MLflow store for the module (creating one costs seconds); each test has an experiment of its own."""
    return tmp_path_factory.mktemp("mlruns")


_N = [0]


def _tracker(root: Path, background: bool = True) -> Tracker:
    _N[0] += 1
    return Tracker(default_tracking_uri(root), f"exp{_N[0]}", root / "artifacts", background=background)


def _artifacts(tracker: Tracker, run_id: str) -> set[str]:
    return {f.path for f in tracker.client.list_artifacts(run_id)}


@pytest.mark.parametrize("background", [True, False])
def test_a_trials_writes_are_all_there_after_flush(store: Path, tmp_path: Path, background: bool) -> None:
    tracker = _tracker(store, background)
    parent = tracker.parent_run("s", {"space": "x.yaml"}, {})
    run_id = tracker.child_run(parent, "trial-0000", {"prelu": "keep", "nested": {"a": 1}}, {"hefsweep.trial": "0"})
    model = tmp_path / "model.onnx"
    model.write_bytes(b"onnx")
    tracker.log_metrics(run_id, {"screen_si_snr_db": 3.0})
    tracker.set_tags(run_id, {"hefsweep.status": "running"})
    tracker.log_result(run_id, {"hefsweep.status": "ok"}, {"si_snr_db": 20.5, "nan": float("nan")},
                       [(model, "export", None), ('{"a": 1}', None, "trial.json")])  # fmt: skip
    tracker.end(run_id, "FINISHED")
    model.unlink()  # staged when logged: the caller may remove its files at once
    tracker.flush()
    run = tracker.client.get_run(run_id)
    assert run.info.status == "FINISHED"
    assert run.data.params == {"prelu": "keep", "nested.a": "1"}
    assert run.data.metrics == {"screen_si_snr_db": 3.0, "si_snr_db": 20.5}
    assert run.data.tags["hefsweep.status"] == "ok"  # the later write wins: submission order kept
    assert _artifacts(tracker, run_id) == {"export", "trial.json"}
    assert {f.path for f in tracker.client.list_artifacts(run_id, "export")} == {"export/model.onnx"}
    tracker.close()


def test_writes_leave_the_callers_thread(store: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    tracker = _tracker(store)
    run_id = tracker.child_run(tracker.parent_run("s", {}, {}), "t", {}, {})
    gate = threading.Event()
    real = tracker.client.log_batch

    def slow(*args: Any, **kwargs: Any) -> Any:
        assert gate.wait(10)
        return real(*args, **kwargs)

    monkeypatch.setattr(tracker.client, "log_batch", slow)
    tracker.log_result(run_id, {"hefsweep.status": "ok"}, {"m": 1.0}, [])
    tracker.end(run_id)
    assert tracker.client.get_run(run_id).info.status == "RUNNING"  # returned before the store was written
    gate.set()
    tracker.flush()
    run = tracker.client.get_run(run_id)
    assert run.info.status == "FINISHED" and run.data.metrics == {"m": 1.0}


def test_a_failed_upload_is_raised_by_flush_and_the_rest_is_written(store: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    tracker = _tracker(store)
    run_id = tracker.child_run(tracker.parent_run("s", {}, {}), "t", {}, {})
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # where the upload is staged

    def full(*args: Any, **kwargs: Any) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(tracker.client, "log_artifacts", full)
    tracker.log_result(run_id, {"hefsweep.status": "ok"}, {"m": 2.0}, [("text", None, "a.txt")])
    tracker.end(run_id, "FINISHED")
    with pytest.raises(OSError, match="No space left"):
        tracker.flush()
    run = tracker.client.get_run(run_id)
    assert run.info.status == "FINISHED" and run.data.metrics == {"m": 2.0}
    tracker.flush()  # raised once: nothing pending any more
    assert not list(tmp_path.glob("hefsweep-artifacts-*"))  # the staging folder is removed all the same


def test_the_local_store_is_in_wal_mode(store: Path, tmp_path: Path) -> None:
    tracker = _tracker(store, background=False)
    tracker.parent_run("s", {}, {})
    with sqlite3.connect(store / "mlflow.db") as con:
        assert con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
