"""Fake ``hailo_sdk_client.exposed_definitions`` (dfc_api.md §1.1, §1.2, §5.1).

``States`` members and ``InferenceContext`` members are the ones seen in public code [C]; their *values* are
made up here (the real enum values are not public).
"""

from __future__ import annotations

import enum

__all__ = ["SUPPORTED_HW_ARCHS", "CalibrationDataType", "InferenceContext", "States"]

#: dfc_api.md §1.3: the archs a single DFC 3.30 accepted (MZ-3x d4c43ec) plus hailo8r (LUX) [C].
SUPPORTED_HW_ARCHS = (
    "hailo8",
    "hailo8l",
    "hailo8r",
    "hailo15h",
    "hailo15m",
    "hailo15l",
    "hailo10h",
    "hailo10h2",
    "mars",
)


class States(str, enum.Enum):
    """Runner states (§1.2) [C names]."""

    UNINITIALIZED = "uninitialized"
    HAILO_MODEL = "hailo_model"
    FP_OPTIMIZED_MODEL = "fp_optimized_model"
    QUANTIZED_MODEL = "quantized_model"
    COMPILED_MODEL = "compiled_model"


class InferenceContext(str, enum.Enum):
    """Emulation targets (§5.1) [C names]."""

    SDK_NATIVE = "sdk_native"
    SDK_FP_OPTIMIZED = "sdk_fp_optimized"
    SDK_QUANTIZED = "sdk_quantized"
    SDK_BIT_EXACT = "sdk_bit_exact"
    SDK_HAILO_HW = "sdk_hailo_hw"


class CalibrationDataType(str, enum.Enum):
    """Calibration data kinds (§3.1) [T]."""

    auto = "auto"
    np_array = "np_array"
    npy_file = "npy_file"
    npy_dir = "npy_dir"
    dataset = "dataset"
