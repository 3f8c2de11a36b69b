"""The tiny Conv-TasNet configuration the model and substitution unit tests share (a few thousand parameters)."""

from __future__ import annotations

from typing import Any

from harness.model import ConvTasNetConfig

__all__ = ["TINY_KW", "tiny_config"]

#: Two blocks, one repeat, 16 filters: fast on CPU, every module type present.
TINY_KW: dict[str, Any] = dict(
    n_src=2, n_filters=16, kernel_size=8, stride=4, bn_chan=8, hid_chan=16, skip_chan=8, n_blocks=2, n_repeats=1,
    sample_rate=16000,
)  # fmt: skip


def tiny_config(**changes: Any) -> ConvTasNetConfig:
    """The tiny configuration with ``changes`` (e.g. ``encoder_activation="relu"``)."""
    return ConvTasNetConfig(**{**TINY_KW, **changes})
