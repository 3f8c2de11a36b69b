"""Scale-invariant signal-to-noise ratio (SI-SNR, a.k.a. zero-mean SI-SDR)."""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

__all__ = ["RELATIVE_EPS", "si_snr"]

#: The relative regulariser of the sweep's scoring: ``si_snr(x, x, relative=True)`` is 80.0 dB for every ``x != 0``.
RELATIVE_EPS = 1e-8


def si_snr(estimate: ArrayLike, reference: ArrayLike, eps: float = 1e-8, *, relative: bool = False) -> np.ndarray:
    """Scale-invariant SNR in dB over the last axis, batched over the leading axes.

    Both signals are made zero-mean, then, with ``<a, b>`` the inner product over the last axis::

        alpha  = (<est, ref> + eps) / (||ref||^2 + eps)
        target = alpha * ref
        noise  = est - target
        si_snr = 10 * log10((||target||^2 + eps) / (||noise||^2 + eps))

    This is the formula of torchmetrics' ``scale_invariant_signal_noise_ratio`` (including the
    ``eps`` in alpha's numerator), computed in float64. torchmetrics takes ``eps`` as the machine
    epsilon of the input dtype; pass ``eps=np.finfo(np.float32).eps`` to reproduce it bit-closely
    for float32 tensors. With ``eps=1e-8``, ``si_snr(x, x)`` is ``10*log10(||x - mean||^2 / 1e-8 + 1)``,
    a large finite number (e.g. ~80 dB for unit energy), and any rescaling of ``est`` (including a
    sign flip) gives the same value.

    With ``relative=True`` each eps is scaled by the energy of the signal it regularises, so the value is exactly
    invariant to rescaling either signal (an absolute eps swamps the energies of very quiet clips: a clip at
    -80 dBFS scores ~0 dB whatever its fidelity)::

        alpha  = <est, ref> / ((1 + eps) * ||ref||^2 + tiny)
        si_snr = 10 * log10((||target||^2 + eps * ||est||^2 + tiny) / (||noise||^2 + eps * ||est||^2 + tiny))

    (``tiny`` = 1e-300 only keeps all-zero signals finite). Then ``si_snr(x, x)`` is ``10*log10(1 + 1/eps)``
    (80.0 dB for ``eps=1e-8``) for every ``x != 0``, an estimate against a silent reference scores
    ``-10*log10(1 + 1/eps)``, and a silent estimate 0 dB.

    Args:
        estimate: Estimated signals, shape ``[..., T]``.
        reference: Reference signals, the same shape ``[..., T]``.
        eps: Regulariser that keeps silent inputs finite (absolute, or relative with ``relative=True``).
        relative: Scale eps by the signals' energies (the sweep's scoring, :mod:`harness.metrics._objective`).

    Returns:
        float64 array of shape ``[...]`` (0-d for 1-D inputs).

    Raises:
        ValueError: Shapes differ, or the inputs are 0-d or have ``T == 0``.
    """
    est = np.asarray(estimate, dtype=np.float64)
    ref = np.asarray(reference, dtype=np.float64)
    if est.shape != ref.shape:
        raise ValueError(f"estimate shape {est.shape}: expected the reference shape {ref.shape}")
    if est.ndim == 0 or est.shape[-1] == 0:
        raise ValueError(f"signal shape {est.shape}: expected [..., T] with T >= 1")
    est = est - est.mean(axis=-1, keepdims=True)
    ref = ref - ref.mean(axis=-1, keepdims=True)
    if relative:
        tiny = 1e-300
        ref_energy = np.sum(ref * ref, axis=-1, keepdims=True)
        alpha = np.sum(est * ref, axis=-1, keepdims=True) / ((1.0 + eps) * ref_energy + tiny)
        target = alpha * ref
        noise = est - target
        floor = eps * np.sum(est * est, axis=-1) + tiny
        ratio = (np.sum(target * target, axis=-1) + floor) / (np.sum(noise * noise, axis=-1) + floor)
        return np.asarray(10.0 * np.log10(ratio))
    alpha = (np.sum(est * ref, axis=-1, keepdims=True) + eps) / (np.sum(ref * ref, axis=-1, keepdims=True) + eps)
    target = alpha * ref
    noise = est - target
    ratio = (np.sum(target * target, axis=-1) + eps) / (np.sum(noise * noise, axis=-1) + eps)
    return np.asarray(10.0 * np.log10(ratio))
