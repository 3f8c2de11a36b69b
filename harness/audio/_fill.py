"""Fitting a clip onto the model's fixed input width W."""

from __future__ import annotations

from typing import Literal

import numpy as np

__all__ = ["FILL_POLICIES", "FillPolicy", "FillPolicyError", "fit_length"]

FillPolicy = Literal["pad", "repeat", "crop"]

#: The policies :func:`fit_length` accepts.
FILL_POLICIES: tuple[str, ...] = ("pad", "repeat", "crop")


class FillPolicyError(ValueError):
    """A clip is shorter than W under policy ``"crop"``, which can only shorten clips."""


def fit_length(x: np.ndarray, width: int, policy: str) -> np.ndarray:
    """Map a clip onto the model input width ``W``.

    - Equal length: returned unchanged (the same array object).
    - Longer than ``W``: centre crop, whatever the policy; with an odd excess the extra sample is
      dropped from the end (``start = (len - W) // 2``).
    - Shorter than ``W``: ``"pad"`` appends zeros at the end; ``"repeat"`` tiles the clip and
      truncates to ``W``; ``"crop"`` raises :class:`FillPolicyError`.

    Zero-padding changes global statistics (it hurts gLN models calibrated on short clips by
    4-9 dB); prefer ``"repeat"`` when clips are shorter than ``W``.

    Args:
        x: The clip, shape ``[n]`` with ``n >= 1``.
        width: The model input width ``W`` (``>= 1``).
        policy: One of :data:`FILL_POLICIES`.

    Returns:
        An array of shape ``[W]`` and the dtype of ``x``.

    Raises:
        ValueError: Unknown policy, ``x`` not 1-D or empty, or ``width < 1``.
        FillPolicyError: ``policy == "crop"`` and the clip is shorter than ``W``.
    """
    check_policy(policy)
    if width < 1:
        raise ValueError(f"width {width}: expected W >= 1")
    if x.ndim != 1 or x.shape[0] == 0:
        raise ValueError(f"clip of shape {x.shape}: expected a non-empty 1-D array")
    n = x.shape[0]
    if n == width:
        return x
    if n > width:
        start = (n - width) // 2
        return x[start : start + width].copy()
    if policy == "pad":
        return np.concatenate([x, np.zeros(width - n, dtype=x.dtype)])
    if policy == "repeat":
        return np.tile(x, -(-width // n))[:width]
    raise FillPolicyError(
        f"clip of {n} samples is shorter than the model input W={width}; "
        f"expected at least {width} samples for policy 'crop' (use 'pad' or 'repeat' to lengthen clips)"
    )


def fill_applied(n: int, width: int, policy: str) -> str:
    """Name the transform :func:`fit_length` applies to a clip of ``n`` samples.

    Returns:
        ``"none"``, ``"centre-crop"``, ``"pad"`` or ``"repeat"``.
    """
    if n == width:
        return "none"
    if n > width:
        return "centre-crop"
    return policy


def check_policy(policy: str) -> None:
    """Raise ``ValueError`` unless ``policy`` is one of :data:`FILL_POLICIES`."""
    if policy not in FILL_POLICIES:
        raise ValueError(f"fill policy {policy!r}: expected one of {', '.join(FILL_POLICIES)}")
