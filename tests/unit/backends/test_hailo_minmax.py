"""calib_method minmax on Hailo writes no model-script line, and the optimize info says why (the DFC's default)."""

from __future__ import annotations

from harness.backends import OverrideSet, QuantSettings
from harness.backends.hailo import build_script

LAYERS = {
    "convtas/input_layer1": {"type": "input_layer", "original_names": ["input"]},
    "convtas/conv1": {"type": "conv", "original_names": ["/encoder/Conv"]},
    "convtas/output_layer1": {"type": "output_layer", "original_names": ["output"]},
}


def test_minmax_is_reported_as_the_dfcs_default_statistics() -> None:
    script = build_script(OverrideSet("none"), QuantSettings(method="minmax"), LAYERS, calibset_size=8)
    assert "minmax" not in script.text and "clipping" not in script.text  # nothing to write
    assert any("minmax" in a and "default statistics" in a for a in script.applied), script.applied
