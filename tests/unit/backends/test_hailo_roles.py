"""HN selectors (``type:``, ``role:``): roles read from the graph, on the real DFC's HN and on built variants."""

from __future__ import annotations

import json
import os
import re
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from support.real_dfc import REAL_DFC

from harness.backends import Override, OverrideSet, OverrideTargetNotFound, QuantSettings
from harness.backends.hailo import build_script, match_patterns
from harness.backends.hailo._layers import ROLES, layer_roles, layer_types, roles_of
from harness.errors import ConfigError
from harness.failures import classify
from harness.space import _LAYER_PATTERN, load_space

REPO = Path(__file__).resolve().parents[3]
REAL_HN = Path(os.environ.get("HEFSWEEP_REAL_HN") or REAL_DFC / "real_hn.json")
needs_real_hn = pytest.mark.skipif(not REAL_HN.is_file() and not os.environ.get("CI"),  # CI: missing = failure
                                   reason=f"ground-truth HN {REAL_HN} not present")  # fmt: skip


# -- an HN built the way DFC 3.33 lowers Conv-TasNet (real_dfc/README.md), small enough to count by hand -----------


def build_hn(norm: str = "gLN", blocks: int = 2, *, per_source: bool = False, sigmoid: bool = False) -> dict[str, Any]:
    """Layers of a Conv-TasNet HN: encoder, norm, ``blocks`` TCN blocks (PReLU, norm, dw, PReLU, norm), a PReLU, the
    mask conv and multiply, the decoder. gLN as avgpool/reduce_mean pairs; cLN as reduce_means over C only [I]."""
    layers: dict[str, dict[str, Any]] = {}
    count: Counter[str] = Counter()

    def add(kind: str, inputs: list[str], prefix: str | None = None, **params: Any) -> str:
        p = prefix or kind
        count[p] += 1
        name = f"convtas/{p}{count[p]}"
        layers[name] = {"type": kind, "input": inputs, "output": [], "params": params, "original_names": [name]}
        for i in inputs:
            layers[i]["output"].append(name)
        return name

    def square(x: str) -> str:
        return add("feature_multiplier", [x], "square", feature_multiplier_type="square")

    def normed(x: str) -> str:
        if norm == "gLN":
            mean = add("reduce_mean", [add("avgpool", [x])], reduce_axes=[3])
            sub = add("ew_sub", [x, add("resize", [mean])])
            var = add("reduce_mean", [add("avgpool", [square(sub)])], reduce_axes=[3])
            scale = add("resize", [add("activation", [var], activation="inv_sqrt")])
        else:
            sub = add("ew_sub", [x, add("reduce_mean", [x], reduce_axes=[3])])
            scale = add("activation", [add("reduce_mean", [square(sub)], reduce_axes=[3])], activation="inv_sqrt")
        return add("normalization", [add("ew_mult", [sub, scale])], activation="linear")

    def prelu(x: str) -> str:
        hi = add("reduce_max", [add("concat", [add("const_input", []), x])])
        neg = add("normalization", [add("concat", [add("const_input", []), x])])
        lo = add("normalization", [add("reduce_max", [neg])])
        return add("ew_add", [hi, add("normalization", [lo], "mul_and_add")])

    enc = add("conv", [add("input_layer", [])], activation="linear")
    x = add("conv", [normed(enc)], activation="linear")
    for _ in range(blocks):
        h = normed(prelu(add("conv", [x], activation="linear")))
        h = normed(prelu(add("dw", [h], activation="linear")))
        x = add("ew_add", [x, add("conv", [h], activation="linear")])
    x = prelu(x)
    if per_source:  # mask_mul: per_source + decoder: per_source
        outs = [add("deconv", [add("ew_mult", [add("conv", [x], activation="relu"), enc])]) for _ in range(2)]
        add("output_layer", [add("concat", outs)])
    else:
        mask = add("conv", [x], activation="linear" if sigmoid else "relu")
        if sigmoid:
            mask = add("activation", [mask], activation="sigmoid")
        repeated = add("concat", [enc, add("shortcut", [enc])])
        add("output_layer", [add("deconv", [add("ew_mult", [mask, repeated])])])
    return layers


def counts(layers: Any) -> dict[str, int]:
    return {k: len(v) for k, v in layer_roles(layers).items()}


