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
_APU = "hailo_model_optimization.algorithms.apu_neg_mantissa_correction"
_NON_NN_CORE = "hailo_model_optimization.acceleras.hailo_layers.base_hailo_none_nn_core_layer"
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


# -- ApuNegMantissaCorrection (real_dfc README: HD's har_to_hef.py guard) ---------------------------------------
#: Activations whose negative mantissa the algorithm corrects (the real table's content is not public) [I].
ACTIVATION_CORRECTION_DICT = {"relu": None, "prelu": None, "leaky": None, "sigmoid": None, "inv_sqrt": None}


class BaseHailoNonNNCoreLayer:
    """Base of the acceleras layers that do not run on the NN core [T name, module]."""


class _HailoLayer:
    def __init__(self, name: str, activation: str) -> None:
        self.name = name
        self.activation_atomic_op = object()
        self._activation = activation

    def get_activation_name(self) -> str:
        return self._activation


class HailoConv(_HailoLayer):
    def neg_weights(self) -> bool:
        return False


class HailoAvgPool(_HailoLayer):
    """Has an activation op but no ``neg_weights()`` -- what DFC 3.33's correction trips over [T]."""


class HailoStandaloneActivation(BaseHailoNonNNCoreLayer, _HailoLayer):
    def neg_weights(self) -> None:
        return None


class ApuNegMantissaCorrection:
    """The optimizer algorithm of DFC 3.33 that crashes on ``HailoAvgPool`` [T]. Its unguarded
    ``should_correct_layer`` asks every layer with an activation op for ``neg_weights()``, so a model with
    avgpool layers raises ``AttributeError: 'HailoAvgPool' object has no attribute 'neg_weights'`` in
    ``optimize()`` [T for the crash, I for when it fires: any avgpool in the HN]."""

    def should_correct_layer(self, layer: object) -> bool:
        if not hasattr(layer, "activation_atomic_op"):
            return False
        return bool(layer.neg_weights() is not None) and layer.get_activation_name() in ACTIVATION_CORRECTION_DICT  # type: ignore[attr-defined]


for _cls in (ApuNegMantissaCorrection,):
    _cls.__module__ = _APU
BaseHailoNonNNCoreLayer.__module__ = _NON_NN_CORE


def _acceleras_layer(name: str, layer: dict) -> object:
    kind = layer.get("type")
    act = str(layer.get("params", {}).get("activation", "linear"))
    if kind == "avgpool":
        return HailoAvgPool(name, act)
    if kind == "activation":
        return HailoStandaloneActivation(name, act)
    return HailoConv(name, act)


def apu_neg_mantissa_correction(hn: dict) -> None:
    """Run the (possibly patched) ``should_correct_layer`` of the registered class over the HN's layers, as
    DFC 3.33's optimize does; the class is looked up in ``sys.modules`` so a guard installed there counts."""
    mod = sys.modules.get(_APU)
    cls = getattr(mod, "ApuNegMantissaCorrection", ApuNegMantissaCorrection)
    algo = cls()
    for name, layer in hn["layers"].items():
        if layer.get("type") in ("input_layer", "output_layer", "const_input", "shortcut"):
            continue
        algo.should_correct_layer(_acceleras_layer(name, layer))


def install_aliases() -> None:
    """Register the real module paths (and their parent packages) in ``sys.modules``."""
    members = {
        _ACCELERAS: {
            c.__name__: c
            for c in (NegativeSlopeExponentNonFixable, AccelerasUnsupportedError, AccelerasResourceError, BadInputsShape)
        },
        _COMMON: {"UnsupportedModelError": UnsupportedModelError},
        _APU: {"ApuNegMantissaCorrection": ApuNegMantissaCorrection, "ACTIVATION_CORRECTION_DICT": ACTIVATION_CORRECTION_DICT},
        _NON_NN_CORE: {"BaseHailoNonNNCoreLayer": BaseHailoNonNNCoreLayer},
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
