"""Export-time substitutions: the spec, the rule contract and the pass that applies rules to a model copy.

A rule is one small class per module (``_prelu.py``, ``_norm.py``, ``_clamp.py``, ``_gln.py``, ``_topology.py``)
with a ``name``, a ``scope`` (sub-module paths it walks; ``""`` is the model itself), ``exact`` (whether the
rewritten model computes the same function), ``matches(module)`` and ``rewrite(module)``. :func:`apply_rules` walks each scope
depth-first, replaces every matching module (without descending into it) and reports which rules fired.
Substitutions keep capacity: same blocks, repeats and channels, and weights carried over where the new module
has them.

Exact rules (``prelu:maxmin``, ``gln_stats:split``, ``mask_mul:per_source``, ``decoder:per_source``) only change
how the graph is written. :meth:`SubstitutionSpec.without_exact` drops them, which gives the model an export is
checked against: with only exact rules, the export's fidelity gate compares the ONNX with the unmodified model.
"""

from __future__ import annotations

import copy
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, Protocol, get_args

from torch import nn

from harness.errors import ConfigError
from harness.substitutions._clamp import ClampActivations
from harness.substitutions._gln import SplitGlobLNStats
from harness.substitutions._norm import NormSwap
from harness.substitutions._prelu import PReLUToMaxMin, PReLUToReLU
from harness.substitutions._topology import PerSourceDecoding, PerSourceMask

if TYPE_CHECKING:
    from harness.model import ConvTasNet4D

__all__ = [
    "DecoderChoice",
    "GlnStatsChoice",
    "MaskMulChoice",
    "NormChoice",
    "PReLUChoice",
    "SubstitutionRule",
    "SubstitutionSpec",
    "apply_rules",
    "apply_substitutions",
    "rules_for",
]

_log = logging.getLogger(__name__)

PReLUChoice = Literal["keep", "relu", "maxmin"]
NormChoice = Literal["gLN", "cLN", "affine", "identity"]
GlnStatsChoice = Literal["joint", "split"]
DecoderChoice = Literal["grouped", "per_source"]
MaskMulChoice = Literal["repeat", "per_source"]


class SubstitutionRule(Protocol):
    """One module rewrite.

    Contract: ``matches`` and ``descend`` are pure predicates; ``rewrite`` returns a new module (it may copy or
    wrap, never mutate, the matched one). The walker never descends into a matched module, and into an
    unmatched one only if ``descend`` says so (a rule that wraps modules uses it to skip its own wrappers).
    """

    name: str
    scope: tuple[str, ...]
    #: True when the rewritten module computes the same function (up to float rounding) with the same weights.
    exact: bool

    def matches(self, module: nn.Module) -> bool:
        """Whether ``module`` is to be replaced."""
        ...

    def rewrite(self, module: nn.Module) -> nn.Module:
        """The replacement for a matched ``module``."""
        ...

    def descend(self, module: nn.Module) -> bool:
        """Whether to look inside an unmatched ``module`` for matches."""
        ...

    def describe(self, originals: Sequence[nn.Module]) -> str:
        """The label reported when the rule replaced ``originals`` (e.g. ``norm:gLN->cLN``)."""
        ...


