"""Compiler levers in the generated model script: the model-zoo syntax, one line per command, at the end."""

from __future__ import annotations

import pytest

from harness.backends import Override, OverrideSet, QuantSettings
from harness.backends.hailo import build_script
from harness.errors import ConfigError

LAYERS = {
    "convtas/input_layer1": {"type": "input_layer"},
    "convtas/conv1": {"type": "conv"},
    "convtas/output_layer1": {"type": "output_layer"},
}


def _script(*overrides: Override):
    return build_script(OverrideSet("t", overrides), QuantSettings(), LAYERS, calibset_size=16)


def test_every_lever_written_in_model_zoo_syntax() -> None:
    script = _script(
        Override("compression_level", (), 2),
        Override("performance_param", (), "max"),
        Override("resources_param", (), 0.9),
        Override("context_switch_param", (), "enabled"),
        Override("allocator_param", (), "25m"),
    )
    lines = (
        "performance_param(compiler_optimization_level=max)",
        "resources_param(max_compute_utilization=0.9, max_control_utilization=0.9, max_memory_utilization=0.9)",
        "context_switch_param(mode=enabled)",
        "allocator_param(timeout=25m)",
    )
    assert script.text == (
        "model_optimization_flavor(compression_level=2)\n"
        "model_optimization_config(calibration, batch_size=8, calibset_size=16)\n" + "\n".join(lines) + "\n"
    )
    assert script.compiler_lines == lines
    assert script.info()["compiler_levers"] == list(lines)
    assert [a for a in script.applied if a.startswith("compiler lever")] == [f"compiler lever {ln}" for ln in lines]


def test_later_lever_of_a_kind_replaces_the_earlier() -> None:
    script = _script(
        Override("performance_param", (), 1),
        Override("allocator_param", (), 3600),
        Override("performance_param", (), "max"),
    )
    assert script.compiler_lines == (
        "allocator_param(timeout=3600)",
        "performance_param(compiler_optimization_level=max)",
    )
    assert script.text.count("performance_param(") == 1


def test_no_levers_no_lines() -> None:
    script = _script(Override("optimization_level", (), 1))
    assert script.compiler_lines == ()
    assert "_param(" not in script.text


@pytest.mark.parametrize(
    ("override", "seen"),
    [
        (Override("performance_param", (), 4), "4"),
        (Override("resources_param", (), 1.2), "1.2"),
        (Override("context_switch_param", (), "auto"), "'auto'"),
        (Override("allocator_param", (), "1d"), "'1d'"),
        (Override("performance_param", ("conv1",), "max"), "layers ['conv1']"),
    ],
)
def test_bad_lever_is_a_config_error_before_any_text(override: Override, seen: str) -> None:
    with pytest.raises(ConfigError) as info:
        _script(override)
    msg = str(info.value)
    assert f"override {override.kind}" in msg and seen in msg and "\n" not in msg
