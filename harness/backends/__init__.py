"""Backends: a name -> lazy factory table over one narrow protocol.

Selecting a backend imports only that backend's module, so a machine without a vendor SDK can still run the
embedded ONNX Runtime backend.
"""

from __future__ import annotations

import importlib
import sys
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
        """Construct the backend (in the process that runs its stages)."""
        return get_backend(self.name, **dict(self.options))

    def interpreter(self) -> str:
        """The Python that runs this backend's stages: the harness's own unless the backend class says otherwise
        (``interpreter(options)``; the Hailo backend runs in the DFC environment's interpreter)."""
        fn = getattr(backend_class(self.name), "interpreter", None)
        return str(fn(dict(self.options))) if fn is not None else sys.executable

    def versions(self) -> dict[str, str]:
        """The backend's ``versions()`` as seen from the harness: asked of the backend's own interpreter when the
        class has ``describe(options)`` (never importing its SDK here), else from a backend constructed here."""
        fn = getattr(backend_class(self.name), "describe", None)
        return dict(fn(dict(self.options))) if fn is not None else self.create().versions()

    def timeout(self, stage: str, stage_timeout: float) -> float:
        """Seconds the isolated ``stage`` may take: the backend option ``<stage>_timeout`` when given, else the
        space's ``stage_timeout`` raised to the backend class's ``default_timeouts[stage]`` floor (the Hailo
        compile: 3600 s; a real mapping ran 31 min 42 s)."""
        opts = dict(self.options)
        if opts.get(f"{stage}_timeout") is not None:
            return float(opts[f"{stage}_timeout"])
        floor = getattr(backend_class(self.name), "default_timeouts", {}).get(stage)
        return max(float(stage_timeout), float(floor)) if floor is not None else float(stage_timeout)