@dataclass(frozen=True)
class SubstitutionSpec:
    """Which substitutions to apply at export time.

    Args:
        prelu: ``"keep"``, ``"relu"`` (PReLU -> ReLU) or ``"maxmin"`` (PReLU as ``max(x,0) + a*min(x,0)``).
        norm: Target norm kind, or ``None`` to keep the checkpoint's.
        clamp: Bound ``c`` of a ``[-c, c]`` clamp after every separator activation, or ``None``.
        gln_stats: ``"joint"`` (one ReduceMean over axes 1-3 per gLN statistic) or ``"split"`` (a mean over time,
            then over channels; exact).
        decoder: ``"grouped"`` (one grouped ConvTranspose) or ``"per_source"`` (one ungrouped ConvTranspose per
            source, outputs concatenated; exact).
        mask_mul: ``"repeat"`` (``masks * cat([w] * n_src)``) or ``"per_source"`` (mask conv split per source,
            each mask times ``w``; exact).

    Raises:
        ConfigError: a value is outside its allowed set, or ``clamp`` is not a finite number > 0.
    """

    prelu: PReLUChoice = "keep"
    norm: NormChoice | None = None
    clamp: float | None = None
    gln_stats: GlnStatsChoice = "joint"
    decoder: DecoderChoice = "grouped"
    mask_mul: MaskMulChoice = "repeat"

    def __post_init__(self) -> None:
        if self.prelu not in get_args(PReLUChoice):
            raise ConfigError("substitutions.prelu", repr(self.prelu), f"one of {list(get_args(PReLUChoice))}")
        for key, choice in (("gln_stats", GlnStatsChoice), ("decoder", DecoderChoice), ("mask_mul", MaskMulChoice)):
            if getattr(self, key) not in get_args(choice):
                raise ConfigError(f"substitutions.{key}", repr(getattr(self, key)), f"one of {list(get_args(choice))}")
        if self.norm is not None and self.norm not in get_args(NormChoice):
            raise ConfigError("substitutions.norm", repr(self.norm), f"None or one of {list(get_args(NormChoice))}")
        if self.clamp is not None:
            value = self.clamp
            if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value <= 0:
                raise ConfigError("substitutions.clamp", repr(value), "None or a finite number > 0")
            object.__setattr__(self, "clamp", float(value))

    def without_exact(self) -> SubstitutionSpec:
        """This spec without its exact rewrites (``prelu: maxmin`` -> ``keep``, the topology forms -> defaults).

        The model built from it computes what the model built from ``self`` computes: it is the reference an
        export's fidelity gate compares the ONNX with (the unmodified model when all substitutions are exact).
        """
        return SubstitutionSpec(prelu="keep" if self.prelu == "maxmin" else self.prelu, norm=self.norm, clamp=self.clamp)


def rules_for(spec: SubstitutionSpec) -> list[SubstitutionRule]:
    """The rules a spec asks for, in application order: prelu, norm, clamp, gln_stats, mask_mul, decoder.

    Args:
        spec: The substitution spec.

    Returns:
        The rule instances (empty for the default spec).
    """
    rules: list[SubstitutionRule] = []
    if spec.prelu == "relu":
        rules.append(PReLUToReLU())
    elif spec.prelu == "maxmin":
        rules.append(PReLUToMaxMin())
    if spec.norm is not None:
        rules.append(NormSwap(spec.norm))
    if spec.clamp is not None:
        rules.append(ClampActivations(spec.clamp))
    if spec.gln_stats == "split":
        rules.append(SplitGlobLNStats())
    if spec.mask_mul == "per_source":
        rules.append(PerSourceMask())
    if spec.decoder == "per_source":
        rules.append(PerSourceDecoding())
    return rules


def apply_rules(model: nn.Module, rules: Sequence[SubstitutionRule]) -> list[str]:
    """Apply ``rules`` to ``model`` in place, one after the other.

    Args:
        model: The module to rewrite (mutated).
        rules: Rules in application order.

    Returns:
        Labels of the rules that replaced at least one module, in order.
    """
    fired: list[str] = []
    for rule in rules:
        originals: list[nn.Module] = []
        for path in rule.scope:
            _rewrite_children(model.get_submodule(path), rule, originals)
        if originals:
            label = rule.describe(originals)
            fired.append(label)
            _log.info("substitution %s rewrote %d module(s)", label, len(originals))
    return fired


def apply_substitutions(model: ConvTasNet4D, spec: SubstitutionSpec) -> tuple[ConvTasNet4D, list[str]]:
    """Return a rewritten deep copy of ``model`` and the labels of the rules that fired.

    The input model is never mutated. A rule that changes nothing (e.g. ``norm="gLN"`` on a gLN model) does not
    fire. The copy's ``substitutions`` attribute accumulates the fired labels.

    Args:
        model: The 4-D Conv-TasNet.
        spec: What to substitute.

    Returns:
        ``(copy, fired)``, e.g. ``(model, ["prelu:relu", "norm:gLN->cLN", "clamp:8.0"])`` or
        ``(model, ["gln_stats:split", "mask_mul:per_source", "decoder:per_source"])``.
    """
    out = copy.deepcopy(model)
    fired = apply_rules(out, rules_for(spec))
    out.substitutions = tuple(model.substitutions) + tuple(fired)
    return out, fired


def _rewrite_children(parent: nn.Module, rule: SubstitutionRule, originals: list[nn.Module]) -> None:
    for name, child in list(parent.named_children()):
        if rule.matches(child):
            originals.append(child)
            setattr(parent, name, rule.rewrite(child))
        elif rule.descend(child):
            _rewrite_children(child, rule, originals)
