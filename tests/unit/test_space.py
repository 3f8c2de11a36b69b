from __future__ import annotations

from pathlib import Path

import pytest

from harness.errors import ConfigError
from harness.space import IntRange, load_space

GOOD = """
study: s
checkpoint: ck.pt
data: {calibration: cal, evaluation: ev}
dimensions:
  prelu: [keep, relu]
  width: 8000
  calib_size: {low: 4, high: 16, step: 4}
  override_set: [none, io16]
override_sets:
  none: []
  io16:
    - {kind: precision16, layers: [input, "*Sigmoid*"]}
"""


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "space.yaml"
    p.write_text(text)
    return p


def test_good_space_resolves_paths_relative_to_file(tmp_path: Path) -> None:
    sub = tmp_path / "spaces"
    sub.mkdir()
    space = load_space(write(sub, GOOD))
    assert space.checkpoint == sub / "ck.pt"
    assert space.data.calibration.path == sub / "cal"
    assert space.dimensions.calib_size == IntRange(low=4, high=16, step=4)
    ovs = space.override_set("io16")
    assert ovs.overrides[0].kind == "precision16"
    assert ovs.overrides[0].layers == ("input", "*Sigmoid*")


@pytest.mark.parametrize(
    ("text", "fragments"),
    [
        (GOOD + "bogus: 1\n", ["key 'bogus'", "unknown key"]),
        (GOOD.replace("prelu: [keep, relu]", "prelu: [keep, tanh]"), ["dimensions", "'tanh'", "expected one of"]),
        (GOOD.replace("width: 8000", "width: eight"), ["dimensions", "'eight'", "positive integer"]),
        (GOOD.replace("low: 4, high: 16", "low: 16, high: 4"), ["calib_size", "low 16 > high 4"]),
        (GOOD.replace("override_set: [none, io16]", "override_set: [none, io32]"), ["io32", "not defined"]),
        (GOOD.replace("checkpoint: ck.pt\n", ""), ["key 'checkpoint'", "missing"]),
        (GOOD.replace("kind: precision16", "kind: precision99"), ["override_sets", "precision99"]),
        (GOOD.replace('"*Sigmoid*"', "\"x'; rm -rf /\""), ["layer pattern"]),
        ("study: [unclosed\n", ["malformed YAML", "line"]),
        ("- just\n- a list\n", ["top level is list"]),
    ],
)
def test_bad_spaces_are_one_line_errors(tmp_path: Path, text: str, fragments: list[str]) -> None:
    p = write(tmp_path, text)
    with pytest.raises(ConfigError) as err:
        load_space(p)
    msg = str(err.value)
    assert "\n" not in msg
    assert str(p) in msg
    for frag in fragments:
        assert frag in msg


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_space(tmp_path / "nope.yaml")


def test_enqueue_is_checked_against_dimensions(tmp_path: Path) -> None:
    ok = load_space(write(tmp_path, GOOD + "enqueue:\n  - {prelu: relu, calib_size: 8}\n"))
    assert ok.enqueue == ({"prelu": "relu", "calib_size": 8},)
    with pytest.raises(ConfigError, match="'colour' is not a dimension"):
        load_space(write(tmp_path, GOOD + "enqueue:\n  - {colour: red}\n"))
    with pytest.raises(ConfigError, match="prelu='tanh' is outside"):
        load_space(write(tmp_path, GOOD + "enqueue:\n  - {prelu: tanh}\n"))
    with pytest.raises(ConfigError, match="calib_size=32 is outside"):
        load_space(write(tmp_path, GOOD + "enqueue:\n  - {calib_size: 32}\n"))


def test_exact_topology_dimensions(tmp_path: Path) -> None:
    space = load_space(write(tmp_path, GOOD))
    assert (space.dimensions.gln_stats, space.dimensions.decoder, space.dimensions.mask_mul) == (
        "joint",
        "grouped",
        "repeat",
    )
    text = GOOD.replace("  width: 8000\n", "  width: 8000\n  gln_stats: split\n  decoder: [grouped, per_source]\n"
                        "  mask_mul: [repeat, per_source]\n")  # fmt: skip
    space = load_space(write(tmp_path, text + "enqueue:\n  - {decoder: per_source, mask_mul: per_source}\n"))
    assert space.dimensions.decoder == ["grouped", "per_source"] and space.dimensions.gln_stats == "split"
    for key, bad in (("gln_stats", "halves"), ("decoder", "[grouped, diagonal]"), ("mask_mul", "tiled")):
        p = write(tmp_path, GOOD.replace("  width: 8000\n", f"  width: 8000\n  {key}: {bad}\n"))
        with pytest.raises(ConfigError) as err:
            load_space(p)
        msg = str(err.value)
        assert "\n" not in msg and f"{key}:" in msg and "expected one of" in msg


def test_exact_dimensions_at_default_leave_the_fingerprint_alone(tmp_path: Path) -> None:
    plain = load_space(write(tmp_path, GOOD)).fingerprint()
    assert not {"gln_stats", "decoder", "mask_mul"} & set(plain["dimensions"])
    explicit = GOOD.replace("  width: 8000\n", "  width: 8000\n  gln_stats: joint\n  decoder: grouped\n")
    assert load_space(write(tmp_path, explicit)).fingerprint() == plain
    split = load_space(write(tmp_path, GOOD.replace("  width: 8000\n", "  width: 8000\n  gln_stats: split\n")))
    assert split.fingerprint()["dimensions"]["gln_stats"] == "split"


def test_shipped_hailo_space_reaches_the_rewrites() -> None:
    root = Path(__file__).resolve().parents[2] / "search_spaces"
    hailo = load_space(root / "convtasnet_hailo.yaml")
    dims = hailo.dimensions
    assert dims.gln_stats == "split" and dims.decoder == ["grouped", "per_source"]
    assert dims.mask_mul == ["repeat", "per_source"] and dims.width == [2048, 3200, 16000]
    seed, first = hailo.enqueue[0], hailo.enqueue[1]
    assert (seed["norm"], seed["width"], seed["calib_clip_length"], seed["calib_fill"]) == ("gLN", 16000, 3200, "pad")
    assert (seed["decoder"], seed["mask_mul"]) == ("grouped", "repeat")
    assert (first["decoder"], first["mask_mul"], first["width"]) == ("per_source", "per_source", 3200)
    demo = load_space(root / "demo.yaml")
    assert (demo.dimensions.gln_stats, demo.dimensions.decoder, demo.dimensions.mask_mul) == ("joint", "grouped", "repeat")
