"""Export-time substitutions on the 4-D Conv-TasNet: one rule per module, applied to a copy of the model."""

from __future__ import annotations

from harness.substitutions._base import (
    NormChoice,
    PReLUChoice,
    SubstitutionRule,
    SubstitutionSpec,
    apply_rules,
    apply_substitutions,
    rules_for,
)
from harness.substitutions._clamp import ClampActivations, ClampedActivation
from harness.substitutions._norm import NormSwap
from harness.substitutions._prelu import MaxMinPReLU, PReLUToMaxMin, PReLUToReLU

__all__ = [
    "ClampActivations",
    "ClampedActivation",
    "MaxMinPReLU",
    "NormChoice",
    "NormSwap",
    "PReLUChoice",
    "PReLUToMaxMin",
    "PReLUToReLU",
    "SubstitutionRule",
    "SubstitutionSpec",
    "apply_rules",
    "apply_substitutions",
    "rules_for",
]
