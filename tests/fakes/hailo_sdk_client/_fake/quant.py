"""Calibration statistics and fake-quantized emulation for the fake (dfc_api.md §3, §5).

The fake quantizes *activations only*: every HN layer's output tensor is rounded onto a uniform grid of
``2**bits`` levels over its calibrated range (8 bits by default, 16 with ``precision_mode=a16_w16``), by
inserting ``Sub/Div/Round/Clip/Mul/Add`` nodes after it in the float ONNX graph and running that graph in ONNX
Runtime. Weights stay float. Ranges are the calibration min/max, or per-row percentiles averaged over rows when
``activation_clipping`` asks for them. All of this is an honest simulation, not the DFC's algorithm [I]; the
real facts it mirrors are that ``SDK_QUANTIZED`` returns dequantized float NHWC outputs [C] and that 16-bit
layers are more faithful [C].
"""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

__all__ = ["collect_ranges", "fake_quant", "layer_snr", "run_all", "tensor_values"]


def _session(model: onnx.ModelProto) -> ort.InferenceSession:
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.log_severity_level = 3
    return ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])


def _rows(feeds: dict[str, np.ndarray]) -> list[dict[str, np.ndarray]]:
    """Per row, one batch-1 feed of every model input (inputs ``[n, C, H, W]`` keyed by ONNX name)."""
    n = len(next(iter(feeds.values())))
    return [{k: v[i : i + 1].astype(np.float32) for k, v in feeds.items()} for i in range(n)]


def collect_ranges(
    model: onnx.ModelProto,
    tensors: dict[str, str],
    feeds: dict[str, np.ndarray],
    clipping: dict[str, tuple[str, float, float]],
) -> dict[str, tuple[float, float]]:
    """Per HN layer (lo, hi) of its output tensor over the calibration rows (``feeds``: ONNX input -> ``[n,C,H,W]``)."""
    aug = onnx.ModelProto()
    aug.CopyFrom(model)
    present = {o.name for o in aug.graph.output}
    wanted = sorted({t for t in tensors.values() if t not in feeds})
    for t in wanted:
        if t not in present:
            aug.graph.output.append(helper.make_tensor_value_info(t, TensorProto.FLOAT, None))
    sess = _session(aug)
    names = [o.name for o in sess.get_outputs()]
    lo: dict[str, list[float]] = {k: [] for k in tensors}
    hi: dict[str, list[float]] = {k: [] for k in tensors}
    for row in _rows(feeds):
        values = dict(zip(names, sess.run(names, row), strict=True))
        values.update(row)
        for layer, t in tensors.items():
            v = np.asarray(values[t], dtype=np.float64).reshape(-1)
            mode, a, b = clipping.get(layer, ("minmax", 0.0, 100.0))
            if mode == "percentile":
                pa, pb = np.percentile(v, [a, b])
            elif mode == "manual":
                pa, pb = a, b
            else:
                pa, pb = v.min(), v.max()
            lo[layer].append(float(pa))
            hi[layer].append(float(pb))
    out = {}
    for layer in tensors:
        mode = clipping.get(layer, ("minmax",))[0]
        if mode == "minmax":
            out[layer] = (min(lo[layer]), max(hi[layer]))
        else:
            out[layer] = (float(np.mean(lo[layer])), float(np.mean(hi[layer])))
    return out


