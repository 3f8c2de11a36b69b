"""Optuna pointed at the database MLflow uses (an easy slip with one PostgreSQL server): one line saying the
database holds MLflow's tables, not Optuna's "try updating optuna"."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness import sweep
from harness.errors import HarnessError
from harness.space import SearchSpace

PG = "postgresql://postgres@127.0.0.1:5432"


class _Space:
    heartbeat = SearchSpace.model_fields["heartbeat"].default


@pytest.fixture
def pg_database() -> Iterator[str]:
    """A fresh database on the local PostgreSQL server, dropped afterwards."""
    psycopg = pytest.importorskip("psycopg")
    try:
        admin = psycopg.connect(f"{PG}/test", autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as exc:
        pytest.fail(f"the machine's PostgreSQL (127.0.0.1:5432) is required for this test: {exc}")
    name = f"hefsweep_shared_{uuid.uuid4().hex[:8]}"
    admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"{PG}/{name}"
    finally:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


def _mlflow_store(url: str) -> None:
    from mlflow import MlflowClient

    MlflowClient(tracking_uri=url).search_experiments()  # creates MLflow's tables


def test_optuna_on_mlflows_postgresql_database(pg_database: str) -> None:
    _mlflow_store(pg_database)
    with pytest.raises(HarnessError) as err:
        sweep._storage(pg_database, _Space(), None)  # type: ignore[arg-type]
    text = str(err.value)
    name = pg_database.rsplit("/", 1)[1]
    assert text.startswith(f"Optuna storage 127.0.0.1:5432/{name}: the database holds MLflow's tables (")
    assert "experiments" in text and "runs" in text and "; expected a database of its own for Optuna" in text
    assert "updating optuna" not in text and "\n" not in text


def test_optuna_on_mlflows_sqlite_file(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'mlflow.db'}"
    _mlflow_store(url)
    with pytest.raises(HarnessError, match=r"the database holds MLflow's tables \(.*experiments.*\); expected a "):
        sweep._storage(url, _Space(), None)  # type: ignore[arg-type]


def test_other_schema_errors_keep_their_message(tmp_path: Path) -> None:
    import sqlite3

    db = tmp_path / "other.db"  # another program's alembic_version, no MLflow tables
    with sqlite3.connect(db) as con:
        con.execute("CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL)")
        con.execute("INSERT INTO alembic_version VALUES ('abc123')")
    with pytest.raises(HarnessError) as err:
        sweep._storage(f"sqlite:///{db}", _Space(), None)  # type: ignore[arg-type]
    assert "unusable" in str(err.value) and "MLflow" not in str(err.value)
