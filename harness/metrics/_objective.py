"""The sweep's scoring of separated clips: true length, relative eps, best permutation per clip.

Every comparison the sweep logs (quantized vs the original float model -- the objective --, substituted float vs
original float, quantized vs substituted float, and SI-SNRi against clean sources) goes through
:func:`score_clip` / :func:`score_clips`, so the pruner, the logged metrics, ``metrics/per_clip.json`` and
``hefsweep promote`` all compute the same number:

- **true length**: only the first ``length`` samples of a clip are scored (``EvalSet.lengths``); the zero padding
  that fits a short file to ``W`` (and whatever a model writes there) does not count;
- **relative eps**: :func:`~harness.metrics.si_snr` with ``relative=True``, so a quiet clip scores like a loud one
  (an absolute eps dominates the energies of very quiet outputs and pulls them towards 0 dB);
- **permutation invariance**: the estimates are matched to the references by the best permutation of the clip
  (:func:`~harness.metrics.best_permutation`), since quantization or a substitution can change the source order.
"""

from __future__ import annotations

from dataclasses import dataclass
from collections.abc import Sequence

import numpy as np
from numpy.typing import ArrayLike

from harness.metrics._pit import best_permutation
from harness.metrics._si_snr import RELATIVE_EPS, si_snr

__all__ = ["ClipScore", "score_clip", "score_clips", "si_snri_clip"]


@dataclass(frozen=True)
class ClipScore:
    """One clip's score.

    Attributes:
        si_snr_db: Mean over sources of the per-source SI-SNR after the best permutation, in dB.
        per_source_db: SI-SNR per reference source (reference order), in dB.
        perm: ``estimates[list(perm)][i]`` is matched with ``references[i]``.
    """

    si_snr_db: float
    per_source_db: tuple[float, ...]
    perm: tuple[int, ...]


def _trim(x: ArrayLike, length: int | None, what: str) -> np.ndarray:
    arr = np.asarray(x, dtype=np.float64)
    if length is None:
        return arr
    if not 1 <= length <= arr.shape[-1]:
        raise ValueError(f"{what} length {length}: expected 1 <= length <= T = {arr.shape[-1]}")
    return arr[..., :length]


def score_clip(
    estimates: ArrayLike, references: ArrayLike, length: int | None = None, *, eps: float = RELATIVE_EPS
) -> ClipScore:
    """SI-SNR of one clip's estimated sources against its reference sources.

    Args:
        estimates: ``[n_src, T]``.
        references: ``[n_src, T]``.
        length: Score only the first ``length`` samples (the clip's true length); ``None``: all ``T``.
        eps: Relative regulariser (see :func:`~harness.metrics.si_snr`, ``relative=True``).

    Raises:
        ValueError: Shapes are not both ``[n_src, T]``, or ``length`` is outside ``1..T``.
    """
    est, ref = _trim(estimates, length, "clip"), _trim(references, length, "clip")
    perm = best_permutation(est, ref, eps=eps, relative=True)
    per_source = si_snr(est[list(perm)], ref, eps=eps, relative=True)
    return ClipScore(float(per_source.mean()), tuple(float(v) for v in per_source), tuple(int(p) for p in perm))


def score_clips(
    estimates: ArrayLike,
    references: ArrayLike,
    lengths: Sequence[int] | None = None,
    *,
    eps: float = RELATIVE_EPS,
) -> list[ClipScore]:
    """:func:`score_clip` for every clip of a batch.

    Args:
        estimates: ``[n, n_src, T]`` (or the model's ``[n, n_src, 1, T]``).
        references: The same shape.
        lengths: True length of each clip (``None``: all ``T``).

    Raises:
        ValueError: Shapes differ, or ``lengths`` has the wrong number of entries.
    """
    est, ref = np.asarray(estimates), np.asarray(references)
    if est.ndim == 4:
        est = est[:, :, 0, :]
    if ref.ndim == 4:
        ref = ref[:, :, 0, :]
    if est.shape != ref.shape or est.ndim != 3:
        raise ValueError(f"estimates shape {est.shape}: expected the references shape {ref.shape}, [n, n_src, T]")
    if lengths is not None and len(lengths) != len(est):
        raise ValueError(f"{len(lengths)} lengths: expected one per clip ({len(est)})")
    return [score_clip(est[i], ref[i], None if lengths is None else int(lengths[i]), eps=eps) for i in range(len(est))]


def si_snri_clip(
    estimates: ArrayLike,
    sources: ArrayLike,
    mixture: ArrayLike,
    length: int | None = None,
    *,
    eps: float = RELATIVE_EPS,
) -> float:
    """Mean SI-SNR improvement of one clip over its mixture against the clean sources (best permutation, true
    length, relative eps), in dB."""
    from harness.metrics._pit import si_snri

    est, src = _trim(estimates, length, "clip"), _trim(sources, length, "clip")
    mix = _trim(mixture, length, "clip")
    return float(si_snri(est, src, mix, eps=eps, relative=True).mean())
