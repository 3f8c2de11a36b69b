"""Exceptions the real DFC raises from its sibling packages, installed under their real module paths.

dfc_api.md §6 names ``hailo_model_optimization.acceleras.utils.acceleras_exceptions`` for
``NegativeSlopeExponentNonFixable`` [T], ``AccelerasUnsupportedError`` [C], ``AccelerasResourceError`` [T] and
``BadInputsShape`` [T]; ``hailo_sdk_common.hailo_nn.exceptions`` for ``UnsupportedModelError`` [C] (MZ imports it).
This fake ships only the ``hailo_sdk_client`` package, so importing ``hailo_sdk_client`` registers these two
modules in ``sys.modules`` (the real wheel installs them as separate top-level packages).
"""

from __future__ import annotations

import importlib.util
import sys
import types

from hailo_sdk_client.model_translator.exceptions import UnsupportedModelError

__all__ = [
    "AccelerasResourceError",
    "AccelerasUnsupportedError",
    "BadInputsShape",
    "NegativeSlopeExponentNonFixable",
    "install_aliases",
]

_ACCELERAS = "hailo_model_optimization.acceleras.utils.acceleras_exceptions"
_COMMON = "hailo_sdk_common.hailo_nn.exceptions"


class NegativeSlopeExponentNonFixable(Exception):
    """A layer needs a larger shift than its data bits allow."""


class AccelerasUnsupportedError(Exception):
    """The optimization target does not support a layer configuration."""


class AccelerasResourceError(Exception):
    """Out of (GPU) memory during optimization."""


class BadInputsShape(Exception):
    """Calibration or inference data does not match the network's input shape."""


for _cls in (NegativeSlopeExponentNonFixable, AccelerasUnsupportedError, AccelerasResourceError, BadInputsShape):
    _cls.__module__ = _ACCELERAS


def install_aliases() -> None:
    """Register the real module paths (and their parent packages) in ``sys.modules``."""
    members = {
        _ACCELERAS: {
            c.__name__: c
            for c in (NegativeSlopeExponentNonFixable, AccelerasUnsupportedError, AccelerasResourceError, BadInputsShape)
        },
        _COMMON: {"UnsupportedModelError": UnsupportedModelError},
    }
    for path, names in members.items():
        parts = path.split(".")
        if parts[0] not in sys.modules and importlib.util.find_spec(parts[0]) is not None:
            continue  # a real package of that name is installed: never shadow it
        for i in range(1, len(parts) + 1):
            name = ".".join(parts[:i])
            mod = sys.modules.get(name)
            if mod is None:
                mod = types.ModuleType(name, "alias installed by the fake hailo_sdk_client")
                mod.__file__ = __file__  # lets tests find and unload every fake module by file
                mod.__path__ = []  # a package, so submodules resolve
                sys.modules[name] = mod
                if i > 1:
                    setattr(sys.modules[".".join(parts[: i - 1])], parts[i - 1], mod)
        for attr, value in names.items():
            setattr(sys.modules[path], attr, value)
