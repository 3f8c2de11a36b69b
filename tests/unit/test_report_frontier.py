"""The frontier section's pieces without a study: axes, the highlighted trial, the table, frontier_point."""

from __future__ import annotations

import json
import re
from types import SimpleNamespace

import pytest

from harness.errors import HarnessError
from harness.feasibility import frontier_point
from harness.model import capacity, resized_config
from harness.report._frontier import FrontierTrial, frontier_axes, frontier_figure, frontier_table, is_frontier
from tests.support.models import tiny_config


def trial(number: int, feasible: bool, **values: float) -> FrontierTrial:
    base = dict(n_filters=16, bn_chan=8, hid_chan=16, skip_chan=8, n_blocks=2, n_repeats=1, width=2048, n_layers=2,
                capacity_params=1000.0, capacity_macs=1e6)  # fmt: skip
    v = {k: float(x) for k, x in {**base, **values}.items()}
    v["max_channels"] = max(v["n_filters"], v["bn_chan"], v["hid_chan"], v["skip_chan"])
    return FrontierTrial(number, feasible, v, None if feasible else "compile:X:agent_infeasible", None, True, None)


def test_axes_default_to_params_and_the_most_varied_and_can_be_chosen() -> None:
    trials = [trial(0, True, hid_chan=16), trial(1, False, hid_chan=32, width=16000), trial(2, True, hid_chan=48)]
    # 3 distinct max_channels (= hid_chan here) vs 2 widths: the widest layer, which decides a row, wins the tie
    assert frontier_axes(trials) == ("capacity_params", "max_channels")
    assert frontier_axes(trials[:2]) == ("capacity_params", "width")  # ties: width first
    assert frontier_axes(trials, ["bn_chan", "n_layers"]) == ("bn_chan", "n_layers")
    with pytest.raises(HarnessError, match=r"--frontier bn_chan,depth: unknown axis depth; expected two of capacity_params"):
        frontier_axes(trials, ["bn_chan", "depth"])


def test_the_star_is_the_largest_feasible_model_and_the_table_lists_them_largest_first() -> None:
    trials = [trial(0, True, capacity_macs=5e6), trial(1, False, capacity_macs=9e6), trial(2, True, capacity_macs=7e6)]
    fig = frontier_figure(trials, ("capacity_params", "width"))
    names = [d.name for d in fig.data]
    assert names == ["feasible (compiled)", "infeasible (failed)", "largest feasible: trial #2"]
    assert "1 infeasible" in fig.layout.title.text and "2 feasible" in fig.layout.title.text
    table = frontier_table(trials, lambda run: "-")
    assert re.findall(r"<td class='num'>\d</td><td class='num'>#(\d)</td>", table) == ["2", "0"]
    assert "No frontier trial compiled yet" in frontier_table(trials[1:2], lambda run: "-")
    with pytest.raises(ValueError, match="no finished trial"):
        frontier_figure([], ("capacity_params", "width"))


def test_is_frontier_reads_the_study_fingerprint() -> None:
    assert is_frontier(SimpleNamespace(user_attrs={"hefsweep.space": json.dumps({"mode": "frontier", "dimensions": {}})}))
    assert not is_frontier(SimpleNamespace(user_attrs={"hefsweep.space": json.dumps({"dimensions": {}})}))
    assert not is_frontier(SimpleNamespace(user_attrs={}))


def test_frontier_point_is_the_resized_capacity() -> None:
    base = tiny_config()
    p = frontier_point(base, {"hid_chan": 32, "n_blocks": None, "bn_chan": base.bn_chan, "width": 3200})
    cap = capacity(resized_config(base, {"hid_chan": 32}), 3200)
    assert p.value == cap.macs and p.metrics["capacity_params"] == cap.params
    assert p.changed == {"hid_chan": 32} and p.needs_retraining
    assert p.arch == {"n_filters": 16, "bn_chan": 8, "hid_chan": 32, "skip_chan": 8, "n_blocks": 2, "n_repeats": 1,
                      "width": 3200, "n_layers": 2}  # fmt: skip
    same = frontier_point(base, {"hid_chan": base.hid_chan, "width": 3200, "tile_width": 1024})
    assert not same.needs_retraining and same.metrics["capacity_frames"] == (1024 - 8) // 4 + 1  # the tile's width
