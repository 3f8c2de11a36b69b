"""Compiler (allocator) lever values: checked and formatted in the model-zoo forms (docs/allocator_levers.md)."""

from __future__ import annotations

import pytest

from harness.backends._overrides import LEVER_KINDS, LeverValueError, lever_args


@pytest.mark.parametrize(
    ("kind", "value", "text"),
    [
        ("performance_param", "max", "compiler_optimization_level=max"),
        ("performance_param", 0, "compiler_optimization_level=0"),
        ("performance_param", 2, "compiler_optimization_level=2"),
        ("resources_param", 0.8,
         "max_compute_utilization=0.8, max_control_utilization=0.8, max_memory_utilization=0.8"),
        ("resources_param", 1,
         "max_compute_utilization=1.0, max_control_utilization=1.0, max_memory_utilization=1.0"),
        ("resources_param", "compute=1.0, control=0.95,memory=0.75",
         "max_compute_utilization=1.0, max_control_utilization=0.95, max_memory_utilization=0.75"),
        ("resources_param", "memory=0.5", "max_memory_utilization=0.5"),
        ("context_switch_param", "enabled", "mode=enabled"),
        ("context_switch_param", "allowed", "mode=allowed"),
        ("context_switch_param", "disabled", "mode=disabled"),
        ("allocator_param", "25m", "timeout=25m"),
        ("allocator_param", "5h", "timeout=5h"),
        ("allocator_param", 43200, "timeout=43200"),
        ("allocator_param", 3600.0, "timeout=3600"),
    ],
)  # fmt: skip
def test_lever_args_in_model_zoo_form(kind: str, value: object, text: str) -> None:
    assert lever_args(kind, value) == text


@pytest.mark.parametrize(
    ("kind", "value"),
    [
        ("performance_param", 3),
        ("performance_param", "3"),
        ("performance_param", True),
        ("performance_param", None),
        ("resources_param", 0),
        ("resources_param", 1.5),
        ("resources_param", float("nan")),
        ("resources_param", "gpu=0.5"),
        ("resources_param", "compute=0.5,compute=0.6"),
        ("resources_param", "compute=2"),
        ("resources_param", "compute"),
        ("context_switch_param", "on"),
        ("context_switch_param", None),
        ("allocator_param", 10),
        ("allocator_param", 30.5),
        ("allocator_param", "5d"),
        ("allocator_param", "0m"),
        ("allocator_param", "9999h"),
    ],
)
def test_bad_lever_values_are_one_line_errors(kind: str, value: object) -> None:
    with pytest.raises(LeverValueError) as info:
        lever_args(kind, value)
    msg = str(info.value)
    assert "\n" not in msg
    assert msg.startswith(f"override {kind}: value {value!r}; expected ")
    assert msg.endswith(LEVER_KINDS[kind][1])


def test_not_a_lever() -> None:
    with pytest.raises(KeyError):
        lever_args("precision16", None)
