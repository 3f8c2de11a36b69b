"""bench/dfc_passes.py: its one-layer baseline table, the role-at-once repair it measures, and a short run."""

from __future__ import annotations

import importlib.util
import io
import re
import sys
from pathlib import Path

import pytest

from harness.backends import Override, OverrideSet
from harness.failures import classify
from harness.repair import RULES, AddOverride, next_fix

ROOT = Path(__file__).resolve().parents[2]


def _bench():
    spec = importlib.util.spec_from_file_location("bench_dfc_passes", ROOT / "bench" / "dfc_passes.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod
    spec.loader.exec_module(mod)
    return mod


def _neg(layer: str):
    return classify(
        "optimize",
        "NegativeSlopeExponentNonFixable",
        f"Quantization failed in layer convtas/ne_activation_{layer} due to unsupported required slope. "
        "Desired shift is 10.0, but op has only 8 data bits.",
    )


def test_a_role_family_is_fixed_at_the_first_failure_and_its_members_are_not_fixed_again() -> None:
    fix = next_fix(_neg("avgpool2"), "convtas/avgpool2", OverrideSet("none"), set(), family="role:gln_var_pool")
    assert fix is not None and fix.name == "negative_exponent:role:gln_var_pool"
    # the same failure again (the fix did not help): no redundant per-layer negative_exponent on a covered member
    again = next_fix(_neg("avgpool2"), "convtas/avgpool2", fix.overrides, {fix.name}, family="role:gln_var_pool")
    assert again is not None and not again.name.startswith("negative_exponent:")
    # without a role family (a backend with no roles): the layer first, as before
    plain = next_fix(_neg("avgpool2"), "convtas/avgpool2", OverrideSet("none"), set())
    assert plain is not None and plain.name == "negative_exponent:convtas/avgpool2"


def test_the_one_layer_table_keeps_the_rules_and_drops_only_family_fixes() -> None:
    rules = _bench().one_layer_rules()
    assert [r.signature for r in rules] == [r.signature for r in RULES]
    assert not any(isinstance(f, AddOverride) and f.scope == "family" for r in rules for f in r.fixes)
    after = OverrideSet("none+r1", (Override("negative_exponent", ("convtas/avgpool2",)),))
    fix = next_fix(_neg("avgpool4"), "convtas/avgpool4", after, {"negative_exponent:convtas/avgpool2"}, rules,
                   family="role:gln_var_pool")  # fmt: skip
    assert fix is not None and fix.name == "negative_exponent:convtas/avgpool4"


@pytest.mark.slow
def test_quick_run_counts_passes_and_prints_the_figure_last(dfc_python: Path, tmp_path: Path, demo_data_full: Path) -> None:
    out = io.StringIO()
    rows = _bench().bench(tmp_path, ("narrow",), stream=out, data=demo_data_full)  # not the checkout's data/
    by = {r["arm"]: r for r in rows}
    assert set(by) == {"hefsweep", "one-layer"}
    assert all(r["hef"] and r["optimize_passes"] >= 1 and r["compile_passes"] >= 1 for r in rows)
    assert by["one-layer"]["optimize_passes"] > by["hefsweep"]["optimize_passes"]
    last = out.getvalue().strip().splitlines()[-1]
    m = re.fullmatch(r"dfc_passes: (\d+) optimize passes to the first HEF, seed setup \(narrow model\) \(aim <= 2\)", last)
    assert m and int(m.group(1)) == by["hefsweep"]["optimize_passes"]
