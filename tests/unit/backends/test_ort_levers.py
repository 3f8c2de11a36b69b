"""ONNX Runtime has no allocator: compiler levers are listed as ignored, with the reason, and change nothing."""

from __future__ import annotations

import onnx
from onnx import TensorProto, helper

from harness.backends import Override, OverrideSet
from harness.backends._ort import OrtBackend


def _model() -> onnx.ModelProto:
    node = helper.make_node("Relu", ["x"], ["y"], name="relu1")
    graph = helper.make_graph(
        [node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, 1, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 1, 1, 8])],
    )  # fmt: skip
    return helper.make_model(graph)


def test_levers_ignored_with_reason() -> None:
    kinds = ("performance_param", "resources_param", "context_switch_param", "allocator_param")
    values = ("max", 0.8, "enabled", "25m")
    ovs = OverrideSet("lev", tuple(Override(k, (), v) for k, v in zip(kinds, values, strict=True)))
    tensors, applied, ignored = OrtBackend()._map_overrides(_model(), ovs)
    assert tensors == {} and applied == []
    assert [x.split(":")[0] for x in ignored] == list(kinds)
    assert all("ONNX Runtime has no allocator" in x for x in ignored)


def test_levers_beside_precision16_leave_it_applied() -> None:
    ovs = OverrideSet("mix", (Override("performance_param", (), "max"), Override("precision16", ("relu1",))))
    tensors, applied, ignored = OrtBackend()._map_overrides(_model(), ovs)
    assert list(tensors) == ["y"] and len(applied) == 1 and len(ignored) == 1
