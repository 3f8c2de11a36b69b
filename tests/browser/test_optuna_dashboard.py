"""The sweep's Optuna storage opens unchanged in optuna-dashboard.

The API is called in-process through ``optuna_dashboard.wsgi(storage)`` (a plain WSGI app, no server); the page is
then rendered by headless Chromium from the same app served by ``wsgiref`` on a free port in a thread.
Fixtures (``browser_sweep``, ``page``, ``shots``, ``check``) are in ``tests/browser/conftest.py``.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Iterator
from pathlib import Path
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server
from wsgiref.util import setup_testing_defaults

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.browser]


def _dashboard_app(storage: str) -> Any:
    try:
        import optuna_dashboard
    except ImportError:
        pytest.fail("optuna-dashboard is not installed: `.venv/bin/pip install optuna-dashboard` (make browser-deps)",
                    pytrace=False)  # fmt: skip
    return optuna_dashboard.wsgi(storage)


def _get(app: Any, path: str) -> tuple[int, dict[str, str], bytes]:
    """One GET through a WSGI app: (status code, headers, body)."""
    environ: dict[str, Any] = {"PATH_INFO": path, "REQUEST_METHOD": "GET", "QUERY_STRING": ""}
    setup_testing_defaults(environ)
    seen: dict[str, Any] = {}

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
        seen["status"], seen["headers"] = status, dict(headers)
        return lambda data: None

    result = app(environ, start_response)
    try:
        body = b"".join(result)
    finally:
        getattr(result, "close", lambda: None)()
    return int(seen["status"].split()[0]), seen["headers"], body


def _snapshot(storage: str, study: str) -> list[tuple[Any, ...]]:
    import optuna

    trials = optuna.load_study(study_name=study, storage=storage).get_trials(deepcopy=False)
    return [(t.number, t.state.name, t.values, t.params, t.user_attrs, t.datetime_start, t.datetime_complete)
            for t in trials]  # fmt: skip


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_dashboard_api_lists_the_study_and_its_trials(browser_sweep: Any) -> None:
    import optuna

    sweep = browser_sweep
    db = sweep.root / "optuna.db"
    before, digest = _snapshot(sweep.optuna_storage, sweep.study), _sha256(db)
    study = optuna.load_study(study_name=sweep.study, storage=sweep.optuna_storage)
    app = _dashboard_app(sweep.optuna_storage)

    code, headers, body = _get(app, "/api/studies")
    assert code == 200 and headers["Content-Type"].startswith("application/json"), (code, body[:300])
    summaries = {s["study_name"]: s for s in json.loads(body)["study_summaries"]}
    assert sweep.study in summaries, list(summaries)
    summary = summaries[sweep.study]
    assert summary["directions"] == ["maximize"]

    code, _, body = _get(app, f"/api/studies/{summary['study_id']}")
    assert code == 200, body[:300]
    detail = json.loads(body)
    assert detail["name"] == sweep.study
    trials = sorted(detail["trials"], key=lambda t: t["number"])
    assert [t["number"] for t in trials] == [t.number for t in study.trials] == [t.number for t in sweep.trials]
    by_run = {t.run_id: t for t in sweep.trials}
    for shown, real in zip(trials, sorted(study.trials, key=lambda t: t.number)):
        assert shown["state"] == "Complete"
        assert shown["values"] == [real.value]
        assert {p["name"]: p["param_external_value"] for p in shown["params"]} == real.params
        attrs = {a["key"]: a["value"] for a in shown["user_attrs"]}
        tracked = by_run[attrs["mlflow_run_id"]]  # the trial's MLflow run, with the same objective
        assert tracked.number == shown["number"] and tracked.si_snr_db == pytest.approx(real.value, rel=1e-12)
        assert tracked.params["prelu"] == real.params["prelu"] and tracked.params["norm"] == real.params["norm"]
    assert [t["number"] for t in detail["best_trials"]] == [study.best_trial.number]

    code, headers, body = _get(app, "/dashboard")
    assert code == 200 and headers["Content-Type"].startswith("text/html"), (code, body[:300])

    # Read-only: neither the trials nor the file changed (no migration, no write).
    assert _snapshot(sweep.optuna_storage, sweep.study) == before
    assert _sha256(db) == digest


class _ThreadingWSGIServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
        pass


@pytest.fixture
def dashboard_url(browser_sweep: Any) -> Iterator[str]:
    """optuna-dashboard on the sweep's storage, served by wsgiref on a free 127.0.0.1 port in a thread."""
    server = make_server("127.0.0.1", 0, _dashboard_app(browser_sweep.optuna_storage),
                         server_class=_ThreadingWSGIServer, handler_class=_QuietHandler)  # fmt: skip
    thread = threading.Thread(target=server.serve_forever, name="optuna-dashboard", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


def test_dashboard_page_shows_the_study_in_chromium(
    page: Any, browser_sweep: Any, dashboard_url: str, shots: Any, check: Any
) -> None:
    import optuna

    sweep = browser_sweep
    study = optuna.load_study(study_name=sweep.study, storage=sweep.optuna_storage)
    study_id = study._study_id
    page.goto(f"{dashboard_url}/dashboard/studies/{study_id}", wait_until="load")
    page.get_by_text(f"Best Trial (number={study.best_trial.number})").first.wait_for()
    check(page.get_by_text(f"{sweep.study} (id={study_id})").count() >= 1, "the page should name the study")
    best = repr(study.best_value)
    check(page.get_by_text(best, exact=True).count() >= 1, f"the best value {best} is not shown")
    page.get_by_text("Hyperparameter Importance").first.wait_for()
    shots(page, "study_overview")

    page.goto(f"{dashboard_url}/dashboard/studies/{study_id}/trials", wait_until="load")
    page.get_by_text(f"{len(sweep.trials)} Trials", exact=True).first.wait_for()
    for t in sweep.trials:
        page.get_by_text(f"Trial {t.number}", exact=True).first.wait_for()
    check(page.get_by_text(sweep.trials[0].run_id).count() >= 1, "trial 0's mlflow_run_id user attribute not shown")
    shots(page, "trials")
