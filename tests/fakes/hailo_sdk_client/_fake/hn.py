"""ONNX -> HN translation for the fake (dfc_api.md §1.4, §4.2, §8).

What rests on public facts [C]: HN layer keys are ``<net>/<type><index>`` with per-type counters
(``conv5``, ``avgpool6``, ``ew_add3``, ``input_layer1``, ``output_layer1``); a layer dict carries ``type``,
``input``, ``output``, ``input_shapes``/``output_shapes`` as ``[N, H, W, C]`` with N = -1, ``original_names``
(the ONNX nodes it came from) and ``params``; output layers point at their producer through ``input[0]``.

What is guessed [I]: which HN type each ONNX op becomes. ``ReduceMean`` over the time axis (gLN's axes
``[1, 2, 3]``) becomes ``avgpool`` (HD saw ``ne_activation_avgpool6`` in a gLN model [T]); ``ReduceMean`` over
channels only (cLN's axis ``[1]``) becomes ``reduce_sum`` (summing over the channel axis parsed in
IDX-70898832909 [T]); binary ops are ``ew_*`` layers; ``Pow(x, 2)`` is an ``ew_mult``. An activation (ReLU,
PReLU, Sigmoid, Clip, Sqrt) and a constant-operand Add/Sub/Mul/Div fold into the layer producing their input
when that layer feeds nothing else (``change_output_activation(conv, sigmoid)`` in MZ scripts [C] shows that
activations are a property of the producing layer; folding constants is a guess). So a gLN becomes
``avgpool`` (mean), ``ew_sub``, ``ew_mult`` (square), ``avgpool`` (variance, with ``+ eps`` and ``Sqrt`` folded in:
an avgpool *with an activation*, which is what ``ne_activation_avgpoolN`` names) and ``ew_div`` (with gamma/beta).
"""

from __future__ import annotations

import collections
from dataclasses import dataclass
from typing import Any

import numpy as np
import onnx
from onnx import numpy_helper

from hailo_sdk_client.model_translator.exceptions import (
    MisspellNodeError,
    ParsingWithRecommendationException,
    UnsupportedModelError,
)

__all__ = ["Translation", "translate"]

_ACTIVATIONS = {"Relu": "relu", "PRelu": "prelu", "Sigmoid": "sigmoid", "Clip": "clip", "Sqrt": "sqrt"}
_ELEMENTWISE = {"Add": "ew_add", "Sub": "ew_sub", "Mul": "ew_mult", "Div": "ew_div", "Max": "ew_max", "Min": "ew_min"}


@dataclass(frozen=True)
class Translation:
    """A translated model.

    Attributes:
        hn: The HN dict (``name``, ``net_params``, ``layers``).
        tensors: Scoped HN layer -> the ONNX tensor holding its output (fake-internal, not part of the HN).
        global_pools: ``avgpool`` layers lowered from a ReduceMean over channels *and* time (gLN) that carry a
            fused activation (the variance pools: ``+ eps`` and ``Sqrt`` fold into them), in order.
    """

    hn: dict[str, Any]
    tensors: dict[str, str]
    global_pools: list[str]


def _nhwc(dims: list[int]) -> list[int]:
    n, c, h, w = dims
    return [-1, h, w, c]


def _constants(model: onnx.ModelProto) -> dict[str, np.ndarray]:
    values = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    for node in model.graph.node:
        if node.op_type == "Constant":
            for attr in node.attribute:
                if attr.name == "value":
                    values[node.output[0]] = numpy_helper.to_array(attr.t)
        elif node.op_type == "Identity" and node.input[0] in values:
            values[node.output[0]] = values[node.input[0]]
    return values


def _shapes(model: onnx.ModelProto) -> dict[str, list[int]]:
    inferred = onnx.shape_inference.infer_shapes(model)
    out: dict[str, list[int]] = {}
    for vi in [*inferred.graph.input, *inferred.graph.value_info, *inferred.graph.output]:
        out[vi.name] = [d.dim_value if d.HasField("dim_value") else -1 for d in vi.type.tensor_type.shape.dim]
    return out


