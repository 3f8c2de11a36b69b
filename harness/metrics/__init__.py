"""Separation metrics: SI-SNR, and permutation-invariant matching/improvement built on it."""

from __future__ import annotations

from harness.metrics._pit import best_permutation, si_snri
from harness.metrics._si_snr import si_snr

__all__ = ["best_permutation", "si_snr", "si_snri"]
