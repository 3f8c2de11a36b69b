"""The exact rewrites of the real-DFC issue as ONNX pattern rewrites on a 4-D model (``[N, C, 1, T]`` tensors).

Each applies where its pattern matches and reports how often it fired (0 = the model has no such pattern, e.g. the
real export already writes PReLU as max/min and gLN as two single-axis ReduceMeans); none changes the function,
which the fidelity gate proves against the user's ONNX:

- ``prelu: maxmin`` -- ``PRelu(x, a)`` -> ``Max(x, 0) + a' * Min(x, 0)`` with ``a'`` a ``[1, C, 1, 1]`` (or
  ``[1, 1, 1, 1]``) constant (the real DFC refused a 1-D slope); an onnxscript rewriter rule.
- ``gln_stats: split`` -- ``ReduceMean(x, axes ⊇ {1, 3})`` (``keepdims=1``) -> a ReduceMean over time (axis 3),
  then one over the channels (axis 1) (the unit height axis 2 needs none): the form the real DFC parsed.
- ``mask_mul: per_source`` -- ``Mul(act(Conv(h, W, b)), Concat([e] * S))`` -> per source ``act(Conv(h, W_s, b_s))
  * e``, concatenated (the DFC: "Reshape is needed for layers: ... shortcut1, concat1, ew_mult1").
- ``decoder: per_source`` -- a grouped ``ConvTranspose`` (``group`` = S, one output channel per group) -> one
  ungrouped ConvTranspose per source, concatenated; its input's per-source parts are taken from a Concat of S
  parts when there is one (the masked encodings of ``mask_mul: per_source``), else a Split
  (the DFC: "Super deconv is not supported with groups").
"""

from __future__ import annotations

from typing import Any

import numpy as np
import onnx_ir as ir

from harness.onnx_model._graph import attr_ints, const, const_array, opset, static_shape

__all__ = ["EXACT_REWRITES", "apply_rewrites"]

_ACTIVATIONS = {"Relu", "Sigmoid", "Tanh", "Softplus", "Identity", "Clip", "LeakyRelu", "HardSigmoid"}


# -- prelu: maxmin (onnxscript rewriter) ----------------------------------------------------------------------------
def _prelu_target(op: Any, x: Any, slope: Any) -> Any:
    return op.PRelu(x, slope)


def _prelu_condition(context: Any, x: Any, slope: Any) -> bool:
    arr = const_array(slope)
    shape = static_shape(x)
    return arr is not None and shape is not None and len(shape) == 4 and arr.size in (1, shape[1])


def _prelu_replacement(op: Any, x: Any, slope: Any) -> Any:
    arr = const_array(slope)
    assert arr is not None
    zero = op.Constant(value=ir.tensor(np.zeros([1, 1, 1, 1], dtype=arr.dtype)))
    a = op.Constant(value=ir.tensor(np.ascontiguousarray(arr.reshape([1, -1, 1, 1]))))
    return op.Add(op.Max(x, zero), op.Mul(a, op.Min(x, zero)))


def _prelu_maxmin(model: ir.Model) -> int:
    from onnxscript.rewriter import pattern

    rule = pattern.RewriteRule(_prelu_target, _prelu_replacement, _prelu_condition, name="PReLUToMaxMin")
    count = int(rule.apply_to_model(model))
    if count:
        from onnx_ir.passes.common import LiftConstantsToInitializersPass

        LiftConstantsToInitializersPass(size_limit=0)(model)
    return count


# -- gln_stats: split --------------------------------------------------------------------------------------------
def _axes(node: ir.Node, version: int) -> list[int] | None:
    if version >= 18:
        arr = const_array(node.inputs[1]) if len(node.inputs) > 1 and node.inputs[1] is not None else None
        return None if arr is None else [int(a) % 4 for a in np.ravel(arr)]
    axes = attr_ints(node, "axes")
    return None if axes is None else [a % 4 for a in axes]


