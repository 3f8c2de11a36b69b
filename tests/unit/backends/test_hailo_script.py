"""Model-script generation: exact .alls text, strict validation before any text exists."""

from __future__ import annotations

import pytest

from harness.backends import Override, OverrideSet, OverrideTargetNotFound, QuantSettings
from harness.backends.hailo import build_script, safe_layer_name
from harness.errors import ConfigError

LAYERS = {
    "convtas/input_layer1": {"type": "input_layer", "original_names": ["input"]},
    "convtas/conv1": {"type": "conv", "original_names": ["/encoder/Conv"]},
    "convtas/avgpool1": {"type": "avgpool", "original_names": ["/masker/bottleneck/bottleneck.0/ReduceMean"]},
    "convtas/avgpool2": {"type": "avgpool", "original_names": ["/masker/bottleneck/bottleneck.0/ReduceMean_1"]},
    "convtas/activation1": {"type": "activation", "original_names": ["/masker/output_act/Sigmoid"]},
    "convtas/deconv1": {"type": "deconv", "original_names": ["/ConvTranspose"]},
    "convtas/output_layer1": {"type": "output_layer", "original_names": ["output"]},
}


def test_exact_script_for_every_override_kind() -> None:
    ovs = OverrideSet(
        "all_kinds",
        (
            Override("optimization_level", (), 2),
            Override("compression_level", (), 0),
            Override("negative_exponent", ("avgpool*",)),
            Override("precision16", ("convtas/avgpool2", "output_layer1")),
            Override("activation_clipping", ("*Sigmoid*",), 99.9),
            Override("global_avgpool_reduction", ("type:avgpool",), 4),
        ),
    )
    script = build_script(ovs, QuantSettings(), LAYERS, calibset_size=16)
    assert script.text == (
        "model_optimization_flavor(optimization_level=2, compression_level=0)\n"
        "model_optimization_config(calibration, batch_size=8, calibset_size=16)\n"
        "model_optimization_config(negative_exponent, layers=[convtas/avgpool1, convtas/avgpool2], rank=0)\n"
        "quantization_param([convtas/avgpool2, convtas/output_layer1], precision_mode=a16_w16)\n"
        "pre_quantization_optimization(activation_clipping, layers=[convtas/activation1], mode=percentile, "
        "clipping_values=[0.1, 99.9])\n"
        "pre_quantization_optimization(global_avgpool_reduction, layers=[convtas/avgpool1, convtas/avgpool2], "
        "division_factors=[1, 4])\n"
    )
    assert script.negative_exponent == ("convtas/avgpool1", "convtas/avgpool2")
    assert script.precision16 == ("convtas/avgpool2", "convtas/output_layer1")
    assert script.clipped == ("convtas/activation1",)
    assert script.avgpool_reduction == ("convtas/avgpool1", "convtas/avgpool2") and script.division_factors == ((1, 4),)
    assert script.info()["global_avgpool_reduction_layers"] == ["convtas/avgpool1", "convtas/avgpool2"]
    assert script.info()["global_avgpool_reduction_factors"] == [[1, 4]]
    assert len(script.applied) == 7 and script.ignored == ()  # 6 overrides + minmax (the DFC default) reported


def test_settings_map_to_global_lines_and_ignored_reasons() -> None:
    s = build_script(OverrideSet("none"), QuantSettings(method="percentile", activation_bits=16), LAYERS, calibset_size=4)
    assert s.text == (
        "model_optimization_config(calibration, batch_size=4, calibset_size=4)\n"
        "pre_quantization_optimization(activation_clipping, layers={*}, mode=percentile, "
        "clipping_values=[0.001, 99.999])\n"
        "quantization_param({*}, precision_mode=a16_w8)\n"
    )
    e = build_script(OverrideSet("none"), QuantSettings(method="entropy", per_channel=False), LAYERS, calibset_size=64)
    assert e.text == "model_optimization_config(calibration, batch_size=8, calibset_size=64)\n"
    assert len(e.ignored) == 2 and any("entropy" in x for x in e.ignored)


def test_unknown_target_raises_before_any_text_with_nearest_hn_names() -> None:
    bad = OverrideSet("bad", (Override("negative_exponent", ("convtas/ne_activation_avgpool1",)),))
    with pytest.raises(OverrideTargetNotFound) as err:
        build_script(bad, QuantSettings(), LAYERS, calibset_size=8)
    assert err.value.candidates[0] == "convtas/avgpool1"


