"""Only a store that cannot be used becomes the one-line "unusable" error; a bug in between keeps its traceback."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from harness import sweep
from harness.errors import HarnessError
from harness.space import SearchSpace
from harness.tracking import Tracker


class _Space:
    heartbeat = SearchSpace.model_fields["heartbeat"].default
    seed = 0
    pruner = None
    source = None

    def fingerprint(self) -> dict[str, Any]:
        return {"x": 1}

    def content_fingerprint(self) -> dict[str, str]:
        return {}


def _bug(*_a: Any, **_k: Any) -> Any:
    raise TypeError("a harness bug")


def test_storage_a_bug_propagates(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("harness._heartbeat.HeartbeatStorage.__init__", _bug)
    with pytest.raises(TypeError, match="a harness bug"):
        sweep._storage(f"sqlite:///{tmp_path / 'o.db'}", _Space(), None)  # type: ignore[arg-type]


def test_storage_unreachable_or_malformed_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(HarnessError, match="unusable"):
        sweep._storage("postgresql://nobody@127.0.0.1:1/none", _Space(), None)  # type: ignore[arg-type]
    with pytest.raises(HarnessError, match="unusable"):
        sweep._storage("notadialect://x", _Space(), None)  # type: ignore[arg-type]
    with pytest.raises(HarnessError, match="unusable"):
        sweep._storage(f"sqlite:///{tmp_path / 'no' / 'such' / 'o.db'}", _Space(), None)  # type: ignore[arg-type]


def test_open_study_a_bug_propagates(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    url = f"sqlite:///{tmp_path / 'o.db'}"
    storage = sweep._storage(url, _Space(), None)  # type: ignore[arg-type]
    monkeypatch.setattr("optuna.create_study", _bug)
    with pytest.raises(TypeError, match="a harness bug"):
        sweep._open_study(_Space(), "s", storage, url)  # type: ignore[arg-type]


def test_open_study_a_storage_failure_is_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import sqlalchemy.exc

    url = f"sqlite:///{tmp_path / 'o.db'}"
    storage = sweep._storage(url, _Space(), None)  # type: ignore[arg-type]

    def locked(*_a: Any, **_k: Any) -> Any:
        raise sqlalchemy.exc.OperationalError("insert", {}, Exception("database is locked"))

    monkeypatch.setattr("optuna.create_study", locked)
    with pytest.raises(HarnessError, match="database is locked"):
        sweep._open_study(_Space(), "s", storage, url)  # type: ignore[arg-type]


def test_tracker_a_bug_propagates(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    tracker = Tracker(f"sqlite:///{tmp_path / 'm.db'}", "e", tmp_path / "artifacts")
    monkeypatch.setattr(type(tracker.client), "get_experiment_by_name", _bug)
    with pytest.raises(TypeError, match="a harness bug"):
        _ = tracker.experiment_id
    monkeypatch.setattr(Tracker, "_parent_run", _bug)
    with pytest.raises(TypeError, match="a harness bug"):
        tracker.parent_run("s", {}, {})


def test_tracker_a_store_failure_is_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from mlflow.exceptions import MlflowException

    tracker = Tracker(f"sqlite:///{tmp_path / 'm.db'}", "e", tmp_path / "artifacts")

    def refused(*_a: Any, **_k: Any) -> Any:
        raise MlflowException("API request failed: Connection refused")

    monkeypatch.setattr(type(tracker.client), "get_experiment_by_name", refused)
    with pytest.raises(HarnessError, match="Connection refused"):
        _ = tracker.experiment_id

    def lost(*_a: Any, **_k: Any) -> Any:
        raise ConnectionError("connection reset by peer")

    monkeypatch.setattr(Tracker, "_parent_run", lost)
    with pytest.raises(HarnessError, match="connection reset"):
        tracker.parent_run("s", {}, {})