def test_roles_on_a_built_gln_hn_count_per_norm_and_per_prelu() -> None:
    hn = build_hn("gLN", blocks=2)  # 5 norms, 5 PReLUs
    assert counts(hn) == {
        "gln_mean_pool": 5, "gln_var_pool": 5, "gln_stats": 20, "norm_stats": 20, "norm_rsqrt": 5, "norm_out": 5,
        "prelu": 50, "mask": 2, "decoder": 1, "encoder": 1, "io": 2,
    }  # fmt: skip
    r = layer_roles(hn)
    assert all(hn[hn[p]["input"][0]]["type"] == "feature_multiplier" for p in r["gln_var_pool"])
    assert r["encoder"] == ("convtas/conv1",) and r["decoder"] == ("convtas/deconv1",)
    assert set(r["mask"]) == {"convtas/ew_mult6", "convtas/conv7"}  # the relu mask conv, not the encoder side
    assert not set(r["norm_out"]) & set(r["prelu"])  # PReLU normalizations are not norm outputs


def test_cln_hn_has_no_gln_roles_but_norm_roles_still_match() -> None:
    c = counts(build_hn("cLN", blocks=2))
    assert c["gln_mean_pool"] == c["gln_var_pool"] == c["gln_stats"] == 0
    assert (c["norm_stats"], c["norm_rsqrt"], c["norm_out"], c["prelu"]) == (10, 5, 5, 50)


def test_mask_and_decoder_per_source_and_with_a_separate_sigmoid() -> None:
    r = layer_roles(build_hn("gLN", blocks=1, per_source=True))
    assert [n.split("/")[1] for n in r["decoder"]] == ["deconv1", "deconv2"]
    assert Counter(n.split("/")[1].rstrip("0123456789") for n in r["mask"]) == {"conv": 2, "ew_mult": 2}
    s = layer_roles(build_hn("gLN", blocks=1, sigmoid=True))
    assert Counter(n.split("/")[1].rstrip("0123456789") for n in s["mask"]) == {"conv": 1, "activation": 1,
                                                                                "ew_mult": 1}  # fmt: skip


def test_selectors_combine_with_globs_and_name_only_tables_have_no_roles() -> None:
    hn = build_hn("gLN", blocks=1)
    got = match_patterns(["type:avgpool", "role:gln_var_pool", "type:ew_*", "conv1"], hn)
    assert len(got["type:avgpool"]) == 6 and set(got["role:gln_var_pool"]) < set(got["type:avgpool"])
    assert {hn[n]["type"] for n in got["type:ew_*"]} == {"ew_add", "ew_sub", "ew_mult"}
    assert got["conv1"] == ("convtas/conv1",)
    with pytest.raises(OverrideTargetNotFound) as err:
        match_patterns(["role:norm_out"], list(hn))  # names only: no graph, no roles
    assert err.value.roles is None and "roles here" not in str(err.value)
    with pytest.raises(ConfigError):
        match_patterns(["role:nope"], hn)


def test_missing_role_lists_the_roles_and_types_the_hn_has_and_keeps_the_signature() -> None:
    hn = build_hn("cLN", blocks=1)
    bad = OverrideSet("varpool", (Override("negative_exponent", ("role:gln_var_pool",)),))
    with pytest.raises(OverrideTargetNotFound) as err:
        build_script(bad, QuantSettings(), hn, calibset_size=8)
    e = err.value
    msg = str(e)
    assert msg.startswith("Layer 'role:gln_var_pool' not found in model: no layer matches") and "\n" not in msg
    assert e.roles is not None and "gln_var_pool" not in e.roles and e.roles["norm_out"] == 3
    assert "roles here: norm_stats (6), norm_rsqrt (3), norm_out (3), prelu (30)" in msg
    assert e.types is not None and "avgpool" not in e.types and "types here: normalization (" in msg
    sig = classify("optimize", "OverrideTargetNotFound", msg).signature
    assert sig == "optimize:OverrideTargetNotFound:role:gln_var_pool"
    with pytest.raises(OverrideTargetNotFound) as t:
        match_patterns(["type:avgpol"], build_hn("gLN", blocks=1))
    assert t.value.candidates[0] == "type:avgpool"


def test_space_pattern_accepts_exactly_the_known_roles() -> None:
    m = re.search(r"role:\(\?:([a-z_|]+)\)", _LAYER_PATTERN.pattern)
    assert m is not None
    in_regex = set(m.group(1).split("|"))
    assert in_regex == set(ROLES)
    for ok in ["role:gln_var_pool", "role:io", "type:avgpool", "type:ew_*", "convtas/avgpool*", "conv1:0", "*Sigmoid*"]:
        assert _LAYER_PATTERN.fullmatch(ok), ok
    for bad in ["role:nope", "role:io)", "type:conv)", "type:", "role:", "type:a b", "{role:io}"]:
        assert not _LAYER_PATTERN.fullmatch(bad), bad


# -- the ground truth: the HN DFC 3.33 produced from a real Conv-TasNet --------------------------------------------


@pytest.fixture(scope="module")
def real() -> dict[str, Any]:
    if not REAL_HN.is_file() and not os.environ.get("CI"):
        pytest.skip(f"ground-truth HN {REAL_HN} not present")
    return json.loads(REAL_HN.read_text())["layers"]


