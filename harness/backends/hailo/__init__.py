"""The Hailo Dataflow Compiler backend: the only harness package that imports ``hailo_sdk_client`` (lazily).

Importing this package registers the Hailo failure-classification rules (:mod:`._rules`) and does not import
the SDK; constructing :class:`HailoBackend` does.
"""

from __future__ import annotations

from harness.backends.hailo._backend import (
    INSTALL_HINT,
    KNOWN_HW_ARCHS,
    HailoBackend,
    layer_table,
    noise_analysis_unavailable_reason,
)
from harness.backends.hailo._layers import LayerRef, LayerTable, layer_map, match_patterns, resolve_layer
from harness.backends.hailo._rules import RULES, Diagnosis, explain
from harness.backends.hailo._script import ModelScript, build_script, safe_layer_name

__all__ = [
    "INSTALL_HINT",
    "KNOWN_HW_ARCHS",
    "RULES",
    "Diagnosis",
    "HailoBackend",
    "LayerRef",
    "LayerTable",
    "ModelScript",
    "build_script",
    "explain",
    "layer_map",
    "layer_table",
    "match_patterns",
    "noise_analysis_unavailable_reason",
    "resolve_layer",
    "safe_layer_name",
]
