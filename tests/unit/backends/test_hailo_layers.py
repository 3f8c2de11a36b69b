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


def test_layer_map_keeps_type_and_onnx_names() -> None:
    m = layer_map(HN)
    assert m["convtas/avgpool6"] == {"type": "avgpool", "original_names": list(HN["convtas/avgpool6"]["original_names"])}
