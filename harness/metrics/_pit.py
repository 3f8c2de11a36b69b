"""Permutation-invariant scoring: match estimated sources to references, then score them."""

from __future__ import annotations

import itertools

import numpy as np
from numpy.typing import ArrayLike

from harness.metrics._si_snr import si_snr

__all__ = ["best_permutation", "si_snri"]


def best_permutation(
    estimates: ArrayLike, references: ArrayLike, *, eps: float = 1e-8, relative: bool = False
) -> tuple[int, ...]:
    """Find the assignment of estimates to references that maximises the mean SI-SNR.

    All ``n_src!`` permutations are tried (cheap for ``n_src <= 4``); on ties the first in
    ``itertools.permutations`` order wins, so the identity is kept when nothing is better.

    Args:
        estimates: Estimated sources, shape ``[n_src, T]``.
        references: Reference sources, shape ``[n_src, T]``.
        eps, relative: Passed to :func:`~harness.metrics.si_snr`.

    Returns:
        ``perm`` such that ``estimates[list(perm)][i]`` is matched with ``references[i]``.

    Raises:
        ValueError: Shapes differ or are not ``[n_src, T]``.
    """
    est, ref = _check_pair(estimates, references)
    n_src = est.shape[0]
    # pair[i, j] = SI-SNR of estimate j against reference i
    pair = si_snr(
        np.broadcast_to(est[None, :, :], (n_src, n_src, est.shape[1])),
        np.broadcast_to(ref[:, None, :], (n_src, n_src, ref.shape[1])),
        eps,
        relative=relative,
    )
    rows = np.arange(n_src)
    best: tuple[int, ...] = tuple(range(n_src))
    best_score = -np.inf
    for perm in itertools.permutations(range(n_src)):
        score = float(pair[rows, list(perm)].mean())
        if score > best_score:
            best, best_score = perm, score
    return best


def si_snri(
    estimates: ArrayLike, references: ArrayLike, mixture: ArrayLike, *, eps: float = 1e-8, relative: bool = False
) -> np.ndarray:
    """SI-SNR improvement per source, after the best permutation.

    ``si_snr(estimates[perm], references) - si_snr(mixture, references)`` with ``perm`` from
    :func:`best_permutation`; feeding the mixture itself as every estimate gives exactly 0.

    Args:
        estimates: Estimated sources, shape ``[n_src, T]``.
        references: Reference sources, shape ``[n_src, T]``.
        mixture: The input mixture, shape ``[T]``.
        eps, relative: Passed to :func:`~harness.metrics.si_snr`.

    Returns:
        float64 ``[n_src]``, in reference order, in dB.

    Raises:
        ValueError: Shapes do not match ``[n_src, T]`` / ``[T]``.
    """
    est, ref = _check_pair(estimates, references)
    mix = np.asarray(mixture, dtype=np.float64)
    if mix.shape != ref.shape[1:]:
        raise ValueError(f"mixture shape {mix.shape}: expected [T] = {ref.shape[1:]}")
    perm = best_permutation(est, ref, eps=eps, relative=relative)
    return si_snr(est[list(perm)], ref, eps, relative=relative) - si_snr(
        np.broadcast_to(mix, ref.shape), ref, eps, relative=relative
    )


def _check_pair(estimates: ArrayLike, references: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    est = np.asarray(estimates, dtype=np.float64)
    ref = np.asarray(references, dtype=np.float64)
    if ref.ndim != 2 or ref.shape[0] < 1:
        raise ValueError(f"references shape {ref.shape}: expected [n_src, T]")
    if est.shape != ref.shape:
        raise ValueError(f"estimates shape {est.shape}: expected the references shape {ref.shape}")
    return est, ref
