"""Export-time substitutions on the 4-D Conv-TasNet: one rule per module, applied to a copy of the model."""

from __future__ import annotations

from harness.substitutions._base import (
    DecoderChoice,
    GlnStatsChoice,
    MaskMulChoice,
    NormChoice,
    PReLUChoice,
    SubstitutionRule,
    SubstitutionSpec,
    apply_rules,
    apply_substitutions,
    rules_for,
)
from harness.substitutions._clamp import ClampActivations, ClampedActivation
from harness.substitutions._gln import SplitGlobLN, SplitGlobLNStats
from harness.substitutions._norm import NormSwap
from harness.substitutions._prelu import MaxMinPReLU, PReLUToMaxMin, PReLUToReLU
from harness.substitutions._topology import (
    PerSourceActivation,
    PerSourceConv,
    PerSourceDecoder,
    PerSourceDecoding,
    PerSourceMask,
)

__all__ = [
    "ClampActivations",
    "ClampedActivation",
    "DecoderChoice",
    "GlnStatsChoice",
    "MaskMulChoice",
    "MaxMinPReLU",
    "NormChoice",
    "NormSwap",
    "PReLUChoice",
    "PReLUToMaxMin",
    "PReLUToReLU",
    "PerSourceActivation",
    "PerSourceConv",
    "PerSourceDecoder",
    "PerSourceDecoding",
    "PerSourceMask",
    "SplitGlobLN",
    "SplitGlobLNStats",
    "SubstitutionRule",
    "SubstitutionSpec",
    "apply_rules",
    "apply_substitutions",
    "rules_for",
]
