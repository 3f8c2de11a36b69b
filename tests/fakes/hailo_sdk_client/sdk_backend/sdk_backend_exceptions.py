"""Fake ``hailo_sdk_client.sdk_backend.sdk_backend_exceptions`` (dfc_api.md §6).

``BackendScriptParserException``, ``AllocatorScriptParserException`` and ``BackendRuntimeException`` live here
per public tracebacks [T]; ``BackendAllocatorException``'s module was never seen and is placed here by
inference [I].
"""

from __future__ import annotations

__all__ = [
    "AllocatorScriptParserException",
    "BackendAllocatorException",
    "BackendRuntimeException",
    "BackendScriptParserException",
]


class BackendScriptParserException(Exception):
    """A model script line could not be parsed, or names a layer the model does not have."""


class AllocatorScriptParserException(Exception):
    """The allocator rejected the model's structure."""


class BackendRuntimeException(Exception):
    """A runner call was made in the wrong state (e.g. compile before optimize)."""


class BackendAllocatorException(Exception):
    """Resource allocation (mapping onto the chip) failed."""
