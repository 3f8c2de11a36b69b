"""PReLU substitutions: ``prelu:relu`` (drop the slopes) and ``prelu:maxmin`` (same numbers, no PRelu op).

Hailo's dataflow compiler and some quantizers handle ``PRelu`` poorly; ``maxmin`` rewrites it as
``max(x, 0) + a * min(x, 0)``, which is numerically the same function built from Max, Min, Mul and Add.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

__all__ = ["MaxMinPReLU", "PReLUToMaxMin", "PReLUToReLU"]


class MaxMinPReLU(nn.Module):
    """PReLU written as ``max(x, 0) + a * min(x, 0)``; exports as ONNX Max, Min, Mul, Add.

    Args:
        prelu: The PReLU whose slopes ``a`` (``num_parameters`` of them) are kept, as ``weight``
            ``[1, num_parameters, 1, 1]`` (broadcast over ``[N, C, 1, W]``).
    """

    def __init__(self, prelu: nn.PReLU) -> None:
        super().__init__()
        slopes = prelu.weight.detach().clone()
        self.weight = nn.Parameter(slopes.reshape(1, -1, 1, 1), requires_grad=prelu.weight.requires_grad)
        self.zero: torch.Tensor
        self.register_buffer("zero", torch.zeros(1, 1, 1, 1), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.maximum(x, self.zero) + self.weight * torch.minimum(x, self.zero)


class PReLUToReLU:
    """``prelu:relu`` -- replace every ``nn.PReLU`` (or :class:`MaxMinPReLU`) with ``nn.ReLU``.

    Changes the function (negative inputs map to 0 instead of ``a * x``) and drops one parameter per PReLU.
    """

    name = "prelu:relu"
    scope: tuple[str, ...] = ("masker",)
    exact = False

    def matches(self, module: nn.Module) -> bool:
        """True for ``nn.PReLU`` and :class:`MaxMinPReLU`."""
        return isinstance(module, nn.PReLU | MaxMinPReLU)

    def rewrite(self, module: nn.Module) -> nn.Module:
        """Returns a new ``nn.ReLU``."""
        return nn.ReLU()

    def descend(self, module: nn.Module) -> bool:
        """Always look inside unmatched modules."""
        return True

    def describe(self, originals: Sequence[nn.Module]) -> str:
        """The label reported when the rule fires."""
        return self.name


class PReLUToMaxMin:
    """``prelu:maxmin`` -- replace every ``nn.PReLU`` with the equivalent :class:`MaxMinPReLU` (slopes kept)."""

    name = "prelu:maxmin"
    scope: tuple[str, ...] = ("masker",)
    exact = True

    def matches(self, module: nn.Module) -> bool:
        """True for ``nn.PReLU``."""
        return isinstance(module, nn.PReLU)

    def rewrite(self, module: nn.Module) -> nn.Module:
        """Returns a :class:`MaxMinPReLU` with the PReLU's slopes."""
        assert isinstance(module, nn.PReLU)
        return MaxMinPReLU(module)

    def descend(self, module: nn.Module) -> bool:
        """Always look inside unmatched modules."""
        return True

    def describe(self, originals: Sequence[nn.Module]) -> str:
        """The label reported when the rule fires."""
        return self.name
