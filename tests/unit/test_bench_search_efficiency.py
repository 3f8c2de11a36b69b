"""bench/search_efficiency.py: its figures are computed from the trials (censoring, best, ratio), and a tiny run
through the real sweep and pipeline on the fake DFC prints them in the bench format."""

from __future__ import annotations

import importlib.util
import io
import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _bench():
    spec = importlib.util.spec_from_file_location("bench_search_efficiency", ROOT / "bench" / "search_efficiency.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod
    spec.loader.exec_module(mod)
    return mod


def test_summary_counts_first_compilable_and_within_1db_with_censoring() -> None:
    se = _bench()
    T = se.Trial

    def trials(*values: float | None) -> list:
        return [T(i, v is not None, v, None if v is not None else "compile:X:y") for i, v in enumerate(values, 1)]

    runs = {
        "hefsweep": {0: trials(None, 10.0, 20.0), 1: trials(None, 19.5, None)},
        "random": {0: trials(None, None, 5.0), 1: trials(None, None, None)},
    }
    s = se.summarise(runs, budget=3)
    assert s["best"] == 20.0
    h, r = s["arms"]["hefsweep"], s["arms"]["random"]
    assert h["compilable"] == [2, 2] and h["within_1db"] == [3, 2]
    assert r["compilable"] == [3, 4] and r["compilable_misses"] == 1  # not reached: budget + 1
    assert r["within_1db"] == [4, 4] and r["within_1db_misses"] == 2
    assert h["compilable_median"] == 2 and r["compilable_mean"] == 3.5
    assert s["ratio"] == pytest.approx(3.5 / 2)
    # the random arm's draws after the enqueued seed: 1 of 4 compiled
    assert s["random_compile_rate"] == pytest.approx(0.25) and s["random_expected_first"] == pytest.approx(5.0)


def test_every_arm_starts_from_the_same_seed_config_of_the_shipped_space() -> None:
    import yaml

    shipped = yaml.safe_load((ROOT / "search_spaces" / "convtasnet_hailo.yaml").read_text())
    assert _bench().SEED_CONFIG == shipped["enqueue"][0]


@pytest.mark.slow
def test_tiny_run_through_the_real_sweep_prints_the_figure_last(dfc_python: Path, tmp_path: Path) -> None:
    out = io.StringIO()
    s = _bench().bench(tmp_path, seeds=1, budget=3, blocks=1, stream=out)
    assert set(s["arms"]) == {"hefsweep", "random", "tpe-penalty"}
    for a in s["arms"].values():
        assert a["trials"] == 3 and 1 <= a["compilable_mean"] <= 4 and 1 <= a["within_1db_mean"] <= 4
    lines = out.getvalue().strip().splitlines()
    m = re.fullmatch(r"search_efficiency: (\d+\.\d+)x fewer trials than random to the first compilable config "
                     r"\(aim >= 5x\)", lines[-1])  # fmt: skip
    assert m and float(m.group(1)) == pytest.approx(s["ratio"], abs=0.01)
    assert any(line.strip().startswith("hefsweep    first compilable: mean") for line in lines)
