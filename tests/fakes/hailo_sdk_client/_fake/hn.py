"""ONNX -> HN translation for the fake, in the conventions of the real DFC 3.33 HN (``/work/shared/real_dfc``).

What rests on the real HN (``real_hn.json``, the DFC's own parse of ``convtas_hailo_ready.onnx``) [T]:

- Layer keys ``<net>/<prefix><n>``, numbered per *name prefix* in the order of a FIFO (Kahn) topological sort of
  the HN, successors in ONNX consumer order. A prefix is not always the type: ``square<n>`` is a
  ``feature_multiplier``, ``mul_and_add<n>`` a ``normalization``.
- ``const_input<n>`` are numbered differently: in creation order (shortest directed distance of the consumer
  from the input; ties: the later producer first) the i-th one gets the temporary index i, and the final
  numbers are the ranks of those indices sorted *as strings* ("1" < "10" < ... < "19" < "2" ...). This rule is
  fitted: it reproduces all 98 const_input names of the real HN; why the DFC does that is not known [I].
- ``output_shapes`` has one entry per consumer (one for a layer without consumers), ``input_shapes`` one per input;
  shapes are ``[-1, H, W, C]``.
- Conv -> ``conv`` (``kernel_shape [kh, kw, cin/groups, cout]``, ``strides``/``dilations`` ``[1, sh, sw, 1]``,
  ``padding`` VALID / SAME_TENSORFLOW); depthwise Conv -> ``dw`` (``[kh, kw, C, 1]``, ``groups: 1``); a Relu
  after a single-consumer layer folds into it (``activation: relu``).
- ReduceMean over W (axis 3) -> ``avgpool`` (kernel = strides = ``[1, 1, W, 1]``, VALID); over C (axis 1) ->
  ``reduce_mean`` (``reduce_axes [3]``).
- A binary op whose operand is broadcast over W gets a ``resize`` (``resize_w_ratio_list [W]``, nearest
  neighbour, ``original_names`` = the binary op) on that operand; a channel broadcast is the op's
  ``input_repeats``. So GlobLN = avgpool -> reduce_mean -> resize -> ew_sub -> square -> avgpool -> reduce_mean
  -> activation ``inv_sqrt`` (Sqrt + Div) -> resize -> ew_mult -> ``normalization`` (gamma * x + beta).
- ``Max``/``Min`` with a constant operand (PReLU written as max/min): ``const_input`` (``<node>_input``) +
  ``concat`` + ``reduce_max``; Min adds a negating ``normalization`` before and after the reduce_max. A
  constant-operand Mul that is not followed by a constant Add is a ``mul_and_add``; Add of a zero constant
  disappears; ``Concat`` of one tensor with itself is ``shortcut`` + ``concat``.
- ConvTranspose -> ``deconv`` (``kernel_shape [kh, kw, cin, cout]``, ``padding: DECONV``) whose output width
  is F * stride, not the ONNX width; a trailing Squeeze folds into the layer before it.

What is guessed [I] (shapes the real HN never showed): a ReduceMean over several axes including C and W (e.g.
``(1, 2, 3)``) becomes avgpool + reduce_mean (like the two single-axis means); ``Add(x, eps)`` before Sqrt folds
into the inv_sqrt activation; a Div by a non-Sqrt tensor is activation ``inv`` + ``ew_mult``; Sigmoid, PRelu,
Clip, Exp, Tanh, LeakyRelu fold into a single-consumer producer (else an ``activation`` layer); a constant
Add/Sub/Div is a ``mul_and_add``; Max/Min of two tensors is concat + reduce_max; Slice over channels is a
``feature_splitter`` layer; Unsqueeze/Reshape/Flatten that only move unit dims fold like Squeeze.
"""

from __future__ import annotations

import collections
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional

import numpy as np
import onnx
from onnx import numpy_helper

from hailo_sdk_client.model_translator.exceptions import (
    MisspellNodeError,
    ParsingWithRecommendationException,
    UnsupportedModelError,
)

__all__ = ["Translation", "load_model", "translate"]

