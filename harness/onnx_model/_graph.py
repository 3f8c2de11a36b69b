"""Small onnx-ir helpers shared by the conversion and the rewrites: constants, folding, shapes, ONNX Runtime runs."""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np
import onnx_ir as ir

__all__ = ["attr_ints", "const", "const_array", "fold", "infer_shapes", "opset", "run", "static_shape"]

_ids = itertools.count()
_RANDOM = {"RandomNormal", "RandomUniform", "RandomNormalLike", "RandomUniformLike", "Multinomial"}  # never folded


def opset(model: ir.Model) -> int:
    """The model's default-domain opset version."""
    return int(model.opset_imports.get("", model.graph.opset_imports.get("", 17)))


def const(graph: ir.Graph, array: np.ndarray, hint: str = "c") -> ir.Value:
    """A new initializer holding ``array`` (a unique ``hefsweep_*`` name)."""
    name = f"hefsweep_{hint}_{next(_ids)}"
    value = ir.Value(name=name, const_value=ir.tensor(np.ascontiguousarray(array), name=name))
    value.shape = ir.Shape(list(np.shape(array)))
    value.dtype = ir.tensor(np.ascontiguousarray(array)).dtype
    graph.register_initializer(value)
    return value


def const_array(value: ir.Value | None) -> np.ndarray | None:
    """The value's constant array (initializer or folded constant), else None."""
    if value is None or value.const_value is None:
        return None
    return value.const_value.numpy()


def attr_ints(node: ir.Node, name: str) -> list[int] | None:
    attr = node.attributes.get(name)
    return None if attr is None else [int(v) for v in attr.value]


def static_shape(value: ir.Value) -> list[int] | None:
    """The value's shape as ints, or None when unknown or symbolic."""
    if value.shape is None:
        return None
    dims = list(value.shape)
    return [int(d) for d in dims] if all(isinstance(d, int) for d in dims) else None


def infer_shapes(model: ir.Model) -> ir.Model:
    """Remove unused nodes and initializers, clear the intermediate shapes and infer them again (onnx shape
    inference, strict: a bad graph raises)."""
    import onnx
    from onnx_ir.passes.common import RemoveUnusedNodesPass

    RemoveUnusedNodesPass()(model)
    proto = ir.to_proto(model)
    del proto.graph.value_info[:]
    proto = onnx.shape_inference.infer_shapes(proto, strict_mode=True, data_prop=True)
    return ir.from_proto(proto)


def _eval_node(node: ir.Node, arrays: list[np.ndarray | None]) -> list[np.ndarray]:
    """Evaluate one default-domain node on constant inputs with onnx's reference evaluator."""
    import onnx
    from onnx import helper
    from onnx.reference import ReferenceEvaluator

    names = [f"i{k}" if a is not None else "" for k, a in enumerate(arrays)]
    outs = [f"o{k}" for k in range(len(node.outputs))]
    attrs = [ir.to_proto(a) for a in node.attributes.values()]
    proto_node = helper.make_node(node.op_type, names, outs)
    proto_node.attribute.extend(attrs)
    version = node.graph.opset_imports.get("", 17) if node.graph is not None else 17
    graph = helper.make_graph(
        [proto_node], "fold", [helper.make_tensor_value_info(n, helper.np_dtype_to_tensor_dtype(a.dtype), a.shape)
                               for n, a in zip(names, arrays) if a is not None],
        [helper.make_empty_tensor_value_info(o) for o in outs],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", version)])
    feeds = {n: a for n, a in zip(names, arrays) if a is not None}
    evaluator = ReferenceEvaluator(onnx.ModelProto.FromString(model.SerializeToString()))
    return [np.asarray(r) for r in evaluator.run(None, feeds)]


def fold(model: ir.Model) -> ir.Model:
    """Fold every constant subgraph: the onnxscript optimizer, then (for what it leaves, e.g. ``ConstantOfShape``
    chains) onnx's reference evaluator node by node, until nothing changes; dead nodes are removed."""
    from onnxscript import optimizer

    optimizer.optimize(model, num_iterations=2)
    changed = True
    while changed:
        changed = False
        for node in list(model.graph):
            if node.domain not in ("", "ai.onnx") or not node.outputs or any(o.is_graph_output() for o in node.outputs):
                continue
            arrays = [const_array(v) if v is not None else None for v in node.inputs]
            if any(v is not None and a is None for v, a in zip(node.inputs, arrays)) or not node.inputs:
                continue
            if node.op_type in _RANDOM:
                continue
            results = _eval_node(node, arrays)
            for out, arr in zip(node.outputs, results):
                out.replace_all_uses_with(const(model.graph, arr, "fold"))
            model.graph.remove(node, safe=True)
            changed = True
    optimizer.optimize(model, num_iterations=1)
    return model


def run(model: Any, inputs: np.ndarray) -> np.ndarray:
    """Run a single-input ONNX model (``ir.Model``, ``ModelProto`` or path) on ``inputs`` clip by clip in ONNX
    Runtime (CPU) and stack the outputs."""
    import onnxruntime as ort

    from harness.backends._ort import threads

    if isinstance(model, ir.Model):
        model = ir.to_proto(model)
    data = model.SerializeToString() if hasattr(model, "SerializeToString") else str(model)
    opts = ort.SessionOptions()
    if threads():
        opts.intra_op_num_threads = threads()
    opts.log_severity_level = 3
    session = ort.InferenceSession(data, opts, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    return np.concatenate([session.run(None, {name: clip[None]})[0] for clip in inputs])
