"""The Hailo Dataflow Compiler backend: the only harness package that imports ``hailo_sdk_client`` (lazily).

Importing this package registers the Hailo failure-classification rules (:mod:`._rules`) and does not import
the SDK; constructing :class:`HailoBackend` does.
"""

from __future__ import annotations

from harness.backends.hailo._backend import (
    DFC_NOISE_FILE,
    INSTALL_HINT,
    KNOWN_HW_ARCHS,
    HailoBackend,
    dfc_layer_noise,
    layer_table,
)
from harness.backends.hailo._layers import LayerRef, LayerTable, layer_map, match_patterns, resolve_layer
from harness.backends.hailo._rules import RULES, Diagnosis, explain
from harness.backends.hailo._script import ModelScript, build_script, safe_layer_name

__all__ = [
    "DFC_NOISE_FILE",
    "INSTALL_HINT",
    "KNOWN_HW_ARCHS",
    "RULES",
    "Diagnosis",
    "HailoBackend",
    "LayerRef",
    "LayerTable",
    "ModelScript",
    "build_script",
    "dfc_layer_noise",
    "explain",
    "layer_map",
    "layer_table",
    "match_patterns",
    "resolve_layer",
    "safe_layer_name",
]