def _cln_of(layers: dict[str, Any]) -> dict[str, Any]:
    """The real HN with its norms made channel-only: the time avgpools and the resize broadcasts removed [I]."""
    out = {k: {**v, "input": list(v["input"]), "output": list(v["output"])} for k, v in layers.items()}
    for name in [k for k, v in layers.items() if v["type"] in ("avgpool", "resize")]:
        layer = out.pop(name)
        (src,) = layer["input"]
        out[src]["output"] = [o for x in out[src]["output"] for o in ([*layer["output"]] if x == name else [x])]
        for dst in layer["output"]:
            out[dst]["input"] = [src if x == name else x for x in out[dst]["input"]]
    return out


@needs_real_hn
def test_roles_on_the_real_hn(real: dict[str, Any]) -> None:
    assert counts(real) == {
        "gln_mean_pool": 49, "gln_var_pool": 49, "gln_stats": 196, "norm_stats": 196, "norm_rsqrt": 49,
        "norm_out": 49, "prelu": 490, "mask": 2, "decoder": 1, "encoder": 1, "io": 2,
    }  # fmt: skip
    r = layer_roles(real)
    assert "convtas/avgpool6" in r["gln_var_pool"] and real["convtas/avgpool6"]["input"] == ["convtas/square3"]
    assert roles_of("convtas/avgpool6", real) == ("gln_var_pool", "gln_stats", "norm_stats")
    assert "convtas/avgpool5" in r["gln_mean_pool"] and "convtas/reduce_mean6" in r["gln_stats"]
    assert set(r["gln_mean_pool"]) | set(r["gln_var_pool"]) == {k for k, v in real.items() if v["type"] == "avgpool"}
    assert all(real[a]["params"]["activation"] == "inv_sqrt" for a in r["norm_rsqrt"])
    assert "convtas/normalization1" in r["norm_out"] and "convtas/normalization145" in r["norm_out"]
    for prelu_half in ("convtas/normalization2", "convtas/normalization3", "convtas/mul_and_add1"):
        assert prelu_half in r["prelu"] and prelu_half not in r["norm_out"]
    assert Counter(real[n]["type"] for n in r["prelu"]) == {
        "normalization": 147, "concat": 98, "const_input": 98, "reduce_max": 98, "ew_add": 49,
    }  # fmt: skip
    assert "convtas/concat1" not in r["prelu"]  # the encoder repeat, not a PReLU
    assert r["mask"] == ("convtas/conv74", "convtas/ew_mult50") and r["decoder"] == ("convtas/deconv1",)
    assert r["encoder"] == ("convtas/conv1",) and r["io"] == ("convtas/input_layer1", "convtas/output_layer1")
    assert layer_types(real)["avgpool"] == 98 and "ew_div" not in layer_types(real)


@needs_real_hn
def test_real_hn_made_cln_keeps_norm_roles_and_reports_the_rest(real: dict[str, Any]) -> None:
    cln = _cln_of(real)
    c = counts(cln)
    assert (c["gln_var_pool"], c["gln_mean_pool"], c["gln_stats"]) == (0, 0, 0)
    assert (c["norm_stats"], c["norm_rsqrt"], c["norm_out"], c["prelu"], c["mask"]) == (98, 49, 49, 490, 2)
    with pytest.raises(OverrideTargetNotFound) as err:
        match_patterns(["role:gln_var_pool"], cln)
    assert "roles here: norm_stats (98), norm_rsqrt (49), norm_out (49), prelu (490)" in str(err.value)
    assert err.value.types is not None and "avgpool" not in err.value.types


def _hailo_spaces() -> list[Path]:
    paths = sorted((REPO / "search_spaces").glob("*.yaml"))
    return [p for p in paths if load_space(p).backend == "hailo"]


def test_the_shipped_hailo_space_is_found() -> None:
    assert REPO / "search_spaces" / "convtasnet_hailo.yaml" in _hailo_spaces()


@needs_real_hn
@pytest.mark.parametrize("path", _hailo_spaces(), ids=lambda p: p.name)
def test_every_shipped_override_set_resolves_on_the_real_hn(path: Path, real: dict[str, Any]) -> None:
    space = load_space(path)
    for name in space.override_sets:
        ovs = space.override_set(name)
        for ov in ovs.overrides:
            if ov.layers:
                assert all(match_patterns(ov.layers, real).values()), (name, ov)
        script = build_script(ovs, QuantSettings(), real, calibset_size=16)
        assert "ne_activation" not in script.text and "ew_div" not in script.text, name


