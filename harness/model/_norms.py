"""Layer norms for the 4-D ``[N, C, 1, W]`` Conv-TasNet, with asteroid's formulas.

Formulas follow ``asteroid/masknn/norms.py`` (``GlobLN``, ``ChanLN``, ``EPS = 1e-8``): the normalized value is
``(x - mean) / sqrt(var + EPS)`` with the biased variance, then ``gamma * value + beta`` per channel.

The variance is written as ``mean((x - mean) ** 2)`` rather than ``torch.var``: the TorchScript ONNX exporter
(opset 17) lowers ``torch.var(unbiased=False)`` to ``E[x^2] - E[x]^2`` (three ReduceMeans, less accurate), while
this form lowers to ``ReduceMean -> Sub -> Pow -> ReduceMean -> Add(eps) -> Sqrt -> Div``.

All four classes own parameters ``gamma`` and ``beta`` of shape ``[1, C, 1, 1]`` (broadcast without any reshape
in the graph), so a state dict loads into any of them and weights survive swapping one norm for another. asteroid
stores them as ``[C]``; :mod:`harness.model._checkpoint` converts.
"""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import nn

__all__ = ["EPS", "NORM_CLASSES", "AffineNorm", "ChanLN", "GlobLN", "IdentityNorm", "NormBase"]

#: asteroid's norm epsilon, added to the variance.
EPS = 1e-8


class NormBase(nn.Module):
    """Base of the 4-D norms: owns ``gamma`` (ones) and ``beta`` (zeros), shape ``[1, C, 1, 1]``.

    Args:
        channel_size: Number of channels ``C``.
    """

    #: Short name used in substitution reports and ``norm_type`` (``gLN``, ``cLN``, ``affine``, ``identity``).
    kind: ClassVar[str] = ""

    def __init__(self, channel_size: int) -> None:
        super().__init__()
        self.channel_size = channel_size
        self.gamma = nn.Parameter(torch.ones(1, channel_size, 1, 1))
        self.beta = nn.Parameter(torch.zeros(1, channel_size, 1, 1))

    def extra_repr(self) -> str:
        return f"{self.channel_size}"

    def _standardize(self, x: torch.Tensor, dims: tuple[int, ...]) -> torch.Tensor:
        mean = x.mean(dim=dims, keepdim=True)
        centered = x - mean
        var = centered.pow(2).mean(dim=dims, keepdim=True)
        return centered / (var + EPS).sqrt()


class GlobLN(NormBase):
    """Global layer norm (asteroid ``GlobLN``): statistics over channels and time, dims ``(1, 2, 3)``.

    Shape: ``[N, C, 1, W] -> [N, C, 1, W]``.
    """

    kind: ClassVar[str] = "gLN"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.gamma * self._standardize(x, (1, 2, 3)) + self.beta


class ChanLN(NormBase):
    """Channel-wise layer norm (asteroid ``ChanLN``): statistics over channels only, per time step (dim 1).

    Shape: ``[N, C, 1, W] -> [N, C, 1, W]``.
    """

    kind: ClassVar[str] = "cLN"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.gamma * self._standardize(x, (1,)) + self.beta


class AffineNorm(NormBase):
    """The affine part of a layer norm only: ``gamma * x + beta`` (a substitution, no statistics)."""

    kind: ClassVar[str] = "affine"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.gamma * x + self.beta


class IdentityNorm(NormBase):
    """No normalization: returns ``x``. Keeps (unused) ``gamma``/``beta`` so weights survive swapping back."""

    kind: ClassVar[str] = "identity"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


#: ``kind`` -> class, for all four norms.
NORM_CLASSES: dict[str, type[NormBase]] = {cls.kind: cls for cls in (GlobLN, ChanLN, AffineNorm, IdentityNorm)}