def _reduce_mean(graph: ir.Graph, x: ir.Value, axis: int, version: int, before: ir.Node) -> ir.Value:
    if version >= 18:
        node = ir.Node("", "ReduceMean", [x, const(graph, np.array([axis], np.int64), "axes")],
                       {"keepdims": ir.AttrInt64("keepdims", 1)})  # fmt: skip
    else:
        node = ir.Node("", "ReduceMean", [x], {"keepdims": ir.AttrInt64("keepdims", 1),
                                               "axes": ir.AttrInt64s("axes", [axis])})  # fmt: skip
    graph.insert_before(before, node)
    return node.outputs[0]


def _gln_split(model: ir.Model) -> int:
    graph, version, count = model.graph, opset(model), 0
    for node in list(graph):
        if node.op_type != "ReduceMean" or static_shape(node.inputs[0]) is None:
            continue
        shape = static_shape(node.inputs[0])
        keep = node.attributes.get("keepdims")
        axes = _axes(node, version)
        if len(shape) != 4 or shape[2] != 1 or (keep is not None and int(keep.value) == 0) or axes is None:
            continue
        if not {1, 3} <= set(axes) <= {1, 2, 3}:
            continue
        time_mean = _reduce_mean(graph, node.inputs[0], 3, version, node)
        both = _reduce_mean(graph, time_mean, 1, version, node)
        node.outputs[0].replace_all_uses_with(both, replace_graph_outputs=True)
        graph.remove(node, safe=True)
        count += 1
    return count


def _copy_attrs(node: ir.Node) -> list[ir.Attr]:
    return [ir.Attr(a.name, a.type, a.value) for a in node.attributes.values()]


def _group(node: ir.Node) -> int:
    attr = node.attributes.get("group")
    return 1 if attr is None else int(attr.value)


# -- mask_mul: per_source ----------------------------------------------------------------------------------------
def _repeated_concat(value: ir.Value) -> tuple[ir.Value, int] | None:
    """(e, S) when ``value`` is ``Concat([e] * S, axis=1)`` with S >= 2."""
    node = value.producer()
    if node is None or node.op_type != "Concat" or int(node.attributes["axis"].value) % 4 != 1:
        return None
    parts = list(node.inputs)
    if len(parts) < 2 or any(p is not parts[0] for p in parts):
        return None
    return parts[0], len(parts)


def _mask_per_source(model: ir.Model) -> int:
    graph, count = model.graph, 0
    for mul in list(graph):
        if mul.op_type != "Mul":
            continue
        for side in (0, 1):
            rep = _repeated_concat(mul.inputs[1 - side])
            act = mul.inputs[side].producer()
            conv = act.inputs[0].producer() if act is not None and act.op_type in _ACTIVATIONS else None
            if rep is None or conv is None or conv.op_type != "Conv" or _group(conv) != 1:
                continue
            if len(act.outputs[0].uses()) != 1 or len(conv.outputs[0].uses()) != 1:
                continue
            e, n_src = rep
            weight = const_array(conv.inputs[1])
            bias = const_array(conv.inputs[2]) if len(conv.inputs) > 2 and conv.inputs[2] is not None else None
            has_bias = len(conv.inputs) > 2 and conv.inputs[2] is not None
            if weight is None or weight.shape[0] % n_src or (has_bias and bias is None):
                continue
            c = weight.shape[0] // n_src
            parts = []
            for s in range(n_src):
                inputs = [conv.inputs[0], const(graph, weight[s * c : (s + 1) * c], "mask_w")]
                if bias is not None:
                    inputs.append(const(graph, bias[s * c : (s + 1) * c], "mask_b"))
                conv_s = ir.Node("", "Conv", inputs, _copy_attrs(conv), name=f"{conv.name}_src{s}")
                act_s = ir.Node("", act.op_type, [conv_s.outputs[0], *act.inputs[1:]], _copy_attrs(act),
                                name=f"{act.name}_src{s}")  # fmt: skip
                mul_s = ir.Node("", "Mul", [act_s.outputs[0], e], name=f"{mul.name}_src{s}")
                for n in (conv_s, act_s, mul_s):
                    graph.insert_before(mul, n)
                mul_s.outputs[0].shape, mul_s.outputs[0].dtype = e.shape, e.dtype  # [N, C, 1, T] like e
                parts.append(mul_s.outputs[0])
            cat = ir.Node("", "Concat", parts, {"axis": ir.AttrInt64("axis", 1)}, name=f"{mul.name}_concat")
            graph.insert_before(mul, cat)
            mul.outputs[0].replace_all_uses_with(cat.outputs[0], replace_graph_outputs=True)
            concat_node = mul.inputs[1 - side].producer()
            for n in (mul, act, conv):
                graph.remove(n, safe=True)
            if concat_node is not None and not concat_node.outputs[0].uses():
                graph.remove(concat_node, safe=True)
            count += 1
            break
    return count