@pytest.mark.parametrize(
    "value_override",
    [
        Override("optimization_level", (), 7),
        Override("compression_level", (), "max"),
        Override("activation_clipping", ("conv1",), 20.0),
        Override("negative_exponent", ("conv1",), 3),
        Override("global_avgpool_reduction", ("avgpool1",), 0),
        Override("global_avgpool_reduction", ("avgpool1",), 1),
        Override("global_avgpool_reduction", ("avgpool1",), -2),
        Override("global_avgpool_reduction", ("avgpool1",), 2.5),
        Override("global_avgpool_reduction", ("avgpool1",), True),
        Override("global_avgpool_reduction", ("avgpool1",), 1000),
        Override("global_avgpool_reduction", ("avgpool1",), "1,1"),
        Override("global_avgpool_reduction", ("avgpool1",), "2, 2]"),
        Override("global_avgpool_reduction", ("avgpool1",), "two"),
        Override("global_avgpool_reduction", ("conv1", "avgpool1"), 2),  # a conv is no avgpool
    ],
)
def test_out_of_range_values_are_config_errors(value_override: Override) -> None:
    with pytest.raises(ConfigError):
        build_script(OverrideSet("x", (value_override,)), QuantSettings(), LAYERS, calibset_size=8)


@pytest.mark.parametrize("name", ["conv1)\nquantization_param({*}", "a b", "net/x/y", "conv'1", "{*}", "conv[1]"])
def test_unsafe_names_never_enter_a_script(name: str) -> None:
    with pytest.raises(ConfigError):
        safe_layer_name(name)
    layers = {**LAYERS, name: {"type": "conv", "original_names": []}}
    with pytest.raises(ConfigError):
        build_script(OverrideSet("x", (Override("precision16", ("*",)),)), QuantSettings(), layers, calibset_size=8)


@pytest.mark.parametrize(("value", "factors"), [(None, "[1, 2]"), (2, "[1, 2]"), (8, "[1, 8]"), ("2,2", "[2, 2]"),
                                                 ("1x4", "[1, 4]"), ((2, 3), "[2, 3]")])  # fmt: skip
def test_global_avgpool_reduction_factors(value: object, factors: str) -> None:
    ovs = OverrideSet("r", (Override("global_avgpool_reduction", ("avgpool1",), value),))  # type: ignore[arg-type]
    text = build_script(ovs, QuantSettings(), LAYERS, calibset_size=8).text
    assert text.splitlines()[-1] == (
        f"pre_quantization_optimization(global_avgpool_reduction, layers=[convtas/avgpool1], division_factors={factors})"
    )


def _pools(n: int, extra: tuple[str, ...] = ()) -> dict[str, dict[str, object]]:
    names = ["input_layer1", *(f"avgpool{i}" for i in range(1, n + 1)), *extra, "output_layer1"]
    return {f"convtas/{x}": {"type": x.rstrip("0123456789"), "original_names": []} for x in names}


def test_glob_set_only_when_it_selects_exactly_the_resolved_layers() -> None:
    layers = _pools(120)

    def line(*patterns: str) -> str:
        ovs = OverrideSet("g", (Override("precision16", patterns),))
        return build_script(ovs, QuantSettings(), layers, calibset_size=8).text.splitlines()[-1]

    assert line("avgpool*") == "quantization_param({avgpool*}, precision_mode=a16_w16)"
    assert line("type:avgpool") == "quantization_param({avgpool*}, precision_mode=a16_w16)"
    assert line("avgpool1*") == "quantization_param({avgpool1*}, precision_mode=a16_w16)"  # 1, 10-19, 100-120
    # avgpool1..avgpool20 share the prefix "avgpool", but {avgpool*} would also take avgpool21..120
    assert line("avgpool[1-9]", "avgpool1[0-9]", "avgpool20").count("convtas/avgpool") == 20
    assert line("*") == "quantization_param({*}, precision_mode=a16_w16)"
    assert line("avgpool1[0-4]") == (  # short lists stay explicit
        "quantization_param([convtas/avgpool10, convtas/avgpool11, convtas/avgpool12, convtas/avgpool13, "
        "convtas/avgpool14], precision_mode=a16_w16)"
    )
    two_nets = {**layers, "other/avgpool121": {"type": "avgpool", "original_names": []}}
    ovs = OverrideSet("g", (Override("precision16", ("avgpool*",)),))
    assert "{" not in build_script(ovs, QuantSettings(), two_nets, calibset_size=8).text  # bare globs: one net only


def test_glob_sets_still_check_every_name() -> None:
    layers = {**_pools(30), "convtas/avgpool31)": {"type": "avgpool", "original_names": []}}
    for pattern in ("avgpool*", "type:avgpool", "*"):
        with pytest.raises(ConfigError):
            ovs = OverrideSet("x", (Override("precision16", (pattern,)),))
            build_script(ovs, QuantSettings(), layers, calibset_size=8)
