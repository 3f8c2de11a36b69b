"""Output alignment: where a backend output shorter than the clip (the DFC's decoder deconv) sits in the float
reference (:func:`output_alignment`, found once per trial) and placing it there (:func:`apply_alignment`)."""

from __future__ import annotations

from typing import Any

import numpy as np


def output_alignment(quant: np.ndarray, ref: np.ndarray, config: Any) -> dict[str, Any]:
    """Where a backend output shorter than W sits in the float reference: found once, by cross-correlation.

    The DFC's decoder deconv returns F·stride samples (15992 for W=16000, ``real_dfc/real_hn.json``) where the ONNX
    returns (F-1)·stride + L = W; a shortfall of up to ``kernel_size - stride`` samples is expected and is aligned
    (the offset that best matches the float outputs of these clips), anything else is an error.

    Raises:
        ValueError: the output is longer than W or shorter by more than ``kernel_size - stride``.
    """
    width, short = ref.shape[-1], ref.shape[-1] - quant.shape[-1]
    limit = max(int(config.kernel_size) - int(config.stride or config.kernel_size // 2), 0)
    if not 0 < short <= limit:
        raise ValueError(
            f"emulated output has {quant.shape[-1]} samples for W={width}; expected W or at most "
            f"kernel_size - stride = {limit} fewer"
        )
    q = quant[:, :, 0, :].astype(np.float64)
    scores = []
    for k in range(short + 1):
        r = ref[:, :, 0, k : k + quant.shape[-1]].astype(np.float64)
        scores.append(float(np.sum(q * r) / (np.sqrt(np.sum(q * q) * np.sum(r * r)) or 1.0)))
    offset = int(np.argmax(scores))
    return {"output_width": int(quant.shape[-1]), "width": int(width), "offset": offset,
            "correlation": round(scores[offset], 6), "method": "cross-correlation on the first emulated clips"}  # fmt: skip


def apply_alignment(quant: np.ndarray, alignment: dict[str, Any], width: int) -> np.ndarray:
    """Place ``quant`` at the alignment's offset in zeros of length ``width``."""
    out = np.zeros(quant.shape[:-1] + (width,), dtype=quant.dtype)
    k = alignment["offset"]
    out[..., k : k + quant.shape[-1]] = quant
    return out
