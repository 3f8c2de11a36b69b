"""The sweep: an Optuna study whose trials run the pipeline and log to MLflow.

One place decides a trial's fate (:func:`_grade`): a trial whose every stage passed returns its mean SI-SNR (the
objective, maximised); a trial whose stage failed is recorded as a COMPLETE trial with a graded constraint
violation (:mod:`harness.feasibility`) so that the sampler learns where the feasible region ends, with its
failure signature in the trial's user attributes and in its MLflow run (``hefsweep.status=failed``,
``hefsweep.signature``), and follow-up trials are enqueued from :mod:`harness.followups`. Neither ends the sweep.

Crash safety: the Optuna storage is an RDB storage with heartbeats. A trial whose worker dies (SIGKILL, a lost
machine) stops heartbeating; the next worker to start a trial fails it, ends its MLflow run as KILLED and
enqueues a retry (``RetryHeartbeatStaleTrialCallback``); a trial that never heartbeated is stale too, and so at
once is a trial whose recorded owner process on this machine is gone (:mod:`harness._heartbeat`): a sweep resumed
right after a SIGKILL retries the killed trial first. An interrupted trial's MLflow run is ended as KILLED too.
Any number of workers (``hefsweep worker``) on any number of machines can share one study through a PostgreSQL
storage and an MLflow tracking server.

What lives where (import from ``harness.sweep``; the modules are private):

- ``_storage.py``: the Optuna storage -- :func:`default_storage`, ``_storage`` (RDB storage with heartbeats; a
  stale trial's run ended KILLED and the trial retried; ``_retry_of``), :func:`is_storage_error` and the one-line
  errors of an unusable storage (``_storage_error``, a database holding MLflow's tables named as such) or of one
  that fills up under the sweep (``_sweep_error``).
- ``_study.py``: ``_open_study`` (create or open, the fingerprint check, ``_inputs_changed``), ``_pruner``,
  :func:`study_summary`, :func:`study_space_file`.
- ``_suggest.py``: :func:`suggest`, ``_searched``, ``_enqueue`` (once across workers, under the enqueue lock).
- ``_grade.py``: :func:`decide` and ``_grade`` (constraints, objective value, follow-up trials), the compile gate
  and the screen (``_in_top_k``, ``_screened_out``), ``mode: frontier``'s capacity point.
- ``_display.py``: ``_Display``, the live progress lines.
- ``_runs.py``: what a trial's MLflow run gets (``_log_result``, ``_record_error``, ``_settle``).
- ``_summary.py``: :class:`SweepSummary` and the parent run's summary (``_log_summary``).
- ``_run.py``: :func:`run_sweep`, the run loop.
"""

from __future__ import annotations

# Private names are re-exported too: the tests import them from here.
from harness.sweep._display import _Display
from harness.sweep._grade import _grade, decide
from harness.sweep._run import run_sweep
from harness.sweep._runs import _log_result
from harness.sweep._storage import _storage, default_storage, is_storage_error
from harness.sweep._study import _open_study, study_space_file, study_summary
from harness.sweep._suggest import suggest
from harness.sweep._summary import SweepSummary

__all__ = [
    "SweepSummary", "decide", "default_storage", "is_storage_error", "run_sweep", "study_space_file", "study_summary",
    "suggest",
]  # fmt: skip
