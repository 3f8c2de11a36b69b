"""Backends: a name -> lazy factory table over one narrow protocol.

Selecting a backend imports only that backend's module, so a machine without a vendor SDK can still run the
embedded ONNX Runtime backend.
"""

from __future__ import annotations

import importlib

from harness.backends._overrides import OverrideTargetNotFound, resolve_targets
from harness.backends._protocol import (
    Backend,
    Compiled,
    Optimized,
    Override,
    OverrideSet,
    QuantSettings,
    Translated,
)
from harness.errors import ConfigError

__all__ = [
    "BACKENDS",
    "Backend",
    "Compiled",
    "Optimized",
    "Override",
    "OverrideSet",
    "OverrideTargetNotFound",
    "QuantSettings",
    "Translated",
    "get_backend",
    "resolve_targets",
]

#: Backend name -> "module:Class". Modules are imported only when the backend is selected.
BACKENDS: dict[str, str] = {
    "ort": "harness.backends._ort:OrtBackend",
}


def get_backend(name: str) -> Backend:
    """Construct the backend registered under ``name``.

    Raises:
        ConfigError: ``name`` is not a registered backend.
        BackendUnavailable: the backend's SDK cannot be imported (raised by the backend module).
    """
    if name not in BACKENDS:
        raise ConfigError(f"backend {name!r}", "unknown backend", f"one of {sorted(BACKENDS)}")
    module, cls = BACKENDS[name].split(":")
    backend: Backend = getattr(importlib.import_module(module), cls)()
    return backend
