"""The MLflow 3.17 UI in headless Chromium, on a real sweep tracked through a real `mlflow server`.

What a user does to compare trials: open the study's runs table (the machine-learning view; MLflow 3 would
otherwise open a GenAI overview), see the study's parent run, expand it to its trials, show the ``si_snr_db``
column, then open a trial and find its quantized model and its WAV files in the Artifacts tab.
Every step saves a full-page screenshot (``$HEFSWEEP_ARTIFACTS_DIR``, default ``tests/browser/_screenshots/``).
Fixtures (``browser_sweep``, ``page``, ``shots``, ``check``) are in ``tests/browser/conftest.py``.
"""

from __future__ import annotations

import re
from typing import Any

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.browser]


def _exactly(text: str) -> re.Pattern[str]:
    return re.compile(rf"^\s*{re.escape(text)}\s*$")


def _close_assistant(page: Any) -> None:
    """The 'MLflow Assistant' side panel opens by itself and hides the right part of the table."""
    close = page.locator('[data-component-id="mlflow.assistant.chat_panel.close"]')
    if close.count():
        close.first.click()


def _open_runs_table(page: Any, sweep: Any) -> None:
    page.goto(sweep.runs_url(), wait_until="load")  # never "networkidle": the UI keeps polling
    page.get_by_role("link", name=sweep.parent_name, exact=True).first.wait_for()
    _close_assistant(page)


def _add_metric_column(page: Any, metric: str) -> None:
    """Columns -> search the metric -> tick exactly it (the search also highlights it inside best_si_snr_db)."""
    page.get_by_role("button", name="Columns").click()
    page.get_by_placeholder("Search columns").fill(metric)
    page.locator(".du-bois-light-tree-title").filter(has_text=_exactly(metric)).first.click()
    page.keyboard.press("Escape")
    page.locator('[role="columnheader"]').filter(has_text=_exactly(metric)).first.wait_for()


def _expander(run_id: str) -> str:
    """The +/- button before a parent run's name in the runs table."""
    return f'[role="row"][row-id="{run_id}"] button[data-component-id*="runnamecellrenderer"]'


def _cell_text(page: Any, run_id: str, col: str) -> str:
    cell = page.locator(f'[role="row"][row-id="{run_id}"] [role="gridcell"][col-id*="{col}"]').first
    cell.wait_for()
    return str(cell.inner_text()).strip()


def test_runs_table_shows_the_parent_and_its_trials_with_si_snr(
    page: Any, browser_sweep: Any, shots: Any, check: Any
) -> None:
    sweep = browser_sweep
    _open_runs_table(page, sweep)
    page.get_by_text(f"{1 + len(sweep.trials)} matching runs", exact=True).first.wait_for()  # parent + trials
    trial_links = [page.get_by_role("link", name=t.name, exact=True) for t in sweep.trials]
    check(all(link.count() == 0 for link in trial_links), "the trials should start collapsed under the parent")
    shots(page, "parent_collapsed")

    _add_metric_column(page, "si_snr_db")
    page.locator(_expander(sweep.parent_run_id)).first.click()
    for t, link in zip(sweep.trials, trial_links):
        link.first.wait_for()
        href = link.first.get_attribute("href") or ""
        check(href.endswith(f"/experiments/{sweep.experiment_id}/runs/{t.run_id}"), f"{t.name} links to {href!r}")
        shown = _cell_text(page, t.run_id, "si_snr_db")
        check(re.fullmatch(r"-?\d+(\.\d+)?", shown), f"{t.name}: the si_snr_db cell shows {shown!r}")
        assert float(shown) == pytest.approx(t.si_snr_db, rel=1e-9), f"{t.name}: UI {shown} vs MLflow {t.si_snr_db}"
    check(_cell_text(page, sweep.parent_run_id, "si_snr_db") == "-", "the parent run should have no si_snr_db")
    shots(page, "trials_expanded_si_snr_db")