def _attr(node: onnx.NodeProto, name: str, default: Any = None) -> Any:
    for a in node.attribute:
        if a.name == name:
            return onnx.helper.get_attribute_value(a)
    return default


def translate(
    model: onnx.ModelProto,
    net_name: str,
    start_node_names: list[str] | None,
    end_node_names: list[str] | str | None,
    net_input_shapes: dict[str, list[int]] | None,
) -> Translation:
    """Build the HN of a single-input ONNX model (the whole graph; cutting is not faked)."""
    graph = model.graph
    consts = _constants(model)
    inputs = [i for i in graph.input if i.name not in consts]
    if len(inputs) != 1:
        raise NotImplementedError(f"the fake DFC translates single-input models only; got {len(inputs)} inputs")
    node_names = {n.name for n in graph.node}
    tensors = {o for n in graph.node for o in n.output} | {inputs[0].name}
    for name in start_node_names or []:
        if name not in node_names and name not in tensors:
            raise MisspellNodeError(f"Unable to find start node {name} in the model")
    ends = [end_node_names] if isinstance(end_node_names, str) else list(end_node_names or [])
    graph_outputs = [o.name for o in graph.output]
    for name in ends:
        if name not in node_names and name not in tensors:
            raise MisspellNodeError(f"Unable to find end node {name} in the model")
        outs = [o for n in graph.node if n.name == name for o in n.output] or [name]
        if not set(outs) & set(graph_outputs):
            raise NotImplementedError(f"the fake DFC cannot cut graphs; end node {name} is not a graph output")

    shapes = _shapes(model)
    in_name = inputs[0].name
    in_dims = shapes[in_name]
    if net_input_shapes and in_name in net_input_shapes and list(net_input_shapes[in_name]) != in_dims:
        raise NotImplementedError(f"the fake DFC cannot reshape inputs: {net_input_shapes[in_name]} vs {in_dims}")

    counters: collections.Counter[str] = collections.Counter()
    layers: dict[str, dict[str, Any]] = {}
    owner: dict[str, str] = {}
    out_tensor: dict[str, str] = {}
    errors: list[str] = []
    recommend: list[str] = []
    producer_node: dict[str, str] = {}

    def add(kind: str, original: list[str], ins: list[str], out: str, params: dict[str, Any]) -> str:
        counters[kind] += 1
        name = f"{net_name}/{kind}{counters[kind]}"
        layers[name] = {
            "type": kind,
            "input": [owner[t] for t in ins],
            "output": [],
            "input_shapes": [_nhwc(shapes[t]) for t in ins] if ins else [_nhwc(shapes[out])],
            "output_shapes": [_nhwc(shapes[out])],
            "original_names": original,
            "params": params,
        }
        owner[out] = name
        out_tensor[name] = out
        return name

    consumers: collections.Counter[str] = collections.Counter(t for n in graph.node for t in n.input)
    consumers.update(o.name for o in graph.output)

    def _fuse(layer: str, node: onnx.NodeProto, params: dict[str, Any]) -> None:
        """Fold an activation or a constant-operand op into the layer that produces its input."""
        layers[layer]["original_names"].append(node.name)
        layers[layer]["params"].update(params)
        layers[layer]["params"].setdefault("fused_ops", []).append(node.op_type)
        layers[layer]["output_shapes"] = [_nhwc(shapes[node.output[0]])]
        owner[node.output[0]] = layer
        out_tensor[layer] = node.output[0]

    add("input_layer", [in_name], [], in_name, {})
    for node in graph.node:
        op = node.op_type
        if op == "Constant" or node.output[0] in consts:
            continue
        dyn = [t for t in node.input if t and t not in consts]
        for t in node.output:
            producer_node[t] = node.name
        if any(len(shapes.get(t, [])) != 4 for t in [*dyn, node.output[0]]):
            raise UnsupportedModelError(f"1D form is not supported in layer {node.name} of type {op}Layer")
        if op == "Identity":
            owner[node.output[0]] = owner[dyn[0]]
            continue
        src = owner.get(dyn[0]) if len(dyn) == 1 else None
        fusable = (
            src is not None
            and layers[src]["type"] != "input_layer"
            and out_tensor[src] == dyn[0]
            and consumers[dyn[0]] == 1
            and not errors
        )
        if fusable and op in _ACTIVATIONS and "activation" not in layers[src]["params"]:
            _fuse(src, node, {"activation": _ACTIVATIONS[op]})
            continue
        if fusable and op in ("Add", "Sub", "Mul", "Div"):
            _fuse(src, node, {})
            continue
        params: dict[str, Any] = {}
        if op in ("Conv", "ConvTranspose"):
            w = consts[node.input[1]]
            group = int(_attr(node, "group", 1))
            kh, kw = w.shape[2:]
            params = {
                "kernel_shape": [int(kh), int(kw), int(w.shape[1]), int(w.shape[0])],
                "strides": list(_attr(node, "strides", [1, 1])),
                "dilations": list(_attr(node, "dilations", [1, 1])),
                "groups": group,
            }
            cin = shapes[dyn[0]][1]
            kind = "deconv" if op == "ConvTranspose" else ("dw" if group > 1 and group == cin == w.shape[0] else "conv")
        elif op in _ACTIVATIONS:
            kind, params = "activation", {"activation": _ACTIVATIONS[op]}
        elif op == "ReduceMean":
            axes = _attr(node, "axes")
            if axes is None and len(node.input) > 1:
                axes = consts[node.input[1]].tolist()
            axes = sorted(int(a) % 4 for a in (axes or [0, 1, 2, 3]))
            if 3 in axes and 0 not in axes:
                kind, params = "avgpool", {"kernel_shape": "global", "reduce_axes": axes}
            elif axes == [1]:
                kind, params = "reduce_sum", {"reduce_axes": [3], "scale": 1.0 / shapes[dyn[0]][1]}
            else:
                errors.append(f"UnsupportedReduceMeanError in op {node.name}: ReduceMean over axes {axes} is unsupported")
                recommend += [producer_node.get(t, t) for t in dyn]
                continue
        elif op == "Pow" and float(np.asarray(consts.get(node.input[1], np.nan)).reshape(-1)[0]) == 2.0:
            kind, params = "ew_mult", {"square": True}
        elif op in _ELEMENTWISE:
            kind = _ELEMENTWISE[op]
        elif op == "Concat":
            kind, params = "concat", {"concat_axis": 3}
        else:
            errors.append(f"UnsupportedOperationError in op {node.name}: {op} operation is unsupported")
            recommend += [producer_node.get(t, t) for t in dyn]
            continue
        if errors:
            continue  # keep collecting errors; layers after an unsupported op are meaningless
        add(kind, [node.name], dyn, node.output[0], params)
    if errors:
        recs = list(dict.fromkeys(recommend))
        raise ParsingWithRecommendationException(
            "Parsing failed. The errors found in the graph are:\n "
            + "\n ".join(errors)
            + f"\nPlease try to parse the model again, using these end node names: {', '.join(recs)}",
            recs,
        )

    pools = [
        n for n, layer in layers.items()
        if layer["type"] == "avgpool" and 1 in layer["params"]["reduce_axes"] and "activation" in layer["params"]
    ]
    order = []
    for i, o in enumerate(graph_outputs, 1):
        name = f"{net_name}/output_layer{i}"
        layers[name] = {
            "type": "output_layer",
            "input": [owner[o]],
            "output": [],
            "input_shapes": [_nhwc(shapes[o])],
            "output_shapes": [_nhwc(shapes[o])],
            "original_names": [o],
            "params": {},
        }
        out_tensor[name] = o
        order.append(name)
    for name, layer in layers.items():
        for src in layer["input"]:
            layers[src]["output"].append(name)
    hn = {"name": net_name, "net_params": {"output_layers_order": order}, "layers": layers}
    return Translation(hn=hn, tensors=out_tensor, global_pools=pools)
