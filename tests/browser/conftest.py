"""Fixtures for the browser checks: a real `mlflow server`, a small real sweep tracked through it, and Debian's
headless Chromium driven by Playwright (never Playwright's own browser download, which fails offline).

Screenshots go to ``$HEFSWEEP_ARTIFACTS_DIR`` (default ``tests/browser/_screenshots/``) so CI can keep them.
"""

from __future__ import annotations

import io
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from support.mlflow_server import MlflowServer

STUDY = "browser"
N_TRIALS = 3
# Three distinct configurations, so no trial is a cache hit of another and each logs its own artifacts.
ENQUEUE = [
    {"prelu": "keep", "norm": "gLN"},
    {"prelu": "maxmin", "norm": "gLN"},
    {"prelu": "keep", "norm": "cLN"},
]
INSTALL_HINT = (
    "install it with `make browser-deps` (= `apt-get update && apt-get install -y chromium chromium-driver` and "
    "`.venv/bin/pip install playwright`; do NOT run `playwright install`, it downloads a browser and fails offline)"
)
# The closed network refuses Chromium's background connections: keep them off (machines/python-svc.md).
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
TIMEOUT_MS = 60_000


# ----------------------------------------------------------------------------------------------- screenshots
@pytest.fixture(scope="session")
def artifacts_dir(request: pytest.FixtureRequest) -> Path:
    """Where screenshots go: ``$HEFSWEEP_ARTIFACTS_DIR`` (relative to where pytest was started) or the default."""
    env = os.environ.get("HEFSWEEP_ARTIFACTS_DIR")
    base = Path(request.config.invocation_params.dir)
    d = (base / env) if env else Path(__file__).resolve().parent / "_screenshots"
    d.mkdir(parents=True, exist_ok=True)
    return d.resolve()


def page_text(page: Any, limit: int = 1500) -> str:
    """A short excerpt of what the page shows, for failure messages."""
    try:
        text = page.inner_text("body", timeout=5_000)
    except Exception as exc:  # noqa: BLE001 - diagnostics only
        return f"<no page text: {type(exc).__name__}: {exc}>"
    text = " | ".join(line.strip() for line in text.splitlines() if line.strip())
    return text[:limit] + (" ..." if len(text) > limit else "")


class Shots:
    """Full-page screenshots, numbered in the order a test takes them."""

    def __init__(self, folder: Path, prefix: str) -> None:
        self.folder, self.prefix = folder, prefix
        self.taken: list[Path] = []

    def __call__(self, page: Any, name: str) -> Path:
        path = self.folder / f"{self.prefix}_{len(self.taken) + 1:02d}_{name}.png"
        page.screenshot(path=str(path), full_page=True)
        self.taken.append(path)
        return path