@needs_real_hn
def test_shipped_sets_write_the_expected_lines_on_the_real_hn(real: dict[str, Any]) -> None:
    space = load_space(REPO / "search_spaces" / "convtasnet_hailo.yaml")

    def body(name: str) -> list[str]:
        return build_script(space.override_set(name), QuantSettings(), real, calibset_size=16).text.splitlines()[1:]

    assert body("io16") == ["quantization_param([convtas/input_layer1, convtas/output_layer1], precision_mode=a16_w16)"]
    norm_out = ", ".join(layer_roles(real)["norm_out"])
    assert body("norm16") == [f"quantization_param([{norm_out}], precision_mode=a16_w16)"]
    assert body("norm_clip") == [
        f"pre_quantization_optimization(activation_clipping, layers=[{norm_out}], mode=percentile, "
        "clipping_values=[0.01, 99.99])"
    ]
    (negexp,) = body("varpool_negexp")
    assert negexp.startswith("model_optimization_config(negative_exponent, layers=[convtas/avgpool10, ")
    assert "convtas/avgpool6," in negexp and "convtas/avgpool5," not in negexp and negexp.endswith("], rank=0)")
    stats = build_script(space.override_set("stats16"), QuantSettings(), real, calibset_size=16)
    assert len(stats.precision16) == 196


@needs_real_hn
def test_glob_sets_on_the_real_hn(real: dict[str, Any]) -> None:
    ovs = OverrideSet(
        "globs",
        (
            Override("precision16", ("type:avgpool",)),  # all 98 avgpools: {avgpool*}
            Override("precision16", ("role:gln_var_pool",)),  # 49 of them: avgpool* would take the mean pools too
            Override("activation_clipping", ("type:ew_add",), 99.9),
            Override("precision16", ("type:normalization",)),  # normalization* and mul_and_add*: no one prefix
            Override("precision16", ("normalization*",)),
            Override("negative_exponent", ("*",)),
            Override("global_avgpool_reduction", ("role:gln_var_pool",), 2),
        ),
    )
    lines = build_script(ovs, QuantSettings(), real, calibset_size=16).text.splitlines()[1:]
    assert lines[0] == "quantization_param({avgpool*}, precision_mode=a16_w16)"
    assert lines[1].startswith("quantization_param([convtas/avgpool10, ") and lines[1].count("convtas/") == 49
    assert lines[2] == (
        "pre_quantization_optimization(activation_clipping, layers={ew_add*}, mode=percentile, "
        "clipping_values=[0.1, 99.9])"
    )
    assert lines[3].startswith("quantization_param([") and lines[3].count("convtas/") == 196
    assert lines[4] == "quantization_param({normalization*}, precision_mode=a16_w16)"
    assert lines[5] == "model_optimization_config(negative_exponent, layers={*}, rank=0)"
    assert lines[6].startswith("pre_quantization_optimization(global_avgpool_reduction, layers=[convtas/avgpool10, ")
    assert lines[6].endswith("], division_factors=[1, 2])") and lines[6].count("convtas/") == 49


def test_the_repair_family_of_a_variance_pool_is_its_role_through_layer_map_json(
    real: dict[str, Any], tmp_path: Path
) -> None:
    """The harness diagnoses from layer_map.json (never the HAR): it carries the edges roles need, so the repair
    loop's family step covers the 49 variance pools, not the 98 avgpools."""
    from harness.backends import Translated
    from harness.backends.hailo import HailoBackend, layer_map
    from harness.repair import next_fix

    (tmp_path / "layer_map.json").write_text(json.dumps(layer_map(real)))
    tr = Translated(path=tmp_path / "model.har", input_name="convtas/input_layer1", width=16000, layers=tuple(real))
    assert HailoBackend.family("convtas/avgpool6", tr) == "role:gln_var_pool"
    assert HailoBackend.family("convtas/avgpool5", tr) == "role:gln_mean_pool"
    assert HailoBackend.family("convtas/conv5", tr) is None
    msg = ("Quantization failed in layer convtas/ne_activation_avgpool{} due to unsupported required slope. "
           "Desired shift is 10.0, but op has only 8 data bits")  # fmt: skip
    f = classify("optimize", "NegativeSlopeExponentNonFixable", msg.format(6))
    after_one = OverrideSet("none+r1", (Override("negative_exponent", ("convtas/avgpool2",)),))
    fix = next_fix(f, "convtas/avgpool6", after_one, {"negative_exponent:convtas/avgpool2"},
                   family=HailoBackend.family("convtas/avgpool6", tr))  # fmt: skip
    assert fix is not None and fix.overrides.overrides[-1] == Override("negative_exponent", ("role:gln_var_pool",))
    script = build_script(fix.overrides, QuantSettings(), real, calibset_size=4)
    assert len(script.negative_exponent) == 49  # variance pools only: avgpool2 (norm 1) and the role's 48 others
    assert "convtas/avgpool6" in script.negative_exponent and "convtas/avgpool5" not in script.negative_exponent
