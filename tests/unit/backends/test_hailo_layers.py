"""Layer identity: DFC message names -> HN layers -> ONNX nodes; strict override-pattern matching."""

from __future__ import annotations

import pytest

from harness.backends import OverrideTargetNotFound
from harness.backends.hailo import layer_map, match_patterns, resolve_layer

HN = {
    "convtas/input_layer1": {"type": "input_layer", "original_names": ["input"]},
    "convtas/conv1": {"type": "conv", "original_names": ["/encoder/Conv"]},
    "convtas/avgpool6": {"type": "avgpool", "original_names": ["/masker/TCN.1/shared_block/shared_block.2/ReduceMean"]},
    "convtas/ew_add3": {"type": "ew_add", "original_names": ["/masker/Add"]},
    "convtas/dw66": {"type": "dw", "original_names": ["/masker/TCN.9/shared_block/shared_block.3/Conv"]},
    "convtas/conv69": {"type": "conv", "original_names": ["/masker/TCN.9/res_conv/Conv"]},
    "convtas/activation2": {"type": "activation", "original_names": ["/masker/output_act/Sigmoid"]},
    "convtas/output_layer1": {"type": "output_layer", "original_names": ["output"]},
}


@pytest.mark.parametrize(
    ("named", "layer", "via"),
    [
        ("convtas/avgpool6", "convtas/avgpool6", "exact"),
        ("avgpool6", "convtas/avgpool6", "scoped"),
        ("convtas/ne_activation_avgpool6", "convtas/avgpool6", "invented:ne_activation_"),
        ("ne_activation_avgpool6", "convtas/avgpool6", "invented:ne_activation_"),
        ("other_net/ne_activation_avgpool6", "convtas/avgpool6", "invented:ne_activation_"),
        ("auto_spatial_reshape_from_dw66_to_conv69_1", "convtas/dw66", "invented:auto_spatial_reshape_"),
        ("convtas/precision_change_ew_add3", "convtas/ew_add3", "suffix"),
        ("/masker/Add", "convtas/ew_add3", "onnx"),
        ("'convtas/conv1'", "convtas/conv1", "exact"),
    ],
)
def test_resolves_dfc_names_to_hn_layers(named: str, layer: str, via: str) -> None:
    ref = resolve_layer(named, HN)
    assert ref.resolved and ref.hn_layer == layer and ref.via == via
    assert ref.onnx_nodes == tuple(HN[layer]["original_names"])


def test_resolves_with_names_only_and_reports_nearest_when_unresolved() -> None:
    ref = resolve_layer("ne_activation_avgpool6", list(HN))
    assert ref.hn_layer == "convtas/avgpool6" and ref.onnx_nodes == ()
    miss = resolve_layer("convtas/mul_and_add78", HN)
    assert not miss.resolved and miss.hn_layer is None
    assert miss.nearest and all(n in HN for n in miss.nearest)
    assert miss.to_dict()["hn_layer"] is None


def test_match_patterns_bare_scoped_glob_and_onnx_names() -> None:
    got = match_patterns(["avgpool6", "convtas/conv*", "*Sigmoid*", "output_layer1"], HN)
    assert got["avgpool6"] == ("convtas/avgpool6",)
    assert got["convtas/conv*"] == ("convtas/conv1", "convtas/conv69")
    assert got["*Sigmoid*"] == ("convtas/activation2",)  # via original_names: ORT-style patterns carry over
    assert got["output_layer1"] == ("convtas/output_layer1",)


def test_invented_names_are_never_accepted_as_targets() -> None:
    with pytest.raises(OverrideTargetNotFound) as err:
        match_patterns(["convtas/ne_activation_avgpool6"], HN)
    assert err.value.candidates[0] == "convtas/avgpool6"  # the layer it stands for comes first
    assert "Layer 'convtas/ne_activation_avgpool6' not found in model" in str(err.value)
    with pytest.raises(OverrideTargetNotFound):
        match_patterns(["avgpol*"], HN)


def test_layer_map_keeps_type_onnx_names_and_the_edges_roles_need() -> None:
    m = layer_map(HN)
    assert m["convtas/avgpool6"] == {"type": "avgpool", "original_names": list(HN["convtas/avgpool6"]["original_names"]),
                                     "input": [], "output": [], "output_shapes": [], "params": {}}  # fmt: skip
    full = {"convtas/a": {"type": "conv", "input": ["convtas/in"], "output": ["convtas/b"], "output_shapes": [[-1, 1, 8, 4]],
                          "params": {"activation": "linear"}, "original_names": ["/c/Conv"], "weights": 999}}  # fmt: skip
    assert layer_map(full)["convtas/a"] == {k: v for k, v in full["convtas/a"].items() if k != "weights"}


#: Names from the real DFC 3.33 HN of a Conv-TasNet (/work/shared/real_dfc/real_hn.json), names only.
REAL_NAMES = [f"convtas/{n}" for n in (
    "input_layer1", "conv1", "conv5", "conv73", "conv74", "dw24", "resize1", "resize98", "avgpool6", "square3",
    "mul_and_add49", "normalization145", "ew_mult50", "deconv1", "output_layer1",
)]  # fmt: skip


@pytest.mark.parametrize(
    ("named", "layer"),
    [
        ("conv5_dc", "convtas/conv5"),  # allocator suffixes (real_dfc README: conv215_dc, resize1_sd0)
        ("convtas/conv74_dc", "convtas/conv74"),
        ("resize1_sd0", "convtas/resize1"),
        ("convtas/resize98_sd12", "convtas/resize98"),
        ("dw24_dc_sd0", "convtas/dw24"),
        ("mul_and_add49_dc", "convtas/mul_and_add49"),
        ("ne_activation_normalization145_dc", "convtas/normalization145"),
        ("auto_spatial_reshape_from_dw24_to_conv73_0", "convtas/dw24"),
    ],
)
def test_allocator_suffixes_resolve_to_hn_layers(named: str, layer: str) -> None:
    ref = resolve_layer(named, REAL_NAMES)
    assert ref.hn_layer == layer and ref.via.startswith("invented:"), ref


def test_allocator_suffix_on_an_absent_layer_stays_unresolved() -> None:
    ref = resolve_layer("convtas/conv215_dc", REAL_NAMES)
    assert not ref.resolved and ref.nearest
    with pytest.raises(OverrideTargetNotFound) as err:
        match_patterns(["conv5_dc"], REAL_NAMES)  # never accepted as an override target either
    assert err.value.candidates[0] == "convtas/conv5"


def test_type_selector_and_missing_selector_messages() -> None:
    assert match_patterns(["type:avgpool", "type:*conv"], HN) == {
        "type:avgpool": ("convtas/avgpool6",),
        "type:*conv": ("convtas/conv1", "convtas/conv69"),
    }
    with pytest.raises(OverrideTargetNotFound) as err:
        match_patterns(["type:deconv"], HN)
    msg = str(err.value)
    assert msg.startswith("Layer 'type:deconv' not found in model") and "types here: " in msg and "\n" not in msg
    assert err.value.types == {"input_layer": 1, "conv": 2, "avgpool": 1, "ew_add": 1, "dw": 1, "activation": 1,
                               "output_layer": 1}  # fmt: skip
    assert err.value.roles == {"io": 2}  # no edges in this table: only the type-only role
