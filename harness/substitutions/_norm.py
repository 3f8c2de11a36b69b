"""Norm substitution: ``norm:<from>-><to>`` swaps every layer norm for another kind, keeping ``gamma``/``beta``.

Targets are ``gLN`` and ``cLN`` (asteroid's norms, different statistics), ``affine`` (``gamma * x + beta``, no
statistics: removes the ReduceMean/Sqrt/Div chains an accelerator may not map) and ``identity`` (no norm at all).
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn

from harness.model import NORM_CLASSES, NormBase

__all__ = ["NormSwap", "copy_norm"]


def copy_norm(module: NormBase, cls: type[NormBase]) -> NormBase:
    """A ``cls`` norm with ``module``'s channel count, a copy of its ``gamma``/``beta`` and its training mode."""
    new = cls(module.channel_size)
    new.load_state_dict(module.state_dict())
    new.train(module.training)
    return new


class NormSwap:
    """Replace every :class:`~harness.model.NormBase` whose kind differs from ``target``.

    Args:
        target: ``"gLN"``, ``"cLN"``, ``"affine"`` or ``"identity"``.
    """

    scope: tuple[str, ...] = ("masker",)
    exact = False

    def __init__(self, target: str) -> None:
        if target not in NORM_CLASSES:
            raise ValueError(f"unknown norm kind {target!r}; expected one of {sorted(NORM_CLASSES)}")
        self.target = target
        self.name = f"norm:{target}"

    def matches(self, module: nn.Module) -> bool:
        """True for a norm of another kind than the target."""
        return isinstance(module, NormBase) and module.kind != self.target

    def rewrite(self, module: nn.Module) -> nn.Module:
        """Returns a target-kind norm with the same channel count and a copy of ``gamma``/``beta``."""
        assert isinstance(module, NormBase)
        return copy_norm(module, NORM_CLASSES[self.target])

    def descend(self, module: nn.Module) -> bool:
        """Always look inside unmatched modules."""
        return True

    def describe(self, originals: Sequence[nn.Module]) -> str:
        """``norm:<from>-><to>``, ``<from>`` joining the replaced kinds with ``+`` if mixed."""
        kinds = sorted({m.kind for m in originals if isinstance(m, NormBase)})
        return f"norm:{'+'.join(kinds)}->{self.target}"