# -- decoder: per_source -----------------------------------------------------------------------------------------
def _decoder_per_source(model: ir.Model) -> int:
    graph, count = model.graph, 0
    for node in list(graph):
        if node.op_type != "ConvTranspose":
            continue
        groups = _group(node)
        weight = const_array(node.inputs[1])
        if groups < 2 or weight is None or weight.ndim != 4 or weight.shape[1] != 1:
            continue
        bias = const_array(node.inputs[2]) if len(node.inputs) > 2 and node.inputs[2] is not None else None
        c = weight.shape[0] // groups
        x = node.inputs[0]
        src = x.producer()
        if src is not None and src.op_type == "Concat" and len(src.inputs) == groups and \
                all((static_shape(p) or [0, 0])[1] == c for p in src.inputs):  # fmt: skip
            parts = list(src.inputs)
        else:
            sizes = const(graph, np.array([c] * groups, np.int64), "split")
            split = ir.Node("", "Split", [x, sizes], {"axis": ir.AttrInt64("axis", 1)}, num_outputs=groups,
                            name=f"{node.name}_split")  # fmt: skip
            graph.insert_before(node, split)
            parts = list(split.outputs)
        attrs = [ir.Attr(a.name, a.type, a.value) for a in node.attributes.values() if a.name != "group"]
        outs = []
        for s, part in enumerate(parts):
            inputs = [part, const(graph, weight[s * c : (s + 1) * c], "dec_w")]
            if bias is not None:
                inputs.append(const(graph, bias[s : s + 1], "dec_b"))
            dec = ir.Node("", "ConvTranspose", inputs, attrs, name=f"{node.name}_src{s}")
            graph.insert_before(node, dec)
            outs.append(dec.outputs[0])
        cat = ir.Node("", "Concat", outs, {"axis": ir.AttrInt64("axis", 1)}, name=f"{node.name}_concat")
        graph.insert_before(node, cat)
        node.outputs[0].replace_all_uses_with(cat.outputs[0], replace_graph_outputs=True)
        graph.remove(node, safe=True)
        unused = src is not None and not src.outputs[0].uses() and not src.outputs[0].is_graph_output()
        if unused and src.op_type == "Concat":
            graph.remove(src, safe=True)
        count += 1
    return count


#: (dimension, value) -> the rewrite, in the order they are applied.
EXACT_REWRITES: dict[tuple[str, str], Any] = {
    ("prelu", "maxmin"): _prelu_maxmin,
    ("gln_stats", "split"): _gln_split,
    ("mask_mul", "per_source"): _mask_per_source,
    ("decoder", "per_source"): _decoder_per_source,
}


def apply_rewrites(model: ir.Model, choices: dict[str, Any]) -> dict[str, int]:
    """Apply the rewrites ``choices`` selects (dimension -> value, e.g. ``{"prelu": "maxmin"}``) in place.

    Returns:
        ``{"<dimension>=<value>": times fired}`` for each selected rewrite (0: its pattern is not in the model).
    """
    fired: dict[str, int] = {}
    for (dim, value), rewrite in EXACT_REWRITES.items():
        if choices.get(dim) == value:
            fired[f"{dim}={value}"] = rewrite(model)
    return fired
