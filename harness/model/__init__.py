"""Conv-TasNet in 4-D "horizontal" form, its config and asteroid-format checkpoints."""

from __future__ import annotations

from harness.model._checkpoint import MODEL_NAME, load_checkpoint, save_checkpoint
from harness.model._config import DEMO_CONFIG, IGNORED_MODEL_ARGS, PAPER_CONFIG, ConvTasNetConfig
from harness.model._convtasnet import (
    Conv1DBlock4D,
    ConvTasNet4D,
    Masks,
    SourceSoftmax,
    TDConvNet4D,
    separate,
    softmax_over_sources,
)
from harness.model._resize import (
    CAPACITY_DIMS,
    RESIZE_VERSION,
    Capacity,
    Resized,
    capacity,
    changed_values,
    resize_model,
    resized_config,
)
from harness.model._norms import EPS, NORM_CLASSES, AffineNorm, ChanLN, GlobLN, IdentityNorm, NormBase

__all__ = [
    "CAPACITY_DIMS",
    "RESIZE_VERSION",
    "Capacity",
    "Resized",
    "capacity",
    "changed_values",
    "resize_model",
    "resized_config",
    "DEMO_CONFIG",
    "EPS",
    "IGNORED_MODEL_ARGS",
    "MODEL_NAME",
    "NORM_CLASSES",
    "PAPER_CONFIG",
    "AffineNorm",
    "ChanLN",
    "Conv1DBlock4D",
    "ConvTasNet4D",
    "ConvTasNetConfig",
    "GlobLN",
    "IdentityNorm",
    "Masks",
    "NormBase",
    "SourceSoftmax",
    "TDConvNet4D",
    "load_checkpoint",
    "save_checkpoint",
    "separate",
    "softmax_over_sources",
]
