"""Separation metrics: SI-SNR, permutation-invariant matching/improvement, and the sweep's clip scoring."""

from __future__ import annotations

from harness.metrics._objective import ClipScore, score_clip, score_clips, si_snri_clip
from harness.metrics._pit import best_permutation, si_snri
from harness.metrics._si_snr import RELATIVE_EPS, si_snr

__all__ = [
    "RELATIVE_EPS",
    "ClipScore",
    "best_permutation",
    "score_clip",
    "score_clips",
    "si_snr",
    "si_snri",
    "si_snri_clip",
]
