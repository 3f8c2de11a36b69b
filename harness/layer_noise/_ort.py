"""ONNX Runtime (``ort`` backend): per-tensor SQNR of a QDQ model against its float model, on the same inputs.

:func:`_plan` picks the float model's activation tensors and their QDQ counterparts (the dequantized value of a
Q -> DQ chain, else the same name where the quantizer left the tensor in float); :func:`_measure` runs both models
with ONNX Runtime's graph optimizations off, chunk by chunk (:mod:`harness.layer_noise._chunks`), and sums signal
and noise per tensor over the inputs. :func:`layer_noise` returns the rows, :func:`noise_report` a
:class:`~harness.layer_noise.NoiseReport`.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from harness.layer_noise._chunks import _CHUNK, _CHUNK_BYTES, _chunks
from harness.layer_noise._report import NoiseReport, Row

__all__ = ["_measure", "_plan", "_tensor_info", "layer_noise", "noise_report"]

log = logging.getLogger("harness.layer_noise")

_BITS = {2: 8, 3: 8, 4: 16, 5: 16, 21: 4, 22: 4}  # zero-point TensorProto type -> bits (UINT8, INT8, UINT16 ...)
_FLOAT = 1  # TensorProto.FLOAT


def _constant_tensors(graph: Any) -> set[str]:
    """Tensors computable from initializers and Constant nodes alone (weights, shapes): not activations."""
    const = {t.name for t in graph.initializer} | {""}
    for n in graph.node:  # nodes are topologically sorted in a valid ONNX graph
        if n.op_type == "Constant" or all(i in const for i in n.input):
            const.update(n.output)
    return const


def _tensor_info(model: Any) -> tuple[dict[str, int], dict[str, int]]:
    """Tensor name -> element type, and -> element count where the inferred shape is fully known."""
    import onnx

    try:
        inferred = onnx.shape_inference.infer_shapes(model)
    except Exception as exc:  # noqa: BLE001 - inference is best effort; unknown types are skipped
        log.warning("shape inference failed (%s); only typed tensors are compared", exc)
        inferred = model
    g = inferred.graph
    values = [*g.value_info, *g.input, *g.output]
    sizes: dict[str, int] = {}
    for v in values:
        dims = v.type.tensor_type.shape.dim if v.type.tensor_type.HasField("shape") else None
        if dims is not None and all(d.HasField("dim_value") and d.dim_value >= 0 for d in dims):
            sizes[v.name] = math.prod(d.dim_value for d in dims)
    return {v.name: v.type.tensor_type.elem_type for v in values}, sizes



def _qdq_counterparts(qgraph: Any, wanted: set[str]) -> dict[str, tuple[str, int | None]]:
    """Float tensor name -> (the QDQ tensor holding its dequantized value, its bits) for Q -> DQ chains."""
    producers = {o: n for n in qgraph.node for o in n.output}
    inits = {t.name: t for t in qgraph.initializer}
    found: dict[str, tuple[str, int | None]] = {}
    for dq in qgraph.node:
        if dq.op_type != "DequantizeLinear" or not dq.input:
            continue
        q = producers.get(dq.input[0])
        if q is None or q.op_type != "QuantizeLinear":
            continue
        src, out = q.input[0], dq.output[0]
        bits = None
        if len(q.input) > 2 and q.input[2] in inits:
            bits = _BITS.get(inits[q.input[2]].data_type)
        # T -> Q -> DQ -> T_DequantizeLinear_Output; a graph output O: O_QuantizeLinear_Input -> Q -> DQ -> O
        for name in (src, out, src.removesuffix("_QuantizeLinear_Input")):
            if name in wanted and name not in found:
                found[name] = (out, bits)
                break
    return found


def _with_outputs(model: Any, names: Sequence[str]) -> bytes:
    import onnx
    from onnx import helper

    m = onnx.ModelProto()
    m.CopyFrom(model)
    have = {o.name for o in m.graph.output}
    for name in names:
        if name not in have:
            m.graph.output.append(helper.make_tensor_value_info(name, _FLOAT, None))
            have.add(name)
    return m.SerializeToString()


def _session(model_bytes: bytes) -> Any:
    import onnxruntime as ort

    from harness.backends._ort import threads

    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL  # the QDQ graph as written
    opts.intra_op_num_threads = threads()
    opts.log_severity_level = 3
    return ort.InferenceSession(model_bytes, opts, providers=["CPUExecutionProvider"])


def _sqnr(signal: float, noise: float) -> float:
    if noise == 0.0:
        return math.inf
    if signal == 0.0:
        return -math.inf
    return 10.0 * math.log10(signal / noise)


def _plan(
    float_model: Any, qdq_model: Any, sizes: dict[str, int] | None = None
) -> tuple[list[tuple[str, str, str, int]], dict[str, tuple[str, int | None]], dict[str, str]]:
    """(tensor, node, op, index) to compare, their QDQ counterparts, and the skipped tensors with reasons; ``sizes``
    (when given) receives the float tensors' known element counts."""
    g = float_model.graph
    const = _constant_tensors(g)
    types, counts = _tensor_info(float_model)
    if sizes is not None:
        sizes.update(counts)
    inputs = [i.name for i in g.input if i.name not in {t.name for t in g.initializer}]
    order: list[tuple[str, str, str, int]] = [(name, "(graph input)", "Input", -1) for name in inputs]
    skipped: dict[str, str] = {}
    for idx, n in enumerate(g.node):
        for out in n.output:
            if not out or out in const:
                continue
            if types.get(out, _FLOAT if out in {o.name for o in g.output} else 0) != _FLOAT:
                skipped[out] = "not a float tensor (or its type is unknown)"
                continue
            order.append((out, n.name or f"#{idx}", n.op_type, idx))
    wanted = {t for t, *_ in order}
    mapped = _qdq_counterparts(qdq_model.graph, wanted)
    qtensors = {o for n in qdq_model.graph.node for o in n.output} | {i.name for i in qdq_model.graph.input}
    for t, *_ in order:
        if t not in mapped:
            if t in qtensors:
                mapped[t] = (t, None)  # left in float by the quantizer: compare it under its own name
            else:
                skipped[t] = "no counterpart in the QDQ model (fused or removed by the quantizer)"
    plan = [row for row in order if row[0] in mapped]
    return plan, mapped, skipped