def test_search_narrows_the_trials_shown_under_the_parent(
    page: Any, browser_sweep: Any, shots: Any, check: Any
) -> None:
    """A search in the runs table keeps the hierarchy: the matching trials still sit collapsed under their parent,
    which the UI adds (and counts) as context. So a user expands the parent after searching too."""
    sweep = browser_sweep
    wanted = sweep.trials[1]
    _open_runs_table(page, sweep)
    box = page.get_by_placeholder(re.compile(r"metrics\."))
    box.fill(f"tags.`hefsweep.trial` = '{wanted.number}'")
    box.press("Enter")
    page.get_by_text("2 matching runs", exact=True).first.wait_for()  # the trial + its parent
    check(page.get_by_role("link", name=wanted.name, exact=True).count() == 0, "the match should start collapsed")
    shots(page, "search_collapsed")
    page.locator(_expander(sweep.parent_run_id)).first.click()
    page.get_by_role("link", name=wanted.name, exact=True).first.wait_for()
    others = [t.name for t in sweep.trials
              if t is not wanted and page.get_by_role("link", name=t.name, exact=True).count()]  # fmt: skip
    check(not others, f"the search should hide the other trials, but the table shows {others}")
    shots(page, "search_expanded")


def test_trial_run_page_shows_metrics_model_and_wav_artifacts(
    page: Any, browser_sweep: Any, shots: Any, check: Any
) -> None:
    sweep = browser_sweep
    t = sweep.trials[0]
    page.goto(sweep.run_url(t.run_id), wait_until="load")  # the URL the trial's link in the runs table opens
    page.get_by_text("si_snr_worst_db", exact=True).first.wait_for()  # the metrics table has rendered
    _close_assistant(page)
    check(page.get_by_text(t.name, exact=True).count() >= 1, f"the page should be titled {t.name}")
    check(page.get_by_text("si_snr_db", exact=True).count() >= 1, "si_snr_db missing from the run's metrics")
    check(page.get_by_text(repr(t.si_snr_db), exact=True).count() >= 1, f"si_snr_db value {t.si_snr_db!r} not shown")
    check(page.get_by_role("link", name=sweep.parent_name, exact=True).count() >= 1, "the run should link its parent")
    shots(page, "overview")

    page.get_by_role("tab", name="Artifacts").click()
    node = lambda name: page.locator(f'[data-testid="artifact-tree-node"][artifact-name="{name}"]')  # noqa: E731
    assert list(t.artifacts["compiled"]) == ["model.qdq.onnx"], t.artifacts
    node("compiled").click()
    node("model.qdq.onnx").click()
    page.get_by_text(re.compile(r"^Path: mlflow-artifacts:.*/compiled/model\.qdq\.onnx$")).first.wait_for()
    shots(page, "artifacts_compiled_model")

    wavs = sorted(t.artifacts["audio"])  # what MLflow's API lists: the mixture + float/quantized per source, per clip
    assert len(wavs) == 3 * (1 + 2 * 2) and all(w.endswith(".wav") for w in wavs), wavs
    node("audio").click()
    for w in wavs:
        node(w).wait_for()
    mixture = next(w for w in wavs if w.endswith("_mixture.wav"))
    with page.expect_response(lambda r: "get-artifact" in r.url and mixture in r.url) as fetched:
        node(mixture).click()
    response = fetched.value
    size = int(response.headers.get("content-length", -1))
    check(response.status == 200 and response.headers.get("content-type", "").startswith("audio/")
          and size == t.artifacts["audio"][mixture],
          f"the server's artifact proxy answered {response.status} {response.headers} for {mixture}")  # fmt: skip
    page.get_by_text(re.compile(rf"^Path: mlflow-artifacts:.*/audio/{re.escape(mixture)}$")).first.wait_for()
    # The player (an <audio> inside the waveform widget's shadow root) decoded it: 4000 samples at 16 kHz.
    player = page.locator("audio").first.element_handle()
    page.wait_for_function("a => a.duration > 0", arg=player)
    duration = float(player.evaluate("a => a.duration"))
    assert duration == pytest.approx(4000 / 16000, abs=0.01), duration
    shots(page, "artifacts_audio_player")
