"""Audio input for the sweep: reading files and array files (resampled with soxr on request), calibration sets,
evaluation sets (hefsweep's and LibriMix's layouts), synthetic data.

Every unusable file or folder raises :class:`harness.errors.AudioError` naming the path, what was
seen and what was expected, on one line.
"""

from __future__ import annotations

from harness.audio._calibration import MANIFEST_FORMAT, CalibrationSet, build_calibration_set
from harness.audio._evalset import EvalSet, load_eval_set
from harness.audio._fill import FILL_POLICIES, FillPolicy, FillPolicyError, fit_length
from harness.audio._io import AUDIO_SUFFIXES, SILENCE_PEAK, list_audio, read_audio
from harness.audio._sources import ARRAY_SUFFIXES, LIBRIMIX_MIXES, CalibrationData, EvaluationData, Signal, load_array
from harness.audio._synth import VOICES, Voice, make_demo_dataset, speech_like, synth_mixture

__all__ = [
    "ARRAY_SUFFIXES",
    "AUDIO_SUFFIXES",
    "FILL_POLICIES",
    "LIBRIMIX_MIXES",
    "MANIFEST_FORMAT",
    "SILENCE_PEAK",
    "VOICES",
    "CalibrationData",
    "CalibrationSet",
    "EvalSet",
    "EvaluationData",
    "FillPolicy",
    "FillPolicyError",
    "Signal",
    "Voice",
    "build_calibration_set",
    "fit_length",
    "list_audio",
    "load_array",
    "load_eval_set",
    "make_demo_dataset",
    "read_audio",
    "speech_like",
    "synth_mixture",
]