def layer_noise(
    float_onnx: str | Path, qdq_onnx: str | Path, inputs: np.ndarray, *, chunk: int = _CHUNK, chunk_bytes: int = _CHUNK_BYTES
) -> list[Row]:
    """Per-tensor SQNR between a float ONNX model and its QDQ-quantized version, worst first.

    Args:
        float_onnx: The float model (the trial's ``export/model.onnx``).
        qdq_onnx: Its QDQ model (``compiled/model.qdq.onnx`` or the optimize stage's ``quantized.onnx``).
        inputs: ``[n, ...]``: n inputs for the model's single input (``[n,1,1,W]`` for hefsweep's models); each
            row runs as a batch of one.
        chunk: Tensors exposed per session at most.
        chunk_bytes: Bytes of float tensors exposed per session at most (from the inferred shapes; the memory
            bound of one run). Neither bound changes a number: each tensor's sums run over the same inputs in
            the same order, in whichever session computes it.

    Returns:
        One :class:`Row` per activation tensor of the float model that has a counterpart in the QDQ model.
    """
    return _measure(float_onnx, qdq_onnx, inputs, chunk, chunk_bytes)[0]


def _measure(
    float_onnx: str | Path, qdq_onnx: str | Path, inputs: np.ndarray, chunk: int = _CHUNK, chunk_bytes: int = _CHUNK_BYTES
) -> tuple[list[Row], dict[str, str]]:
    import onnx

    inputs = np.asarray(inputs, dtype=np.float32)
    if inputs.ndim < 1 or len(inputs) == 0:
        raise ValueError(f"inputs of shape {inputs.shape}; expected [n, ...] with n >= 1")
    fm = onnx.load(str(float_onnx))
    qm = onnx.load(str(qdq_onnx))
    counts: dict[str, int] = {}
    plan, mapped, skipped = _plan(fm, qm, counts)
    graph_inputs = {t for t, _, op, _ in plan if op == "Input"}
    if len(graph_inputs) != 1:
        raise ValueError(f"{float_onnx}: {len(graph_inputs)} graph inputs; expected exactly one")
    in_name = next(iter(graph_inputs))
    signal: dict[str, float] = {}
    noise: dict[str, float] = {}
    sizes = [4 * counts[t] if t in counts else None for t, *_ in plan]  # float32 bytes of one run's tensor
    for start, end in _chunks(sizes, chunk, chunk_bytes):
        part = plan[start:end]
        f_names = [t for t, *_ in part if t != in_name]
        q_names = [mapped[t][0] for t, *_ in part]
        fs = _session(_with_outputs(fm, f_names))
        qs = _session(_with_outputs(qm, q_names))
        for i in range(len(inputs)):
            _accumulate(fs, qs, part, f_names, q_names, in_name, inputs[i : i + 1], (signal, noise, skipped))
        del fs, qs  # this chunk's sessions go before the next chunk's are made
    rows = [
        Row(t, node, op, _sqnr(signal[t], noise[t]), mapped[t][1], idx)
        for t, node, op, idx in plan
        if t in signal and t not in skipped
    ]
    rows.sort(key=lambda r: (r.sqnr_db, r.index))
    return rows, skipped


def _accumulate(
    fs: Any,
    qs: Any,
    part: Sequence[tuple[str, str, str, int]],
    f_names: list[str],
    q_names: list[str],
    in_name: str,
    x: np.ndarray,
    sums: tuple[dict[str, float], dict[str, float], dict[str, str]],
) -> None:
    """One input through one chunk's float and QDQ sessions, added to (signal, noise, skipped); the outputs are
    freed on return, before the next input runs."""
    signal, noise, skipped = sums
    f_out = dict(zip(f_names, fs.run(f_names, {in_name: x}), strict=True)) if f_names else {}
    f_out[in_name] = x
    q_out = qs.run(q_names, {qs.get_inputs()[0].name: x})
    for (t, *_), q in zip(part, q_out, strict=True):
        ref = np.asarray(f_out[t], dtype=np.float64)
        q = np.asarray(q, dtype=np.float64)
        if ref.shape != q.shape:
            skipped[t] = f"shape {list(q.shape)} in the QDQ model vs {list(ref.shape)} in the float model"
            continue
        signal[t] = signal.get(t, 0.0) + float(np.sum(ref * ref))
        noise[t] = noise.get(t, 0.0) + float(np.sum((ref - q) ** 2))


def noise_report(float_onnx: str | Path, qdq_onnx: str | Path, inputs: np.ndarray) -> NoiseReport:
    """:func:`layer_noise` as a :class:`NoiseReport` (backend ``ort``)."""
    rows, skipped = _measure(float_onnx, qdq_onnx, inputs)
    return NoiseReport("ort", True, rows, "", int(len(inputs)), skipped)