def fake_quant(
    model: onnx.ModelProto, plan: dict[str, tuple[float, float, int]], input_names: list[str]
) -> onnx.ModelProto:
    """A copy of ``model`` with every tensor in ``plan`` (tensor -> lo, hi, bits) rounded onto its grid (model
    inputs ``input_names`` included)."""
    q = onnx.ModelProto()
    q.CopyFrom(model)
    graph = q.graph
    nodes = list(graph.node)
    del graph.node[:]
    inits = []

    def chain(src: str, dst: str, lo: float, hi: float, bits: int, tag: int) -> list[onnx.NodeProto]:
        lo, hi = min(lo, 0.0), max(hi, 0.0)
        scale = (hi - lo) / float(2**bits - 1)
        if not np.isfinite(scale) or scale <= 0:
            return [helper.make_node("Identity", [src], [dst], name=f"fq{tag}_id")]
        p = f"fq{tag}"
        for suffix, value in (("lo", lo), ("scale", scale), ("zero", 0.0), ("qmax", float(2**bits - 1))):
            inits.append(numpy_helper.from_array(np.array(value, dtype=np.float32), f"{p}_{suffix}"))
        return [
            helper.make_node("Sub", [src, f"{p}_lo"], [f"{p}_a"], name=f"{p}_sub"),
            helper.make_node("Div", [f"{p}_a", f"{p}_scale"], [f"{p}_b"], name=f"{p}_div"),
            helper.make_node("Round", [f"{p}_b"], [f"{p}_c"], name=f"{p}_round"),
            helper.make_node("Clip", [f"{p}_c", f"{p}_zero", f"{p}_qmax"], [f"{p}_d"], name=f"{p}_clip"),
            helper.make_node("Mul", [f"{p}_d", f"{p}_scale"], [f"{p}_e"], name=f"{p}_mul"),
            helper.make_node("Add", [f"{p}_e", f"{p}_lo"], [dst], name=f"{p}_add"),
        ]

    tag = 0
    for input_name in input_names:
        if input_name not in plan:
            continue
        graph.node.extend(chain(input_name, f"{input_name}__fq", *plan[input_name], tag))
        tag += 1
        for node in nodes:
            for i, name in enumerate(node.input):
                if name == input_name:
                    node.input[i] = f"{input_name}__fq"
    for node in nodes:
        targets = [(i, o) for i, o in enumerate(node.output) if o in plan]
        for i, o in targets:
            node.output[i] = f"{o}__raw"
        graph.node.append(node)
        for _, o in targets:
            graph.node.extend(chain(f"{o}__raw", o, *plan[o], tag))
            tag += 1
    graph.initializer.extend(inits)
    return q


def run_all(model: onnx.ModelProto, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Run rows of ``feeds`` (ONNX input -> ``[n, C, H, W]``) one at a time (the exported models have batch 1);
    every graph output by name, NCHW float32."""
    sess = _session(model)
    names = [o.name for o in sess.get_outputs()]
    rows = [sess.run(names, row) for row in _rows(feeds)]
    return {n: np.concatenate([r[j] for r in rows], axis=0).astype(np.float32) for j, n in enumerate(names)}


def tensor_values(model: onnx.ModelProto, tensors: list[str], feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The values of ``tensors`` (graph tensors of ``model``) for the rows of ``feeds``, stacked over rows."""
    aug = onnx.ModelProto()
    aug.CopyFrom(model)
    present = {o.name for o in aug.graph.output}
    for t in tensors:
        if t not in present and t not in feeds:
            aug.graph.output.append(helper.make_tensor_value_info(t, TensorProto.FLOAT, None))
    sess = _session(aug)
    names = [o.name for o in sess.get_outputs()]
    rows: dict[str, list[np.ndarray]] = {t: [] for t in tensors}
    for row in _rows(feeds):
        values = dict(zip(names, sess.run(names, row), strict=True))
        values.update(row)
        for t in tensors:
            rows[t].append(np.asarray(values[t], dtype=np.float64))
    return {t: np.concatenate(v, axis=0) for t, v in rows.items()}


def layer_snr(model: onnx.ModelProto, plan: dict[str, tuple[float, float, int]], tensors: dict[str, str],
              feeds: dict[str, np.ndarray]) -> dict[str, float]:  # fmt: skip
    """Per HN layer: SNR [dB] of its output tensor, everything quantized vs float, over the rows of ``feeds`` -- the
    fake's version of the DFC's *simple* layer noise analysis ("partial_snr", dfc_api.md 5.3) [I]."""
    wanted = sorted(set(tensors.values()))
    ref = tensor_values(model, wanted, feeds)
    got = tensor_values(fake_quant(model, plan, list(feeds)), wanted, feeds)
    out = {}
    for layer, t in tensors.items():
        noise = float(np.sum((ref[t] - got[t]) ** 2))
        signal = float(np.sum(ref[t] ** 2))
        out[layer] = float("inf") if noise == 0.0 else (10.0 * np.log10(signal / noise) if signal > 0 else float("-inf"))
    return out
