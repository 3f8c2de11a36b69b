"""A user's ONNX at the trial's width, in the 4-D horizontal form ``[1, 1, 1, W] -> [1, n_src, 1, W]``.

Steps (onnx-ir graph rewrites; each is exact, and the fidelity gate proves the result against the user's ONNX):

1. **Width**: the input's batch becomes 1 and its time axis W (a dynamic axis takes any W). A 4-D model's
   ``Expand(scalar, fixed shape)`` feeding broadcasting ops (the dynamo export's ``zeros_like`` of PReLU as
   max/min, whose shape names the export's frame count) becomes the scalar itself, so the graph no longer pins W.
   Constant subgraphs are then folded (:func:`harness.onnx_model._graph.fold`): a dynamic export's ``Shape`` chains
   become constants of this W.
2. **3-D -> 4-D** (input ``[N, T]`` or ``[N, 1, T]``): every tensor of rank >= 3 gains a unit axis just before its
   last, so time stays the last axis: ``Conv``/``ConvTranspose`` kernels ``(k)`` -> ``(1, k)`` (weights
   ``[O, I, k]`` -> ``[O, I, 1, k]``, pads, strides, dilations, output padding remapped); reduction, concat, split,
   softmax, slice and gather axes and transpose permutations remapped; reshape targets lifted; Unsqueeze / Squeeze /
   Flatten become a Reshape to the lifted shape; lower-rank operands of broadcasting ops gain the axis too. An op
   that cannot be lifted (MatMul over time, Shape of a dynamic tensor, ...) is a one-line error naming the node.
   Transpose pairs around elementwise ops with constants (asteroid's norm gains applied channels-last) are dropped,
   the constants transposed instead; asteroid's head, which decodes the sources as a batch through a 5-D mask
   tensor, becomes the real export's 4-D form (:func:`fold_source_batch`).
3. **Output**: ``[1, S, W]`` (the real export squeezes the height) or ``[1, W]`` is reshaped to ``[1, S, 1, W]``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import onnx_ir as ir

from harness.onnx_model._graph import attr_ints, const, const_array, fold, infer_shapes, opset, static_shape

__all__ = [
    "ConversionError", "at_width", "describe_input", "drop_transpose_pairs", "fold_source_batch", "free_width", "to_4d",
]  # fmt: skip

_UNARY = {
    "Relu", "Sigmoid", "Tanh", "Sqrt", "Exp", "Log", "Abs", "Neg", "Reciprocal", "Cast", "Identity", "Clip", "Erf",
    "Softplus", "Softsign", "LeakyRelu", "Elu", "Selu", "Celu", "HardSigmoid", "HardSwish", "Gelu", "Mish", "Not",
    "Floor", "Ceil", "Round", "Sign", "Sin", "Cos", "Dropout", "IsNaN", "IsInf", "ThresholdedRelu", "Shrink",
}  # fmt: skip
_BROADCAST = {
    "Add", "Sub", "Mul", "Div", "Pow", "Max", "Min", "Sum", "Mean", "PRelu", "Where", "Equal", "Greater", "Less",
    "GreaterOrEqual", "LessOrEqual", "And", "Or", "Xor", "Mod", "BitShift",
}  # fmt: skip
_AXIS = {"Concat", "Split", "Softmax", "LogSoftmax", "Hardmax", "Gather", "ArgMax", "ArgMin", "LpNormalization"}
_REDUCE = {
    "ReduceMean", "ReduceSum", "ReduceMax", "ReduceMin", "ReduceProd", "ReduceL1", "ReduceL2", "ReduceSumSquare",
    "ReduceLogSum", "ReduceLogSumExp",
}  # fmt: skip
_AS_RESHAPE = {"Unsqueeze", "Squeeze", "Flatten"}


class ConversionError(ValueError):
    """The ONNX cannot be brought to the 4-D form (the message names the node and what it needs)."""


def _mapped(axis: int, rank: int) -> int:
    """Old axis of a rank-``rank`` tensor -> its index once a unit axis is inserted before the last."""
    axis = axis + rank if axis < 0 else axis
    return axis if axis < rank - 1 else axis + 1


def _lift_shape(shape: list[int]) -> list[int]:
    return [*shape[:-1], 1, shape[-1]]


def free_width(model: ir.Model) -> int:
    """Replace a uniform constant of a fixed shape -- ``Expand(scalar constant, constant shape)`` or an initializer
    whose elements are all equal (the dynamo export's ``zeros_like``) -- whose every consumer broadcasts it against
    tensors of exactly that shape by a ``[1, ..., 1]`` constant (exact); returns how many were replaced."""
    graph = model.graph
    candidates: list[tuple[ir.Value, np.ndarray, list[int], ir.Node | None]] = []
    for node in graph:
        if node.op_type == "Expand":
            scalar, shape = const_array(node.inputs[0]), const_array(node.inputs[1])
            if scalar is not None and shape is not None and scalar.size == 1:
                candidates.append((node.outputs[0], scalar.ravel()[:1], [int(d) for d in shape], node))
    for value in graph.initializers.values():
        arr = const_array(value)
        if arr is not None and arr.ndim >= 3 and arr.size > 1 and np.all(arr == arr.ravel()[0]):
            candidates.append((value, arr.ravel()[:1], list(arr.shape), None))
    count = 0
    for out, scalar, target, producer in candidates:
        consumers = [user for user, _ in out.uses()]
        ok = bool(consumers) and not out.is_graph_output()
        for user in consumers:
            others = [v for v in user.inputs if v is not None and v is not out]
            ok = ok and user.op_type in _BROADCAST - {"PRelu"} and all(static_shape(v) == target for v in others)
        if not ok:
            continue
        out.replace_all_uses_with(const(graph, scalar.reshape([1] * len(target)), "scalar"))
        if producer is not None:
            graph.remove(producer, safe=True)
        count += 1
    return count


def at_width(model: ir.Model, width: int) -> ir.Model:
    """The model with input batch 1 and time axis ``width``, shapes inferred and constants folded."""
    inp = model.graph.inputs[0]
    dims = list(inp.shape) if inp.shape is not None else []
    if not 2 <= len(dims) <= 4:
        raise ConversionError(f"input {inp.name!r} has rank {len(dims)}; expected [N, T], [N, 1, T] or [N, 1, 1, T]")
    model = infer_shapes(model)  # at the export's own shapes: what free_width proves its replacements against
    free_width(model)
    model.graph.inputs[0].shape = ir.Shape([1, *[1] * (len(dims) - 2), width])
    for out in model.graph.outputs:
        out.shape = None  # a fixed-width export declares its output length; inferred again at this width
    model = infer_shapes(model)
    model = fold(model)
    return infer_shapes(model)


def _constant_like(graph: ir.Graph, value: ir.Value, node: ir.Node, rank: int) -> ir.Value:
    """``value`` (rank ``rank`` >= 2, not lifted) with a unit axis before its last: a constant is rewritten, a
    tensor gets a Reshape."""
    arr = const_array(value)
    if arr is not None:
        return const(graph, arr.reshape(_lift_shape(list(arr.shape))), "lifted")
    shape = static_shape(value)
    if shape is None:
        raise ConversionError(f"node {node.name!r} ({node.op_type}): operand {value.name!r} has no static shape")
    reshape = ir.Node("", "Reshape", [value, const(graph, np.array(_lift_shape(shape), np.int64), "shape")])
    graph.insert_before(node, reshape)
    return reshape.outputs[0]


def _set_attr(node: ir.Node, name: str, values: list[int]) -> None:
    node.attributes[name] = ir.AttrInt64s(name, values)


def _lift_conv(graph: ir.Graph, node: ir.Node) -> None:
    weight = const_array(node.inputs[1])
    if weight is None or weight.ndim != 3:
        raise ConversionError(f"node {node.name!r} ({node.op_type}): weight is not a constant [O, I, k]")
    node.replace_input_with(1, const(graph, weight[:, :, None, :], "weight"))
    _set_attr(node, "kernel_shape", [1, int(weight.shape[-1])])
    for name in ("strides", "dilations"):
        _set_attr(node, name, [1, *(attr_ints(node, name) or [1])])
    auto_pad = node.attributes.get("auto_pad")
    if auto_pad is None or auto_pad.value in ("NOTSET", b"NOTSET"):  # pads and auto_pad exclude each other
        pads = attr_ints(node, "pads") or [0, 0]
        _set_attr(node, "pads", [0, pads[0], 0, pads[1]])
    for name in ("output_padding", "output_shape"):
        old = attr_ints(node, name)
        if old is not None:
            _set_attr(node, name, [0 if name == "output_padding" else 1, *old])


def _axes_input(node: ir.Node, index: int) -> np.ndarray | None:
    if len(node.inputs) > index and node.inputs[index] is not None:
        arr = const_array(node.inputs[index])
        if arr is None:
            raise ConversionError(f"node {node.name!r} ({node.op_type}): axes are not a constant")
        return arr
    return None


def _lift_node(graph: ir.Graph, node: ir.Node, rank: dict[str, int], lifted: set[str], version: int) -> None:
    """Rewrite one node whose inputs or outputs are lifted (``rank``: old ranks by value name)."""
    op = node.op_type
    first = node.inputs[0]
    r_in = rank.get(first.name, 0) if first is not None else 0
    out_lifted = any(o.name in lifted for o in node.outputs)
    if op in _UNARY:
        return
    if op in ("Conv", "ConvTranspose"):
        _lift_conv(graph, node)
    elif op in _BROADCAST or op == "Expand":
        for i, v in enumerate(node.inputs):
            if v is None or v.name in lifted or (op == "Expand" and i == 1):
                continue
            if rank.get(v.name, 0) >= 2 and out_lifted:
                node.replace_input_with(i, _constant_like(graph, v, node, rank[v.name]))
        if op == "Expand":
            shape = const_array(node.inputs[1])
            if shape is None:
                raise ConversionError(f"node {node.name!r} (Expand): shape is not a constant")
            if out_lifted:
                node.replace_input_with(1, const(graph, np.array(_lift_shape([int(s) for s in shape]), np.int64)))
    elif op in _REDUCE:
        from_input = version >= 18 or op == "ReduceSum"
        axes = _axes_input(node, 1) if from_input else attr_ints(node, "axes")
        axes_list = list(range(r_in)) if axes is None else [int(a) for a in np.ravel(axes)]
        new = sorted(_mapped(a, r_in) for a in axes_list)
        keep = node.attributes.get("keepdims")
        if keep is not None and int(keep.value) == 0:
            if not out_lifted:
                new = sorted({*new, r_in - 1})  # reduce the unit axis too: the output keeps its old rank
            elif r_in - 1 in [a % r_in for a in axes_list]:
                raise ConversionError(f"node {node.name!r} ({op}): keepdims=0 over the last axis of a lifted tensor")
        if from_input:
            if len(node.inputs) < 2:
                node.resize_inputs(2)
            node.replace_input_with(1, const(graph, np.array(new, np.int64), "axes"))
        else:
            _set_attr(node, "axes", new)
    elif op in _AXIS:
        if op == "Gather" and len(node.inputs[1].shape or ()) != 1:
            raise ConversionError(f"node {node.name!r} (Gather): indices of rank != 1 change the rank; expected 1-D "
                                  "indices")  # fmt: skip
        attr = node.attributes.get("axis")
        axis = int(attr.value) if attr is not None else (1 if op in ("Concat",) else (-1 if "max" in op.lower() else 0))
        node.attributes["axis"] = ir.AttrInt64("axis", _mapped(axis, r_in))
    elif op == "Transpose":
        perm = attr_ints(node, "perm") or list(range(r_in))[::-1]
        new = [0] * (r_in + 1)
        for i, p in enumerate(perm):
            new[_mapped(i, r_in)] = _mapped(p, r_in)
        new[r_in - 1] = r_in - 1
        _set_attr(node, "perm", new)
    elif op == "Pad":
        pads = _axes_input(node, 1)
        if pads is None:
            raise ConversionError(f"node {node.name!r} (Pad): pads are not a constant")
        half = [int(p) for p in pads]
        begin, end = half[:r_in], half[r_in:]
        new = [*begin[:-1], 0, begin[-1], *end[:-1], 0, end[-1]]
        node.replace_input_with(1, const(graph, np.array(new, np.int64), "pads"))
        if len(node.inputs) > 3 and node.inputs[3] is not None:
            axes = _axes_input(node, 3)
            raise ConversionError(f"node {node.name!r} (Pad): explicit axes {axes}; expected pads over all axes")
    elif op == "Slice":
        starts = const_array(node.inputs[1])
        if starts is None:
            raise ConversionError(f"node {node.name!r} (Slice): starts are not a constant")
        axes = _axes_input(node, 3)
        axes_list = list(range(len(starts))) if axes is None else [int(a) for a in axes]  # type: ignore[arg-type]
        new = np.array([_mapped(a, r_in) for a in axes_list], np.int64)
        if len(node.inputs) < 4:
            node.resize_inputs(4)
        node.replace_input_with(3, const(graph, new, "axes"))
    elif op == "Reshape" or op in _AS_RESHAPE:
        out = node.outputs[0]
        shape = static_shape(out)
        if shape is None:
            raise ConversionError(f"node {node.name!r} ({op}): output shape is not static")
        target = _lift_shape(shape) if out_lifted else shape
        reshape = ir.Node("", "Reshape", [first, const(graph, np.array(target, np.int64), "shape")], name=node.name)
        graph.insert_before(node, reshape)
        out.replace_all_uses_with(reshape.outputs[0], replace_graph_outputs=True)
        reshape.outputs[0].name = out.name
        graph.remove(node, safe=True)
    else:
        raise ConversionError(
            f"node {node.name!r} ({op}) on a 3-D tensor cannot be lifted to the 4-D form; expected convolutions, "
            "reductions, elementwise, concat/split, transpose, reshape, pad or slice"
        )


def drop_transpose_pairs(model: ir.Model) -> int:
    """``Transpose(P) -> elementwise ops with constant operands -> Transpose(P^-1)`` (asteroid's norms apply their
    gain as ``(gamma * x.transpose(1, -1) + beta).transpose(1, -1)``) -> the same ops on the untransposed tensor,
    each constant broadcast to rank 4 and transposed by ``P^-1`` (exact); returns how many pairs were dropped."""
    graph, count = model.graph, 0
    for first in list(graph):
        if first.op_type != "Transpose" or first.graph is None:
            continue
        perm = attr_ints(first, "perm")
        if perm is None or len(perm) != 4:
            continue
        inverse = [int(i) for i in np.argsort(perm)]
        chain, value = [], first.outputs[0]
        while len(value.uses()) == 1 and not value.is_graph_output():
            user = value.uses()[0][0]
            others = [v for v in user.inputs if v is not value]
            if user.op_type not in ("Mul", "Add", "Sub", "Div") or len(others) != 1 or const_array(others[0]) is None:
                break
            chain.append(user)
            value = user.outputs[0]
        last = value.uses()[0][0] if len(value.uses()) == 1 and not value.is_graph_output() else None
        if not chain or last is None or last.op_type != "Transpose" or attr_ints(last, "perm") != inverse:
            continue
        for node in chain:
            index = next(i for i, v in enumerate(node.inputs) if const_array(v) is not None and v is not None)
            arr = const_array(node.inputs[index])
            assert arr is not None
            arr4 = arr.reshape([1] * (4 - arr.ndim) + list(arr.shape))
            node.replace_input_with(index, const(graph, np.transpose(arr4, inverse), "untransposed"))
        chain[0].replace_input_with(chain[0].inputs.index(first.outputs[0]), first.inputs[0])
        last.outputs[0].replace_all_uses_with(chain[-1].outputs[0], replace_graph_outputs=True)
        graph.remove(last, safe=True)
        graph.remove(first, safe=True)
        count += 1
    return count


def _single_user(value: ir.Value) -> ir.Node | None:
    uses = value.uses()
    return uses[0][0] if len(uses) == 1 and not value.is_graph_output() else None


def _reshape_to(node: ir.Node | None, op: str = "Reshape") -> list[int] | None:
    """The static output shape of a Reshape node (None for another node)."""
    return static_shape(node.outputs[0]) if node is not None and node.op_type == op else None


def _bypass(old: ir.Value, new: ir.Value) -> None:
    """Every use of ``old`` reads ``new``; a graph output keeps its name."""
    name = old.name if old.is_graph_output() else None
    old.replace_all_uses_with(new, replace_graph_outputs=True)
    if name is not None:
        old.name = f"{name}_bypassed"
        new.name = name


def fold_source_batch(model: ir.Model) -> int:
    """Asteroid's head decodes the sources as a batch through a 5-D tensor (after the lift)::

        Reshape(m [1, S*C, 1, F] -> [1, S, C, 1, F]) -> act -> Mul(., Reshape(e -> [1, 1, C, 1, F]))
          -> Reshape([S, C, 1, F]) -> ConvTranspose(W [C, O, 1, L]) -> Reshape([1, S*O, 1, T])

    -> the 4-D form of the real export: ``act(m) * Concat([e] * S)`` into one ConvTranspose with ``group = S``
    and ``W`` tiled S times (exact: group s reads channels s*C.. of the masked encoding, as batch s did).
    Returns how many heads were rewritten."""
    graph, count = model.graph, 0
    for first in list(graph):
        shape5 = _reshape_to(first)
        if shape5 is None or len(shape5) != 5 or shape5[0] != 1 or shape5[3] != 1:
            continue
        _, n_src, c, _, frames = shape5
        act = _single_user(first.outputs[0])
        mul = _single_user(act.outputs[0]) if act is not None and act.op_type in _UNARY else None
        if mul is None or mul.op_type != "Mul":
            continue
        other = next((v for v in mul.inputs if v is not act.outputs[0]), None)
        unsq = other.producer() if other is not None else None
        if _reshape_to(unsq) != [1, 1, c, 1, frames] or static_shape(unsq.inputs[0]) != [1, c, 1, frames]:
            continue
        batch = _single_user(mul.outputs[0])
        if _reshape_to(batch) != [n_src, c, 1, frames]:
            continue
        dec = _single_user(batch.outputs[0])
        weight = const_array(dec.inputs[1]) if dec is not None and dec.op_type == "ConvTranspose" else None
        group = dec.attributes.get("group") if dec is not None else None
        if weight is None or weight.shape[0] != c or (group is not None and int(group.value) != 1):
            continue
        bias = const_array(dec.inputs[2]) if len(dec.inputs) > 2 and dec.inputs[2] is not None else None
        out = _single_user(dec.outputs[0])
        dec_shape = static_shape(dec.outputs[0])
        if dec_shape is None or _reshape_to(out) != [1, n_src * weight.shape[1], 1, dec_shape[-1]]:
            continue
        act.replace_input_with(0, first.inputs[0])
        axis = {"axis": ir.AttrInt64("axis", 1)}
        cat = ir.Node("", "Concat", [unsq.inputs[0]] * n_src, axis, name=f"{mul.name}_repeat")
        graph.insert_before(mul, cat)
        mul.replace_input_with(list(mul.inputs).index(other), cat.outputs[0])
        dec.replace_input_with(0, mul.outputs[0])
        dec.replace_input_with(1, const(graph, np.concatenate([weight] * n_src), "decoder"))
        if bias is not None:
            dec.replace_input_with(2, const(graph, np.concatenate([bias] * n_src), "decoder_bias"))
        dec.attributes["group"] = ir.AttrInt64("group", n_src)
        _bypass(out.outputs[0], dec.outputs[0])
        for value in (act.outputs[0], mul.outputs[0], dec.outputs[0]):
            value.shape = None  # 4-D again: inferred anew
        for node in (out, batch, first):
            graph.remove(node, safe=True)
        if not unsq.outputs[0].uses():
            graph.remove(unsq, safe=True)
        count += 1
    for pad in list(graph):  # a Pad by zeros (asteroid pads the output to the input's length) is no op
        pads = const_array(pad.inputs[1]) if pad.op_type == "Pad" and len(pad.inputs) > 1 else None
        if pads is not None and not np.any(pads) and len(pad.inputs) < 4:
            _bypass(pad.outputs[0], pad.inputs[0])
            graph.remove(pad, safe=True)
    return count


def to_4d(model: ir.Model, width: int) -> tuple[ir.Model, list[str]]:
    """The model at ``width`` in the 4-D horizontal form; returns it and notes on what was done.

    Raises:
        ConversionError: an input of another rank, an op that cannot be lifted, an output not ``W`` long.
    """
    if len(model.graph.inputs) != 1 or len(model.graph.outputs) != 1:
        raise ConversionError(
            f"{len(model.graph.inputs)} inputs and {len(model.graph.outputs)} outputs; expected one mixture input "
            "and one separated-sources output"
        )
    in_rank = len(model.graph.inputs[0].shape or ())
    model = at_width(model, width)
    notes = [f"input rank {in_rank}, width {width}"]
    graph = model.graph
    if in_rank < 4:
        _lift(model, in_rank, width)
        notes.append("lifted 3-D -> 4-D (unit height axis before time)")
        model = infer_shapes(model)
        dropped = drop_transpose_pairs(model)
        if dropped:
            notes.append(f"{dropped} transpose pairs around constant elementwise ops dropped")
        if fold_source_batch(model):
            notes.append("the sources-as-batch head (5-D mask) written as one grouped ConvTranspose (4-D)")
        model = infer_shapes(model)
    out = model.graph.outputs[0]
    shape = static_shape(out)
    if shape is None or shape[-1] != width or int(np.prod(shape)) % width:
        raise ConversionError(f"output {out.name!r} has shape {shape}; expected [.., {width}] (W samples per source)")
    n_src = int(np.prod(shape)) // width
    squeeze = out.producer()
    if shape != [1, n_src, 1, width] and squeeze is not None and squeeze.op_type == "Squeeze" and \
            static_shape(squeeze.inputs[0]) == [1, n_src, 1, width] and len(out.uses()) == 0:  # fmt: skip
        inner, name = squeeze.inputs[0], out.name  # the real export squeezes the height: the output is its input
        model.graph.outputs[0] = inner
        model.graph.remove(squeeze, safe=True)
        inner.name = name
        notes.append(f"output {shape}: the Squeeze of [1, {n_src}, 1, {width}] dropped")
        return infer_shapes(model), notes
    if shape != [1, n_src, 1, width]:
        graph = model.graph
        reshape = ir.Node("", "Reshape", [out, const(graph, np.array([1, n_src, 1, width], np.int64), "shape")])
        graph.append(reshape)
        name = out.name
        out.name = f"{name}_{len(shape)}d"
        reshape.outputs[0].name = name
        reshape.outputs[0].dtype = out.dtype
        graph.outputs[0] = reshape.outputs[0]
        notes.append(f"output {shape} reshaped to [1, {n_src}, 1, {width}]")
        model = infer_shapes(model)
    return model, notes


def _lift(model: ir.Model, in_rank: int, width: int) -> None:
    graph = model.graph
    version = opset(model)
    rank: dict[str, int] = {}
    lifted: set[str] = set()
    for value in [*graph.inputs, *(o for n in graph for o in n.outputs)]:
        if value.shape is not None and value.const_value is None:
            rank[value.name] = len(value.shape)
            if len(value.shape) >= 3:
                lifted.add(value.name)
    for value in graph.initializers.values():
        rank[value.name] = len(value.shape) if value.shape is not None else 0
    inp = graph.inputs[0]
    if in_rank == 2:  # [1, W]: the 4-D input, reshaped back to what the graph reads
        new = ir.Value(name=f"{inp.name}_4d", shape=ir.Shape([1, 1, 1, width]), type=inp.type)
        reshape = ir.Node("", "Reshape", [new, const(graph, np.array([1, width], np.int64), "shape")])
        graph.insert_before(graph.node(0), reshape)
        inp.replace_all_uses_with(reshape.outputs[0])
        graph.inputs[0] = new
        new.name = inp.name
        inp.name = f"{inp.name}_2d"
    else:
        inp.shape = ir.Shape([1, 1, 1, width])
    for node in list(graph):
        if any(v is not None and v.name in lifted for v in (*node.inputs, *node.outputs)):
            _lift_node(graph, node, rank, lifted, version)
    for node in graph:
        for value in node.outputs:
            value.shape = None


def describe_input(model: Any) -> tuple[int, int | None]:
    """(input rank, fixed width or None for a dynamic time axis) of an ``ir.Model``."""
    dims = list(model.graph.inputs[0].shape or ())
    last = dims[-1] if dims else None
    return len(dims), last if isinstance(last, int) else None