# ---------------------------------------------------------------------------------------------------- browser
@pytest.fixture(scope="session")
def chromium_executable() -> str:
    """Debian's Chromium. Missing is a failure with an install hint, never a skip (CI installs it via make)."""
    exe = os.environ.get("HEFSWEEP_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
    if not Path(exe).is_file():
        pytest.fail(f"Chromium not found (looked for $HEFSWEEP_CHROMIUM, `chromium` on PATH, /usr/bin/chromium): "
                    f"{INSTALL_HINT}", pytrace=False)  # fmt: skip
    return exe


@pytest.fixture(scope="session")
def browser(chromium_executable: str) -> Iterator[Any]:
    """One headless Chromium for the session (Playwright gives it a new empty --user-data-dir)."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail(f"the Python package playwright is not installed: {INSTALL_HINT}", pytrace=False)
    with sync_playwright() as p:
        try:
            b = p.chromium.launch(executable_path=chromium_executable, headless=True, args=CHROMIUM_ARGS)
        except Exception as exc:  # noqa: BLE001 - a one-line reason with the hint
            pytest.fail(f"Chromium at {chromium_executable} did not start ({exc}); {INSTALL_HINT}", pytrace=False)
        try:
            yield b
        finally:
            b.close()


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    rep = yield
    setattr(item, f"rep_{rep.when}", rep)
    return rep


@pytest.fixture
def shots(artifacts_dir: Path, request: pytest.FixtureRequest) -> Shots:
    """``shots(page, "step")`` saves ``<module>-<test>_NN_step.png`` (full page) in the artifacts folder."""
    module = request.node.module.__name__.rsplit(".", 1)[-1].removeprefix("test_")
    return Shots(artifacts_dir, f"{module}-{request.node.name.removeprefix('test_')}")


@pytest.fixture
def check(page: Any) -> Any:
    """``check(cond, what)``: an assert whose message carries the page's URL and an excerpt of its text."""

    def _check(cond: object, what: str) -> None:
        assert cond, f"{what}\n  url: {page.url}\n  page text: {page_text(page)}"

    return _check


@pytest.fixture
def page(browser: Any, artifacts_dir: Path, request: pytest.FixtureRequest) -> Iterator[Any]:
    """A fresh browser context and page (no state from other tests). On failure: a screenshot, the URL and an
    excerpt of the page text (shown by pytest in the test's captured output)."""
    ctx = browser.new_context(viewport={"width": 1600, "height": 1000})
    ctx.set_default_timeout(TIMEOUT_MS)
    pg = ctx.new_page()
    console: list[str] = []
    pg.on("console", lambda m: console.append(f"{m.type}: {m.text}") if m.type in ("error", "warning") else None)
    try:
        yield pg
    finally:
        rep = getattr(request.node, "rep_call", None)
        if rep is not None and rep.failed:
            shot = artifacts_dir / f"FAILED_{request.node.name}.png"
            try:
                pg.screenshot(path=str(shot), full_page=True)
            except Exception as exc:  # noqa: BLE001 - diagnostics only
                shot = Path(f"<no screenshot: {exc}>")
            print(f"\n--- browser diagnostics for {request.node.name}\nurl: {pg.url}\nscreenshot: {shot}\n"
                  f"page text: {page_text(pg, 3000)}\nconsole (last 10): {console[-10:]}")  # fmt: skip
        ctx.close()


# ------------------------------------------------------------------------------------------------ mlflow server
@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`mlflow server` on a free 127.0.0.1 port: sqlite backend store, proxied artifacts. Always stopped."""
    server = MlflowServer(tmp_path_factory.mktemp("mlflow_server"))
    server.start(timeout=90)
    try:
        yield server.url
    finally:
        server.stop()


# --------------------------------------------------------------------------------------------------- the sweep
@dataclass
class Trial:
    name: str  # the MLflow run name, trial-0000
    run_id: str
    number: int
    si_snr_db: float
    params: dict[str, str]
    artifacts: dict[str, dict[str, int]] = field(default_factory=dict)  # folder -> {file name: bytes}


@dataclass
class BrowserSweep:
    """A finished 3-trial sweep tracked through the server."""

    server: str
    root: Path
    study: str
    experiment_id: str
    parent_run_id: str
    parent_name: str
    trials: list[Trial]
    optuna_storage: str
    output: str

    def runs_url(self) -> str:
        from harness.tracking import runs_url

        return runs_url(self.server, self.experiment_id)

    def run_url(self, run_id: str) -> str:
        return f"{self.server}/#/experiments/{self.experiment_id}/runs/{run_id}"


@pytest.fixture(scope="session")
def browser_sweep(
    tiny_checkpoint: Path, demo_data: Path, mlflow_server: str, tmp_path_factory: pytest.TempPathFactory
) -> BrowserSweep:
    """A real sweep (tiny checkpoint, 3 trials, ORT backend) into a temporary root, tracked by `mlflow_server`."""
    from mlflow import MlflowClient

    from harness.space import load_space
    from harness.sweep import run_sweep

    tmp = tmp_path_factory.mktemp("browser_sweep")
    space_file = tmp / f"{STUDY}.yaml"
    space_file.write_text(f"""
study: {STUDY}
checkpoint: {tiny_checkpoint}
backend: ort
data: {{calibration: {demo_data / 'calib'}, evaluation: {demo_data / 'eval'}, eval_clips: 3, min_calibration_clips: 2}}
trials: {N_TRIALS}
stage_timeout: 120
seed: 1
dimensions:
  prelu: [keep, maxmin]
  norm: [gLN, cLN]
  width: 4000
  calib_size: 4
""")
    out = io.StringIO()
    root = tmp / "root"
    with pytest.MonkeyPatch.context() as mp:  # session scope: the per-test cwd isolation is not active yet
        mp.chdir(tmp)
        mp.delenv("MLFLOW_TRACKING_URI", raising=False)
        mp.setenv("MLFLOW_ENABLE_ASYNC_LOGGING", "false")
        summary = run_sweep(load_space(space_file), trials=N_TRIALS, root=root, tracking_uri=mlflow_server,
                            stream=out, enqueue=ENQUEUE)  # fmt: skip
    assert summary.n_trials == N_TRIALS and summary.n_ok == N_TRIALS, out.getvalue()

    client = MlflowClient(tracking_uri=mlflow_server)
    parent = client.get_run(summary.parent_run_id)
    children = client.search_runs(
        [summary.experiment_id], f"tags.mlflow.parentRunId = '{summary.parent_run_id}'", max_results=100
    )
    trials = []
    for r in sorted(children, key=lambda r: int(r.data.tags["hefsweep.trial"])):
        arts = {
            folder: {a.path.split("/", 1)[1]: int(a.file_size) for a in client.list_artifacts(r.info.run_id, folder)}
            for folder in ("compiled", "audio")
        }
        trials.append(Trial(r.info.run_name, r.info.run_id, int(r.data.tags["hefsweep.trial"]),
                            r.data.metrics["si_snr_db"], dict(r.data.params), arts))  # fmt: skip
    assert [t.name for t in trials] == [f"trial-{i:04d}" for i in range(N_TRIALS)], [t.name for t in trials]
    return BrowserSweep(
        server=mlflow_server,
        root=root,
        study=STUDY,
        experiment_id=summary.experiment_id,
        parent_run_id=summary.parent_run_id,
        parent_name=parent.info.run_name,
        trials=trials,
        optuna_storage=f"sqlite:///{root / 'optuna.db'}",
        output=out.getvalue(),
    )
