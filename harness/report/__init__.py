"""``hefsweep report``: one self-contained HTML page about a study, also logged to its parent MLflow run.

Sections (each a plot drawn by Optuna's visualization module or plotly, never by hand, plus tables):

- ``history``: Optuna's optimization history (infeasible trials are recorded at -50 dB and drawn below the axis).
- ``importance``: Optuna's parameter importances for SI-SNR over successful trials, and for the constraint
  violation over all finished trials (both need enough trials that differ; otherwise the section says so).
- ``variants``: SI-SNR (``si_snr_db``) of successful trials per model variant (prelu x norm), grouped by
  calibration fill policy.
- ``loss``: where each successful trial's SI-SNR goes: the substitution loss (``substitution_si_snr_db``, substituted
  vs original float) against the quantization loss (``quant_si_snr_db``, quantized vs substituted float), colored by
  the objective (``si_snr_db``, quantized vs original float), plus a table per trial.
- ``failures``: failure signatures -- count, stage, first and last trial, a run link -- and a scatter of trial
  number vs outcome.
- ``feasibility``: two parameters against each other, each finished trial colored by its constraint violation
  (Optuna's ``trial.constraints``; feasible means every constraint <= 0).
- ``best``: the best feasible trials with links to their MLflow runs (``<ui>/#/experiments/<id>/runs/<run>``).
- ``frontier`` (``mode: frontier`` studies only): the capacity frontier (:mod:`harness.report._frontier`).

The plotly library is inlined once (the first plot), so the file opens offline.

What lives where:

- ``_data.py``: :class:`TrialRow` and :func:`collect_trials` (Optuna trials joined with their MLflow runs), loading
  the study and the runs, :func:`run_url` and :func:`default_report_dir`.
- ``_figures.py``: one function per plot (history, importances, variants, loss, signatures, feasibility).
- ``_tables.py``: the HTML tables (loss decomposition, failure signatures, best trials).
- ``_frontier.py``: the ``frontier`` section of ``mode: frontier`` studies (its figure and table).
- ``_html.py``: :func:`build_report` and :class:`ReportResult`: the sections assembled into one page, logged to MLflow.
"""

from __future__ import annotations

from harness.report._data import DEFAULT_UI, TrialRow, collect_trials, default_report_dir, run_url
from harness.report._html import SECTIONS, ReportResult, build_report

__all__ = [
    "DEFAULT_UI", "SECTIONS", "ReportResult", "TrialRow", "build_report", "collect_trials", "default_report_dir", "run_url",
]  # fmt: skip
