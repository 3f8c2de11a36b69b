"""Backends: a name -> lazy factory table over one narrow protocol.

Selecting a backend imports only that backend's module, so a machine without a vendor SDK can still run the
embedded ONNX Runtime backend.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any

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
    "BackendSpec",
    "Compiled",
    "Optimized",
    "Override",
    "OverrideSet",
    "OverrideTargetNotFound",
    "QuantSettings",
    "Translated",
    "backend_class",
    "get_backend",
    "resolve_targets",
]

#: Backend name -> "module:Class". Modules are imported only when the backend is selected.
BACKENDS: dict[str, str] = {
    "ort": "harness.backends._ort:OrtBackend",
    "hailo": "harness.backends.hailo:HailoBackend",
}


def backend_class(name: str) -> Any:
    """The backend's class, imported but not constructed (no SDK needed for its static helpers)."""
    if name not in BACKENDS:
        raise ConfigError(f"backend {name!r}", "unknown backend", f"one of {sorted(BACKENDS)}")
    module, cls = BACKENDS[name].split(":")
    return getattr(importlib.import_module(module), cls)


def get_backend(name: str, **options: Any) -> Backend:
    """Construct the backend registered under ``name`` with keyword ``options`` (e.g. ``hw_arch``).

    Raises:
        ConfigError: ``name`` is not a registered backend.
        BackendUnavailable: the backend's SDK cannot be imported (raised by the backend module).
    """
    if name not in BACKENDS:
        raise ConfigError(f"backend {name!r}", "unknown backend", f"one of {sorted(BACKENDS)}")
    factory = backend_class(name)
    try:
        backend: Backend = factory(**options)
    except TypeError as exc:
        raise ConfigError(f"backend {name!r} options", f"{options}", "options the backend accepts", str(exc)) from None
    return backend


@dataclass(frozen=True)
class BackendSpec:
    """A picklable recipe for a backend: its name and constructor options (sent to child processes)."""

    name: str
    options: tuple[tuple[str, Any], ...] = ()

    def create(self) -> Backend:
        """Construct the backend."""
        return get_backend(self.name, **dict(self.options))