_ACTS = {
    "Relu": "relu", "Sigmoid": "sigmoid", "PRelu": "prelu", "Exp": "exp", "Tanh": "tanh", "LeakyRelu": "leaky",
}  # fmt: skip
_FOLDABLE = {"conv", "dw", "deconv", "ew_add", "ew_sub", "ew_mult", "normalization", "mul_and_add", "avgpool"}
_RESHAPES = {"Squeeze", "Unsqueeze", "Reshape", "Flatten"}
_QUANT = {"bias_mode": "single_scale_decomposition", "precision_mode": "a8_w8_a8", "quantization_groups": 1}


@dataclass(frozen=True)
class Translation:
    """A translated model.

    Attributes:
        hn: The HN dict (``name``, ``net_params``, ``layers``).
        tensors: Scoped HN layer -> the ONNX tensor holding its output, for the layers that have one
            (fake-internal, not part of the HN; e.g. a GlobLN's avgpool has none when one ReduceMean became two).
        var_pools: ``[layer, kernel width]`` of the GlobLN variance pools (an avgpool fed by a ``square``), in
            HN order.
        out_widths: Per output layer ``[HN width, ONNX width]`` (a deconv's F * stride vs the ONNX output).
    """

    hn: Dict[str, Any]
    tensors: Dict[str, str]
    var_pools: List[List[Any]]
    out_widths: Dict[str, List[int]]
    model: Optional[onnx.ModelProto] = None


@dataclass
class _L:
    uid: int
    prefix: str
    type: str
    inputs: List[int]
    shape: List[int]
    original: Optional[List[str]]
    params: Optional[Dict[str, Any]]
    tensor: Optional[str] = None
    extra: Dict[str, Any] = field(default_factory=dict)


# -- loading ---------------------------------------------------------------------------------------------------------
def _missing_external(model: onnx.ModelProto) -> List[onnx.TensorProto]:
    return [t for t in model.graph.initializer if t.data_location == onnx.TensorProto.EXTERNAL]


def synthesize_missing(model: onnx.ModelProto) -> int:
    """Replace external initializers whose data is absent by deterministic values of their declared shapes
    (normal * 0.05 for floats seeded by the tensor name, zeros otherwise). Returns how many were replaced."""
    missing = _missing_external(model)
    for t in missing:
        dims = [int(d) for d in t.dims]
        dtype = onnx.helper.tensor_dtype_to_np_dtype(t.data_type)
        if np.issubdtype(dtype, np.floating):
            rng = np.random.default_rng(zlib.crc32(t.name.encode()))
            arr = (rng.standard_normal(dims) * 0.05).astype(dtype)
        else:
            arr = np.zeros(dims, dtype=dtype)
        new = numpy_helper.from_array(arr, t.name)
        t.CopyFrom(new)
    return len(missing)


def load_model(model: Any) -> onnx.ModelProto:
    """An ONNX model from a path or a ModelProto; external weights that are not there are synthesized."""
    if isinstance(model, onnx.ModelProto):
        proto = onnx.ModelProto()
        proto.CopyFrom(model)
    else:
        path = Path(str(model))
        try:
            proto = onnx.load(str(path))
        except Exception:  # external data missing (e.g. real_dfc's convtas_hailo_ready.onnx): structure only
            proto = onnx.load(str(path), load_external_data=False)
    synthesize_missing(proto)
    return proto


# -- helpers -----------------------------------------------------------------------------------------------------------
def _nhwc(dims: List[int]) -> List[int]:
    if len(dims) == 4:
        n, c, h, w = dims
        return [-1, h, w, c]
    if len(dims) == 3:
        n, c, w = dims
        return [-1, 1, w, c]
    raise ValueError(dims)


def _attr(node: onnx.NodeProto, name: str, default: Any = None) -> Any:
    for a in node.attribute:
        if a.name == name:
            return onnx.helper.get_attribute_value(a)
    return default


def _constants(model: onnx.ModelProto) -> Dict[str, Optional[np.ndarray]]:
    """Constant tensors -> value (None when only the shape is known)."""
    values: Dict[str, Optional[np.ndarray]] = {}
    for t in model.graph.initializer:
        values[t.name] = None if t.data_location == onnx.TensorProto.EXTERNAL else numpy_helper.to_array(t)
    for node in model.graph.node:
        ins = [i for i in node.input if i]
        if node.op_type == "Constant":
            for a in node.attribute:
                if a.name == "value":
                    values[node.output[0]] = numpy_helper.to_array(a.t)
                elif a.name in ("value_float", "value_int"):
                    values[node.output[0]] = np.array(onnx.helper.get_attribute_value(a))
                elif a.name in ("value_floats", "value_ints"):
                    values[node.output[0]] = np.array(onnx.helper.get_attribute_value(a))
        elif node.op_type in ("Identity", "Expand") and ins and all(i in values for i in ins):
            src = values[ins[0]]
            if node.op_type == "Identity" or src is None:
                values[node.output[0]] = src
            else:
                shape = values[ins[1]]
                values[node.output[0]] = None if shape is None else (src * np.ones(shape.astype(np.int64), src.dtype))
    return values


