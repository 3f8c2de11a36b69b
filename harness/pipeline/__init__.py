"""One trial's pipeline: export -> calibrate -> translate -> optimize -> compile -> emulate -> metrics.

Each stage is a content-hashed entry in the :class:`~harness.cache.StageCache`: its key covers its parameters
and the keys of the stages it consumes, so a trial that repeats an earlier export, calibration or
quantization reuses it instead of recomputing. optimize, compile and emulate run in isolated child processes
with the space's ``stage_timeout``. The first stage that fails ends the trial with a classified
:class:`~harness.failures.Failure`; nothing is raised to the sweep.

What lives where (import from ``harness.pipeline``; the modules are private):

- ``_trial.py``: :class:`TrialConfig`, :class:`TrialResult`, the stage names (``STAGES``) and cache-key versions
  (``_VERSIONS``), the exceptions that end a stage early (:class:`StagePruned`, ``_NoiseUnavailable``,
  ``_StageFailed``).
- ``_pipeline.py``: :class:`Pipeline` -- construction, :meth:`Pipeline.run` (the trial's result) and ``_run``
  (the stage sequence: recover, export, tiling, calibrate, original, reference, translate, optimize, compile,
  emulate, noise; ``segments > 1`` hands over to :mod:`harness.segments`), the repair loop.
- ``_inputs.py``: the shared inputs, loaded once per process (model, evaluation sets, backend versions and
  interpreter, calibration files) and ``validate_inputs`` (a mixin of :class:`Pipeline`).
- ``_runner.py``: how a stage runs -- ``_stage`` (cache build, failure classification), ``_stage_loaded``,
  ``_isolated`` (the stage worker call) and ``_stage_logs`` (log tails for a bare failure message) (a mixin).
- ``_bodies.py``: the stage bodies run in the cache's temp folder (``_export``, ``_calibrate``, ``_original``,
  ``_reference``, ``_emulate``, ``_noise``), the ``recover`` stage and the trial's tiling plan (a mixin).
- ``_alignment.py``: :func:`output_alignment` / :func:`apply_alignment` (a backend output shorter than W).
- ``_metrics.py``: :func:`original_outputs`, ``_metrics`` (the objective and its decomposition, also used by
  ``hefsweep promote``), the WAV listening pairs.
- ``_tiling.py``: time-tiling glue (``_tiling_key``, ``_tiling_metrics``, ``_Cropped``, ``_noise_inputs``).
- ``_keys.py``: key helpers (:func:`optimize_params`, :func:`compile_params`, ``_spec``, ``_candidates``) and
  ``_to_meta`` / ``_from_meta`` (backend result dataclasses <-> a stage entry's meta).
"""

from __future__ import annotations

# Private names are re-exported too: harness.segments, harness.cache, harness.bundle, harness.promote and the
# tests import them from here.
from harness.pipeline._alignment import apply_alignment, output_alignment
from harness.pipeline._keys import _candidates, _from_meta, _spec, _to_meta, compile_params, optimize_params
from harness.pipeline._metrics import _LISTEN_CLIPS, _metrics, _write_listening_pairs, original_outputs
from harness.pipeline._pipeline import Pipeline
from harness.pipeline._runner import _LOG_TAIL, _TOOL_LOGS, _stage_logs, log
from harness.pipeline._tiling import _Cropped, _noise_inputs, _tiling_key, _tiling_metrics
from harness.pipeline._trial import (
    _CLIPS_PER_CALL,
    _VERSIONS,
    STAGES,
    StagePruned,
    TrialConfig,
    TrialResult,
    _NoiseUnavailable,
    _StageFailed,
)

__all__ = [
    "STAGES",
    "Pipeline",
    "StagePruned",
    "TrialConfig",
    "TrialResult",
    "apply_alignment",
    "compile_params",
    "optimize_params",
    "original_outputs",
    "output_alignment",
]
