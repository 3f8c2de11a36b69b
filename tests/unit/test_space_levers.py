"""Compiler levers in a search space's override sets: valid values load, bad ones are one-line errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.errors import ConfigError
from harness.space import load_space

SPACE = """
checkpoint: ck.pt
data: {{calibration: cal, evaluation: ev}}
dimensions:
  override_set: [none, lev]
override_sets:
  none: []
  lev:
    - {entry}
"""


def _load(tmp_path: Path, entry: str):
    p = tmp_path / "space.yaml"
    p.write_text(SPACE.format(entry=entry))
    return load_space(p)


@pytest.mark.parametrize(
    ("entry", "value"),
    [
        ("{kind: performance_param, value: max}", "max"),
        ("{kind: performance_param, value: 1}", 1),
        ("{kind: resources_param, value: 0.75}", 0.75),
        ("{kind: resources_param, value: 'compute=1.0,control=0.9'}", "compute=1.0,control=0.9"),
        ("{kind: context_switch_param, value: enabled}", "enabled"),
        ("{kind: allocator_param, value: 25m}", "25m"),
        ("{kind: allocator_param, value: 43200}", 43200),
    ],
)
def test_valid_levers_load(tmp_path: Path, entry: str, value: object) -> None:
    ov = _load(tmp_path, entry).override_set("lev").overrides[0]
    assert ov.value == value and ov.layers == ()
    assert ov.to_dict()["value"] == value


@pytest.mark.parametrize(
    ("entry", "fragments"),
    [
        ("{kind: performance_param, value: 3}", ["performance_param value", "0, 1, 2 or 'max'", "3"]),
        ("{kind: resources_param, value: 1.5}", ["resources_param value", "(0, 1]", "1.5"]),
        ("{kind: resources_param, value: 'gpu=0.5'}", ["resources_param value", "gpu=0.5"]),
        ("{kind: context_switch_param, value: on_demand}", ["context_switch_param value", "disabled or allowed"]),
        ("{kind: allocator_param, value: 10}", ["allocator_param value", "timeout", "[60, 604800]"]),
        ("{kind: allocator_param, value: 2d}", ["allocator_param value", "'2d'"]),
        ("{kind: performance_param, layers: [conv1], value: max}", ["performance_param without layers"]),
        ("{kind: resource_param, value: 0.8}", ["override_sets", "resource_param"]),
    ],
)
def test_bad_levers_are_one_line_config_errors(tmp_path: Path, entry: str, fragments: list[str]) -> None:
    with pytest.raises(ConfigError) as info:
        _load(tmp_path, entry)
    msg = str(info.value)
    assert "\n" not in msg and "override_sets.lev" in msg
    for f in fragments:
        assert f in msg, (f, msg)
