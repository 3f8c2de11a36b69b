"""Clamp substitution: ``clamp:<c>`` bounds every separator activation to ``[-c, c]`` (ONNX ``Clip``).

A fixed activation range helps static quantization: calibration can no longer stretch a layer's scale to a rare
outlier. The clamp follows each PReLU-family activation of the TCN blocks and of ``mask_net``; the encoder
activation and the mask non-linearity are left alone.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from harness.substitutions._prelu import MaxMinPReLU

__all__ = ["ClampActivations", "ClampedActivation"]


class ClampedActivation(nn.Module):
    """``clamp(act(x), -limit, limit)``.

    Args:
        act: The wrapped activation (kept as ``act``, so its parameters move to ``<name>.act.*``).
        limit: Positive clamp bound.
    """

    def __init__(self, act: nn.Module, limit: float) -> None:
        super().__init__()
        self.act = act
        self.limit = float(limit)

    def extra_repr(self) -> str:
        return f"limit={self.limit}"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.clamp(self.act(x), -self.limit, self.limit)


class ClampActivations:
    """Wrap every PReLU/ReLU/:class:`MaxMinPReLU` in ``masker.TCN`` and ``masker.mask_net`` with a clamp.

    The walker does not look inside an existing :class:`ClampedActivation`; one with another limit is rebuilt
    with the new limit, one with the same limit is left alone (the rule does not fire).

    Args:
        limit: Positive, finite clamp bound ``c``.
    """

    scope: tuple[str, ...] = ("masker.TCN", "masker.mask_net")
    exact = False

    def __init__(self, limit: float) -> None:
        if not math.isfinite(limit) or limit <= 0:
            raise ValueError(f"clamp limit must be finite and > 0, got {limit!r}")
        self.limit = float(limit)
        self.name = f"clamp:{self.limit}"

    def matches(self, module: nn.Module) -> bool:
        """True for an unclamped PReLU, ReLU or MaxMinPReLU, or one clamped with another limit."""
        if isinstance(module, ClampedActivation):
            return module.limit != self.limit
        return isinstance(module, nn.PReLU | nn.ReLU | MaxMinPReLU)

    def rewrite(self, module: nn.Module) -> nn.Module:
        """Returns ``ClampedActivation(activation, limit)``."""
        if isinstance(module, ClampedActivation):
            return ClampedActivation(module.act, self.limit)
        return ClampedActivation(module, self.limit)

    def descend(self, module: nn.Module) -> bool:
        """Do not look inside existing clamps."""
        return not isinstance(module, ClampedActivation)

    def describe(self, originals: Sequence[nn.Module]) -> str:
        """The label reported when the rule fires."""
        return self.name