def _shapes(model: onnx.ModelProto) -> Dict[str, List[int]]:
    inferred = onnx.shape_inference.infer_shapes(model)
    out: Dict[str, List[int]] = {}
    for vi in [*inferred.graph.input, *inferred.graph.value_info, *inferred.graph.output]:
        out[vi.name] = [d.dim_value if d.HasField("dim_value") else -1 for d in vi.type.tensor_type.shape.dim]
    for t in model.graph.initializer:
        out.setdefault(t.name, [int(d) for d in t.dims])
    return out


def _scalar(v: Optional[np.ndarray]) -> Optional[float]:
    if v is None or np.asarray(v).size != 1:
        return None
    return float(np.asarray(v).reshape(-1)[0])


# -- translation -----------------------------------------------------------------------------------------------------
class _Builder:
    def __init__(self, model: onnx.ModelProto) -> None:
        self.model = model
        self.graph = model.graph
        self.consts = _constants(model)
        self.shapes = _shapes(model)
        self.layers: List[_L] = []
        self.owner: Dict[str, int] = {}
        self.consumers: collections.Counter[str] = collections.Counter(t for n in self.graph.node for t in n.input)
        self.consumers.update(o.name for o in self.graph.output)
        self.consumer_ops: Dict[str, List[onnx.NodeProto]] = collections.defaultdict(list)
        for n in self.graph.node:
            for t in n.input:
                self.consumer_ops[t].append(n)
        self.pending_pre: Dict[str, List[str]] = {}  # tensor -> node names to prepend to the next layer (eps Add)
        self.errors: List[str] = []
        self.recommend: List[str] = []
        self.producer_node: Dict[str, str] = {o: n.name for n in self.graph.node for o in n.output}

    # layers
    def add(self, prefix: str, kind: str, inputs: List[int], shape: List[int], original: Optional[List[str]],
            params: Optional[Dict[str, Any]], tensor: Optional[str] = None) -> _L:  # fmt: skip
        shape = list(shape)
        narrow = [self.layers[i] for i in inputs if "onnx_width" in self.layers[i].extra]
        if narrow and tensor is not None:  # downstream of a deconv: the HN keeps its F * stride width [T]
            shape[2] = min(n.shape[2] for n in narrow)
        layer = _L(len(self.layers), prefix, kind, list(inputs), shape, original, params, tensor)
        if narrow and tensor is not None:
            layer.extra["onnx_width"] = max(n.extra["onnx_width"] for n in narrow)
        self.layers.append(layer)
        if tensor is not None:
            self.owner[tensor] = layer.uid
        return layer

    def shape(self, tensor: str) -> List[int]:
        return _nhwc(self.shapes[tensor])

    def is_const(self, t: str) -> bool:
        return t in self.consts

    def fusable(self, tensor: str) -> Optional[_L]:
        uid = self.owner.get(tensor)
        if uid is None:
            return None
        layer = self.layers[uid]
        if layer.tensor != tensor or self.consumers[tensor] != 1 or layer.type not in _FOLDABLE:
            return None
        return layer

    def fold_into(self, layer: _L, node: onnx.NodeProto, params: Dict[str, Any]) -> None:
        assert layer.original is not None and layer.params is not None
        layer.original.append(node.name)
        layer.params.update(params)
        out = node.output[0]
        layer.tensor = out
        self.owner[out] = layer.uid
        if len(self.shapes.get(out, [])) in (3, 4):
            layer.shape = self.shape(out)

    def broadcast(self, node: onnx.NodeProto, a: str, b: str) -> tuple:
        """Inputs of a binary op on dynamic tensors a, b: resize the one broadcast over W; channel repeats."""
        sa, sb = self.shape(a), self.shape(b)
        ins, repeats = [], []
        out = [max(x, y) for x, y in zip(sa, sb)]
        for t, s in ((a, sa), (b, sb)):
            uid = self.owner[t]
            if s[1] != out[1] or s[2] != out[2]:
                params = {
                    "method": "nearest_neighbor", "resize_bilinear_pixels_mode": "disabled",
                    "resize_f_ratio_list": [1.0], "resize_h_ratio_list": [float(out[1] // s[1])],
                    "resize_w_ratio_list": [float(out[2] // s[2])],
                }  # fmt: skip
                uid = self.add("resize", "resize", [uid], [-1, out[1], out[2], s[3]], [node.name], params).uid
            ins.append(uid)
            repeats.append([1, 1, out[3] // s[3]])
        params: Dict[str, Any] = {"activation": "linear"}
        if any(r != [1, 1, 1] for r in repeats):
            params["input_repeats"] = [[1, 1, 1] if r == [1, 1, 1] else r for r in repeats]
        return ins, params

    def fail(self, node: onnx.NodeProto, message: str, dyn: List[str]) -> None:
        self.errors.append(message)
        self.recommend += [self.producer_node.get(t, t) for t in dyn]

    # ops
    def node(self, node: onnx.NodeProto) -> None:  # noqa: C901 -- one branch per ONNX op
        op = node.op_type
        out = node.output[0]
        ins = [t for t in node.input if t]
        dyn = [t for t in ins if not self.is_const(t)]
        if op == "Constant" or out in self.consts:
            return
        if op == "Identity":
            self.owner[out] = self.owner[dyn[0]]
            return
        if op in _RESHAPES:
            src_shape = self.shapes[dyn[0]]
            dst_shape = self.shapes.get(out, [])
            src = self.layers[self.owner[dyn[0]]]
            if int(np.prod(src_shape)) == int(np.prod(dst_shape)) and sorted(d for d in src_shape if d != 1) == sorted(
                d for d in dst_shape if d != 1
            ) and src.original is not None:
                src.original.append(node.name)
                self.owner[out] = src.uid
                if src.tensor == dyn[0]:
                    src.tensor = out
                return
            raise UnsupportedModelError(f"1D form is not supported in layer {node.name} of type {op}Layer")
        if any(len(self.shapes.get(t, [])) != 4 for t in [*dyn, out]):
            raise UnsupportedModelError(f"1D form is not supported in layer {node.name} of type {op}Layer")
        if self.errors:
            return
        shape = self.shape(out)
        pre = []
        for t in dyn:
            pre += self.pending_pre.pop(t, [])

        if op in ("Conv", "ConvTranspose"):
            w = self.shapes[ins[1]]
            g = int(_attr(node, "group", 1))
            sh, sw = (list(_attr(node, "strides", [1, 1])) + [1, 1])[:2]
            dh, dw_ = (list(_attr(node, "dilations", [1, 1])) + [1, 1])[:2]
            pads = list(_attr(node, "pads", [0, 0, 0, 0]))
            base = {
                "activation": "linear", "batch_norm": False, "dilations": [1, int(dh), int(dw_), 1],
                "elementwise_add": False, "groups": g, "input_disparity": 1, "layer_disparity": 1,
                "strides": [1, int(sh), int(sw), 1],
            }  # fmt: skip
            kh, kw = int(w[2]), int(w[3])
            cin = self.shape(dyn[0])[3]
            if op == "ConvTranspose":
                cout = int(w[1]) * g
                base.update(kernel_shape=[kh, kw, int(w[0]), cout], padding="DECONV")
                _, h_in, f_in, _ = self.shape(dyn[0])
                hn_shape = [-1, h_in * int(sh) if kh > 1 else h_in, f_in * int(sw), cout]
                layer = self.add("deconv", "deconv", [self.owner[dyn[0]]], hn_shape, [node.name], base, out)
                layer.extra["onnx_width"] = shape[2]
                return
            depthwise = g > 1 and g == cin == int(w[0]) and int(w[1]) == 1
            base["padding"] = "VALID" if not any(pads) else "SAME_TENSORFLOW"
            if depthwise:
                base.update(groups=1, kernel_shape=[kh, kw, cin, 1])
                self.add("dw", "dw", [self.owner[dyn[0]]], shape, [node.name], base, out)
            else:
                base["kernel_shape"] = [kh, kw, int(w[1]), int(w[0])]
                self.add("conv", "conv", [self.owner[dyn[0]]], shape, [node.name], base, out)
            return

        if op in _ACTS or op == "Clip":
            act = _ACTS.get(op, "clip")
            if op == "Clip":
                lo = _scalar(self.consts.get(ins[1])) if len(ins) > 1 else _attr(node, "min")
                hi = _scalar(self.consts.get(ins[2])) if len(ins) > 2 else _attr(node, "max")
                act = "relu6" if (lo == 0.0 and hi == 6.0) else ("relu" if lo == 0.0 and hi is None else "clip")
            src = self.fusable(dyn[0])
            if src is not None and src.params is not None and src.params.get("activation", "linear") == "linear":
                self.fold_into(src, node, {"activation": act})
                return
            self.add("activation", "activation", [self.owner[dyn[0]]], shape, pre + [node.name], {"activation": act}, out)
            return

        if op == "Sqrt":
            self.add("activation", "activation", [self.owner[dyn[0]]], shape, pre + [node.name], {"activation": "sqrt"}, out)
            return

        if op in ("ReduceMean", "ReduceMax", "ReduceSum"):
            axes = _attr(node, "axes")
            if axes is None and len(ins) > 1:
                axes = [int(a) for a in np.asarray(self.consts[ins[1]]).reshape(-1)]
            axes = sorted({int(a) % 4 for a in (axes if axes is not None else [0, 1, 2, 3])})
            src = self.owner[dyn[0]]
            _, h, w, c = self.shape(dyn[0])
            if op != "ReduceMean" or 0 in axes or not axes:
                self.fail(node, f"UnsupportedReduceError in op {node.name}: {op} over axes {axes} is unsupported", dyn)
                return
            time = [a for a in axes if a in (2, 3)]
            if time:
                kh, kw = (h if 2 in time else 1), (w if 3 in time else 1)
                params = {
                    "activation": "linear", "count_include_pad": True, "kernel_shape": [1, kh, kw, 1],
                    "padding": "VALID", "strides": [1, kh, kw, 1],
                }  # fmt: skip
                pool_shape = [-1, h // kh, w // kw, c]
                last = self.add("avgpool", "avgpool", [src], pool_shape, [node.name], params,
                                out if 1 not in axes else None)  # fmt: skip
                src = last.uid
            if 1 in axes:
                params = {"activation": "linear", "groups": 1, "height_groups": 1, "reduce_axes": [3]}
                self.add("reduce_mean", "reduce_mean", [src], shape, [node.name], params, out)
            return

        if op == "Pow":
            if _scalar(self.consts.get(ins[1])) != 2.0:
                self.fail(node, f"UnsupportedOperationError in op {node.name}: Pow operation is unsupported", dyn)
                return
            params = {"activation": "linear", "ew_mult_type": "on_apu", "feature_multiplier_type": "square"}
            self.add("square", "feature_multiplier", [self.owner[dyn[0]]], shape, [node.name], params, out)
            return

        if op in ("Max", "Min"):
            self._maxmin(node, ins, dyn, shape)
            return

        if op == "Concat":
            axis = int(_attr(node, "axis", 1)) % 4
            if axis != 1:
                self.fail(node, f"UnsupportedConcatError in op {node.name}: concat over axis {axis} is unsupported", dyn)
                return
            seen: set = set()
            uids = []
            for t in ins:
                uid = self.owner[t]
                if uid in seen:  # the same tensor again: the DFC routes the copy through a shortcut layer
                    uid = self.add("shortcut", "shortcut", [uid], self.shape(t), None, None).uid
                seen.add(uid)
                uids.append(uid)
            self.add("concat", "concat", uids, shape, [node.name], {"concat_axis": "features"}, out)
            return

        if op == "Slice":
            starts = np.asarray(self.consts.get(ins[1])).reshape(-1)
            ends = np.asarray(self.consts.get(ins[2])).reshape(-1)
            axes = np.asarray(self.consts.get(ins[3])).reshape(-1) if len(ins) > 3 else np.arange(len(starts))
            if [int(a) % 4 for a in axes] != [1]:
                self.fail(node, f"UnsupportedSliceError in op {node.name}: slicing other than channels is unsupported", dyn)
                return
            c = self.shape(dyn[0])[3]
            lo, hi = int(starts[0]), min(int(ends[0]), c)
            params = {"activation": "linear", "split_indices": [lo, hi]}
            self.add("feature_splitter", "feature_splitter", [self.owner[dyn[0]]], shape, [node.name], params, out)
            return

        if op in ("Add", "Sub", "Mul", "Div"):
            self._binary(node, ins, dyn, shape, pre)
            return

        self.fail(node, f"UnsupportedOperationError in op {node.name}: {op} operation is unsupported", dyn)

    def _maxmin(self, node: onnx.NodeProto, ins: List[str], dyn: List[str], shape: List[int]) -> None:
        c = shape[3]
        uids = []
        for t in ins:
            if self.is_const(t):
                uid = self.add("const_input", "const_input", [], shape, [f"{node.name}_input"],
                               {"input_tiles": [[1, 1, 1]]}).uid  # fmt: skip
            else:
                uid = self.owner[t]
            uids.append(uid)
        cat_shape = [-1, shape[1], shape[2], c * len(uids)]
        cat = self.add("concat", "concat", uids, cat_shape, [node.name],
                       {"concat_axis": "features", "group_sizes": [1] * c})  # fmt: skip
        red = {"groups": c, "reduce_axes": [3]}
        norm = {"activation": "linear", "elementwise_add": False}
        if node.op_type == "Max":
            self.add("reduce_max", "reduce_max", [cat.uid], shape, [node.name], red, node.output[0])
            return
        neg = self.add("normalization", "normalization", [cat.uid], cat_shape, [node.name], dict(norm))
        mx = self.add("reduce_max", "reduce_max", [neg.uid], shape, [node.name], red)
        self.add("normalization", "normalization", [mx.uid], shape, [node.name], dict(norm), node.output[0])

    def _binary(self, node: onnx.NodeProto, ins: List[str], dyn: List[str], shape: List[int], pre: List[str]) -> None:
        op, out = node.op_type, node.output[0]
        norm = {"activation": "linear", "elementwise_add": False}
        if len(dyn) == 1:
            const = next(t for t in ins if t != dyn[0])
            nxt = self.consumer_ops.get(out, [])
            if op == "Add" and len(nxt) == 1 and nxt[0].op_type == "Sqrt" and self.consumers[out] == 1:
                self.owner[out] = self.owner[dyn[0]]  # + eps before Sqrt: folds into the inv_sqrt layer [I]
                self.pending_pre[out] = [node.name]
                return
            src = self.fusable(dyn[0])
            if op in ("Add", "Sub") and src is not None and src.prefix == "mul_and_add" and src.extra.get("const_mul"):
                src.prefix = "normalization"  # gamma * x + beta: one normalization layer [T]
                src.extra["const_mul"] = False
                self.fold_into(src, node, {})
                return
            value = self.consts.get(const)
            if op in ("Add", "Sub") and value is not None and not np.any(value):
                self.owner[out] = self.owner[dyn[0]]  # x + 0: nothing (real HN drops node_add_8) [T]
                return
            layer = self.add("mul_and_add", "normalization", [self.owner[dyn[0]]], shape, pre + [node.name], dict(norm), out)
            layer.extra["const_mul"] = op == "Mul"
            return
        a, b = dyn
        if op == "Div":
            src = self.layers[self.owner[b]]
            if src.tensor == b and src.type == "activation" and src.params == {"activation": "sqrt"} and self.consumers[b] == 1:
                src.params["activation"] = "inv_sqrt"  # 1 / sqrt(var) [T]
                assert src.original is not None
                src.original.append(node.name)
                src.tensor = None
            else:
                src = self.add("activation", "activation", [self.owner[b]], self.shape(b), [node.name],
                               {"activation": "inv"})  # fmt: skip
            tmp = f"{out}__inv"
            self.owner[tmp] = src.uid
            self.shapes[tmp] = self.shapes[b]
            b = tmp
        uids, params = self.broadcast(node, a, b)
        kind = {"Add": "ew_add", "Sub": "ew_sub", "Mul": "ew_mult", "Div": "ew_mult"}[op]
        if kind == "ew_mult":
            params = {"activation": "linear", "ew_mult_type": "on_apu", **{k: v for k, v in params.items() if k != "activation"}}
            params["is_softmax_mask"] = False
        self.add(kind, kind, uids, shape, pre + [node.name], params, out)


def _number(layers: List[_L], input_uids: List[int], net: str) -> Dict[int, str]:
    """Final names: Kahn FIFO order per prefix; const_inputs by the real HN's string-sorted creation order."""
    succ: Dict[int, List[int]] = collections.defaultdict(list)
    for layer in layers:
        for i in layer.inputs:
            succ[i].append(layer.uid)
    consts = [layer.uid for layer in layers if layer.type == "const_input"]
    indeg = {layer.uid: len(layer.inputs) for layer in layers}
    queue = collections.deque([*input_uids, *consts])
    order: List[int] = []
    while queue:
        x = queue.popleft()
        order.append(x)
        for y in succ[x]:
            indeg[y] -= 1
            if indeg[y] == 0:
                queue.append(y)
    pos = {u: i for i, u in enumerate(order)}
    dist = {uid: 0 for uid in input_uids}
    bfs = collections.deque(input_uids)
    while bfs:
        x = bfs.popleft()
        for y in succ[x]:
            if y not in dist:
                dist[y] = dist[x] + 1
                bfs.append(y)
    names: Dict[int, str] = {}
    counters: collections.Counter[str] = collections.Counter()
    for u in order:
        layer = layers[u]
        if layer.type != "const_input":
            counters[layer.prefix] += 1
            names[u] = f"{net}/{layer.prefix}{counters[layer.prefix]}"

    def key(u: int) -> tuple:
        consumer = succ[u][0]
        others = [i for i in layers[consumer].inputs if i != u and layers[i].type != "const_input"]
        return (dist.get(consumer, 1 << 30), -pos[others[0]] if others else 0, pos[consumer])

    created = sorted(consts, key=key)
    ranks = sorted(range(1, len(created) + 1), key=str)  # ranks[p] = creation index of const_input(p + 1)
    for p, t in enumerate(ranks):
        names[created[t - 1]] = f"{net}/const_input{p + 1}"
    return names


def cut(model: onnx.ModelProto, start_node_names: Optional[List[str]], end_node_names: Any) -> onnx.ModelProto:
    """The part of ``model`` between start and end nodes, as its own model (``model`` itself when they are its
    inputs and outputs) [I: the real parser's cutting rules are not public].

    A start or end name is a node or a tensor name. The part is every node that is both downstream of a start node
    (inclusive; a start *tensor*'s consumers) and upstream of an end node (inclusive); its inputs are the dynamic
    tensors those nodes read and none of them produce, in the order the start nodes read them; its outputs are the
    end nodes' outputs (an end tensor itself), in end-node order.
    """
    graph = model.graph
    consts = _constants(model)
    node_names = {n.name: n for n in graph.node}
    graph_inputs = [i.name for i in graph.input if i.name not in consts]
    tensors = {o for n in graph.node for o in n.output} | set(graph_inputs)
    starts = list(start_node_names or graph_inputs)
    ends = [end_node_names] if isinstance(end_node_names, str) else list(end_node_names or [])
    for name in starts:
        if name not in node_names and name not in tensors:
            raise MisspellNodeError(f"Unable to find start node {name} in the model")
    for name in ends:
        if name not in node_names and name not in tensors:
            raise MisspellNodeError(f"Unable to find end node {name} in the model")
    graph_outputs = [o.name for o in graph.output]
    end_tensors = list(dict.fromkeys(t for e in ends for t in (list(node_names[e].output) if e in node_names else [e])))
    if set(starts) <= set(graph_inputs) and (not ends or set(end_tensors) == set(graph_outputs)):
        return model
    down: set = set()
    live = {t for t in starts if t in tensors and t not in node_names}
    for n in graph.node:
        if n.name in starts or any(t in live for t in n.input if t):
            down.add(n.name)
            live.update(n.output)
    up: set = set()
    need = set(end_tensors or graph_outputs)
    for n in reversed(graph.node):
        if set(n.output) & need:
            up.add(n.name)
            need.update(t for t in n.input if t)
    part = [n for n in graph.node if n.name in down and n.name in up]
    produced = {o for n in part for o in n.output}
    order = [n for name in starts if name in node_names for n in [node_names[name]]] + part
    inputs = [t for t in starts if t not in node_names]
    for n in order:
        for t in n.input:
            if t and t not in consts and t not in produced and t not in inputs:
                inputs.append(t)
    import onnx.utils

    inferred = onnx.shape_inference.infer_shapes(model)
    return onnx.utils.Extractor(inferred).extract_model(inputs, end_tensors or graph_outputs)


def translate(
    model: onnx.ModelProto,
    net_name: str,
    start_node_names: Optional[List[str]],
    end_node_names: Any,
    net_input_shapes: Optional[Dict[str, List[int]]],
) -> Translation:
    """Build the HN of an ONNX model, or of the part between start and end nodes (:func:`cut`); one input layer per
    model input (``input_layer1..k`` in input order)."""
    model = cut(model, start_node_names, end_node_names)
    graph = model.graph
    b = _Builder(model)
    inputs = [i for i in graph.input if i.name not in b.consts]
    graph_outputs = [o.name for o in graph.output]
    in_uids = []
    for vi in inputs:
        in_name = vi.name
        in_dims = b.shapes[in_name]
        if net_input_shapes and in_name in net_input_shapes and list(net_input_shapes[in_name]) != in_dims:
            raise NotImplementedError(f"the fake DFC cannot reshape inputs: {net_input_shapes[in_name]} vs {in_dims}")
        if len(in_dims) != 4:
            raise UnsupportedModelError(f"1D form is not supported in layer {in_name} of type InputLayer")
        in_uids.append(b.add("input_layer", "input_layer", [], _nhwc(in_dims), [in_name], None, in_name).uid)
    for node in graph.node:
        b.node(node)
    if b.errors:
        recs = list(dict.fromkeys(b.recommend))
        raise ParsingWithRecommendationException(
            "Parsing failed. The errors found in the graph are:\n "
            + "\n ".join(b.errors)
            + f"\nPlease try to parse the model again, using these end node names: {', '.join(recs)}",
            recs,
        )
    outs = []
    for o in graph_outputs:
        src = b.layers[b.owner[o]]
        outs.append(b.add("output_layer", "output_layer", [src.uid], list(src.shape), [o], None))
        outs[-1].tensor = o
        outs[-1].extra["onnx_width"] = src.extra.get("onnx_width", src.shape[2])

    names = _number(b.layers, in_uids, net_name)
    for i, layer in enumerate(outs, 1):
        names[layer.uid] = f"{net_name}/output_layer{i}"
    succ: Dict[int, List[int]] = collections.defaultdict(list)
    for layer in b.layers:
        for i in layer.inputs:
            succ[i].append(layer.uid)
    hn_layers: Dict[str, Dict[str, Any]] = {}
    order = sorted(b.layers, key=lambda l: l.uid)
    for layer in order:
        d: Dict[str, Any] = {
            "type": layer.type,
            "input": [names[i] for i in layer.inputs],
            "output": [names[o] for o in succ[layer.uid]],
            "input_shapes": [list(b.layers[i].shape) for i in layer.inputs] or [list(layer.shape)],
            "output_shapes": [list(layer.shape) for _ in range(max(1, len(succ[layer.uid])))],
            "compilation_params": {},
            "quantization_params": dict(_QUANT),
        }
        if layer.original is not None:
            d["original_names"] = list(layer.original)
        if layer.params is not None:
            d["params"] = {k: v for k, v in layer.params.items()}
        hn_layers[names[layer.uid]] = d
    tmap = {names[l.uid]: l.tensor for l in order if l.tensor is not None}
    pools = []
    for layer in order:
        if layer.type == "avgpool" and b.layers[layer.inputs[0]].type == "feature_multiplier":
            pools.append([names[layer.uid], int(layer.params["kernel_shape"][2]) if layer.params else 1])
    pools.sort(key=lambda p: int(p[0].rsplit("avgpool", 1)[1]))
    widths = {names[l.uid]: [int(l.shape[2]), int(l.extra["onnx_width"])] for l in outs}
    hn = {
        "name": net_name,
        "net_params": {"output_layers_order": [names[l.inputs[0]] for l in outs], "net_scopes": [net_name], "stage": "HN",
                       "version": "1.0"},
        "layers": hn_layers,
    }  # fmt: skip
    return Translation(hn=hn, tensors=tmap, var_pools=pools, out_widths=widths, model=model)
