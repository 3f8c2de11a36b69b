"""harness/schedule.py: neighbours do not share an export where the list allows it."""

from __future__ import annotations

import itertools

from harness.schedule import spread


def test_neighbours_need_different_exports_and_each_groups_order_is_kept() -> None:
    keys = ("prelu", "norm", "override_set")
    grid = [dict(zip(keys, c, strict=True)) for c in itertools.product(["keep", "relu"], ["gLN", "cLN"], ["none", "io16"])]
    out = spread(grid)
    assert sorted(map(repr, out)) == sorted(map(repr, grid))  # a permutation
    export = [(c["prelu"], c["norm"]) for c in out]
    assert all(a != b for a, b in zip(export, export[1:]))
    assert [c["override_set"] for c in out] == ["none"] * 4 + ["io16"] * 4


def test_one_group_keeps_the_users_order() -> None:
    cfgs = [{"width": 16000, "calib_size": n} for n in (4, 8, 16)]
    assert spread(cfgs) == cfgs
    assert spread([]) == []
