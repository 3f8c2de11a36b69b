"""GlobLN statistics substitution: ``gln_stats:split`` writes each gLN mean as two single-axis means (exact).

asteroid's GlobLN takes its mean and variance over channels and time at once; the 4-D model writes that as one
``ReduceMean`` over axes ``(1, 2, 3)``. The ONNX that the real Hailo DFC 3.33 parsed
(``/work/shared/real_dfc/convtas_hailo_ready.onnx``) writes each statistic as a ``ReduceMean`` over axis 3 (time)
followed by one over axis 1 (channels), which the DFC lowers to ``avgpool`` + ``reduce_mean``. With ``H == 1``
(always so in this model) and equal-sized groups, the mean of per-channel time means is the global mean, so the
function is unchanged: only float rounding differs (~1e-7 relative).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

import torch
from torch import nn

from harness.model import EPS, GlobLN
from harness.substitutions._norm import copy_norm

__all__ = ["SplitGlobLN", "SplitGlobLNStats"]


class SplitGlobLN(GlobLN):
    """:class:`~harness.model.GlobLN` with each statistic as a mean over time, then a mean over channels.

    ``mean = x.mean(3, keepdim).mean(1, keepdim)``; ``var = ((x - mean) ** 2).mean(3, keepdim).mean(1, keepdim)``;
    exports as ``ReduceMean(axes=[3]) -> ReduceMean(axes=[1])`` twice. Same ``kind`` (``gLN``), parameters and
    state-dict keys as :class:`GlobLN`, so norm swaps treat it as a gLN and its weights load anywhere.

    Shape: ``[N, C, 1, W] -> [N, C, 1, W]`` (the height axis must be 1: it is not averaged).
    """

    kind: ClassVar[str] = "gLN"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mean = x.mean(dim=3, keepdim=True).mean(dim=1, keepdim=True)
        centered = x - mean
        var = centered.pow(2).mean(dim=3, keepdim=True).mean(dim=1, keepdim=True)
        return self.gamma * (centered / (var + EPS).sqrt()) + self.beta


class SplitGlobLNStats:
    """``gln_stats:split`` -- replace every joint-statistics :class:`GlobLN` with a :class:`SplitGlobLN`.

    Exact (same function, same weights). Runs after the norm swap, so a ``norm: gLN`` swap is split too; cLN,
    affine and identity norms have no joint statistics and are left alone.
    """

    name = "gln_stats:split"
    scope: tuple[str, ...] = ("masker",)
    exact = True

    def matches(self, module: nn.Module) -> bool:
        """True for a plain :class:`GlobLN` (not already split)."""
        return type(module) is GlobLN

    def rewrite(self, module: nn.Module) -> nn.Module:
        """Returns a :class:`SplitGlobLN` with a copy of ``gamma``/``beta``."""
        assert isinstance(module, GlobLN)
        return copy_norm(module, SplitGlobLN)

    def descend(self, module: nn.Module) -> bool:
        """Always look inside unmatched modules."""
        return True

    def describe(self, originals: Sequence[nn.Module]) -> str:
        """The label reported when the rule fires."""
        return self.name
