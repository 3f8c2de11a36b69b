"""Per-layer quantization noise: where in the network a quantized model loses its fidelity.

ONNX Runtime (``ort`` backend): every activation tensor of the float ONNX model is compared with the same tensor
of the QDQ model, run on the same inputs. In a QDQ graph a tensor ``T`` is quantized as
``T -> QuantizeLinear -> DequantizeLinear -> T_DequantizeLinear_Output`` (a graph output ``O`` is produced as
``O_QuantizeLinear_Input -> Q -> DQ -> O``); the *dequantized* value is what the next layer sees, so it is the
one compared. A tensor that the quantizer left in float (e.g. the Pow/Sqrt of a gLN) is compared under its own
name: its error is what its dequantized inputs carried into it. Both graphs run with ONNX Runtime's graph
optimizations off, i.e. with the QDQ model's fake-quant semantics, not ORT's fused QLinear kernels; the final
output's SQNR is therefore close to, not identical with, what the trial's emulation measured.

    SQNR(T) = 10 log10( sum(ref_T^2) / sum((ref_T - q_T)^2) )   [dB], summed over all inputs

``inf`` means the two tensors are identical. Rows come sorted worst first.

Hailo (``hailo`` backend): the DFC's own layer noise analysis, read from the runner's params statistics right after
``optimize()`` (``layer_noise_analysis/snr`` of an advanced ``analyze_noise`` run, else ``partial_snr`` of the simple
analysis optimize runs at optimization level >= 1; ``../shared/dfc_api.md`` section 5.3, the layout HACE's
``high_precision_inspector.py`` reads). Where the DFC recorded none, the report says "not available" and why. Tested
against the fake DFC only, whose numbers are its own simulation.

Pipeline use (after emulate; the stage's folder gets ``layer_noise.json``, ``.csv`` and ``.png``)::

    noise_stage(backend, float_onnx, optimized_path, inputs, workdir) -> dict   # the stage's cache meta
"""

from __future__ import annotations

import csv
import json
import logging
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from harness.errors import HarnessError

__all__ = [
    "FILES",
    "NOISE_VERSION",
    "DiffRow",
    "NoiseDiff",
    "NoiseReport",
    "Row",
    "diff_noise",
    "hailo_noise_report",
    "layer_noise",
    "load_run_noise",
    "noise_report",
    "noise_stage",
    "read_noise",
    "write_noise",
]

log = logging.getLogger("harness.layer_noise")

#: Part of the noise stage's cache key: bump when the numbers or the files change.
NOISE_VERSION = 2
#: The files a noise folder holds (the plot only where matplotlib is importable, the table only when available).
FILES = ("layer_noise.json", "layer_noise.csv", "layer_noise.png")
#: Layers below this SQNR are "sensitive" (Hailo staff's rule of thumb, dfc_api.md 5.3); marked in the plot.
SENSITIVE_DB = 10.0
_FORMAT = "hefsweep.layer_noise/1"
_ORT_DEFINITION = (
    "sqnr_db = 10*log10(sum(ref^2)/sum((ref-q)^2)) over all inputs; ref: float ONNX tensor, q: the QDQ model's "
    "dequantized tensor of the same name; inf = identical"
)
_BITS = {2: 8, 3: 8, 4: 16, 5: 16, 21: 4, 22: 4}  # zero-point TensorProto type -> bits (UINT8, INT8, UINT16 ...)
_FLOAT = 1  # TensorProto.FLOAT
_CHUNK = 256  # tensors exposed per session at most
#: Bytes of the float tensors exposed per session at most (the QDQ session exposes as many): a paper-size
#: Conv-TasNet at W=16000 has 639 compared tensors of 4 MB, which 256 at a time held 2.1 GiB (bench/worker_rss.py).
_CHUNK_BYTES = 512 * 2**20


@dataclass(frozen=True)
class Row:
    """One tensor's quantization noise.

    Attributes:
        tensor: The tensor's name in the float ONNX model.
        node: The float model's node that produces it (``(graph input)`` for the input).
        op_type: That node's op type (``Input`` for the input).
        sqnr_db: Signal-to-quantization-noise ratio in dB (``inf``: identical).
        bits: Bits of this tensor's own QuantizeLinear in the QDQ model; None when the quantizer left it in float.
        index: Position in the float graph (topological order; -1 for the input).
    """

    tensor: str
    node: str
    op_type: str
    sqnr_db: float
    bits: int | None
    index: int

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["sqnr_db"] = _num(self.sqnr_db)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Row:
        bits = d.get("bits")
        return cls(
            tensor=str(d["tensor"]),
            node=str(d.get("node", "")),
            op_type=str(d.get("op_type", "")),
            sqnr_db=float(d["sqnr_db"]),
            bits=int(bits) if bits not in (None, "") else None,
            index=int(d.get("index", -1)),
        )


def _num(x: float) -> float | str:
    """JSON has no inf/nan: non-finite values are written as the strings ``inf``, ``-inf``, ``nan``."""
    return x if math.isfinite(x) else str(x)


@dataclass
class NoiseReport:
    """A trial's layer-noise table, or why there is none.

    Attributes:
        backend: ``ort`` or ``hailo``.
        available: False when no per-layer numbers exist (``reason`` says why); ``rows`` is then empty.
        rows: The table, worst first.
        reason: Why the table is not available (or empty).
        n_inputs: How many inputs the numbers were measured on.
        skipped: Float-model tensors that could not be compared, with the reason (e.g. no counterpart).
    """

    backend: str
    available: bool
    rows: list[Row] = field(default_factory=list)
    reason: str = ""
    n_inputs: int = 0
    skipped: dict[str, str] = field(default_factory=dict)
    definition: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": _FORMAT,
            "backend": self.backend,
            "available": self.available,
            "reason": self.reason,
            "n_inputs": self.n_inputs,
            "definition": self.definition or _ORT_DEFINITION,
            "rows": [r.to_dict() for r in self.rows],
            "skipped": self.skipped,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> NoiseReport:
        if d.get("format") != _FORMAT:
            raise ValueError(f"format {d.get('format')!r}; expected {_FORMAT!r}")
        return cls(
            backend=str(d.get("backend", "")),
            available=bool(d.get("available")),
            rows=[Row.from_dict(r) for r in d.get("rows", [])],
            reason=str(d.get("reason", "")),
            n_inputs=int(d.get("n_inputs", 0)),
            skipped=dict(d.get("skipped", {})),
            definition=str(d.get("definition", "")),
        )

    def summary(self) -> dict[str, Any]:
        """A few numbers for logs and the stage cache meta."""
        if not self.available:
            return {"available": False, "reason": self.reason}
        finite = [r.sqnr_db for r in self.rows if math.isfinite(r.sqnr_db)]
        worst = self.rows[0] if self.rows else None
        return {
            "available": True,
            "n_tensors": len(self.rows),
            "n_inputs": self.n_inputs,
            "worst_tensor": worst.tensor if worst else None,
            "worst_sqnr_db": _num(worst.sqnr_db) if worst else None,
            "median_sqnr_db": float(np.median(finite)) if finite else None,
            "n_sensitive": sum(v < SENSITIVE_DB for v in finite),
        }


# -- ONNX Runtime: float vs QDQ -----------------------------------------------------------------------------------
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


def _chunks(sizes: Sequence[int | None], max_tensors: int, max_bytes: int) -> list[tuple[int, int]]:
    """Consecutive ``[start, end)`` groups of tensors, each at most ``max_tensors`` long and at most ``max_bytes``
    in total unless a single tensor is larger (it then goes alone). An unknown size (None) counts as the largest
    known one."""
    known = [s for s in sizes if s is not None]
    largest = max(known, default=0)
    groups: list[tuple[int, int]] = []
    start, total = 0, 0
    for i, size in enumerate(sizes):
        b = largest if size is None else size
        if i > start and (i - start >= max(max_tensors, 1) or total + b > max_bytes):
            groups.append((start, i))
            start, total = i, 0
        total += b
    if start < len(sizes):
        groups.append((start, len(sizes)))
    return groups


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


# -- Hailo -----------------------------------------------------------------------------------------------------
def hailo_noise_report(har: str | Path) -> NoiseReport:
    """The DFC's own per-layer SNR for a quantized HAR, as the Hailo optimize stage recorded it.

    :meth:`HailoBackend.optimize <harness.backends.hailo.HailoBackend.optimize>` reads the runner's params
    statistics (``layer_noise_analysis/snr`` from an advanced analysis, else ``partial_snr`` from the simple one
    that ``optimize()`` runs; dfc_api.md 5.3) into ``dfc_layer_noise.json`` next to the HAR; this reads that file,
    so the harness process never loads the SDK. Rows are HN layers; ``node`` holds their ONNX ``original_names``.
    """
    path = Path(har).parent / "dfc_layer_noise.json"
    if not path.is_file():
        return NoiseReport("hailo", False, [], "layer noise analysis not available: the optimize stage wrote no "
                           "dfc_layer_noise.json (made by an older hefsweep; re-run without the cache)")  # fmt: skip
    doc = json.loads(path.read_text())
    if not doc.get("available"):
        return NoiseReport("hailo", False, [], f"layer noise analysis not available: {doc.get('reason', '?')}")
    rows = [
        Row(tensor=r["layer"], node=",".join(r.get("original_names", [])), op_type=r.get("type", ""),
            sqnr_db=float(r["sqnr_db"]), bits=None, index=int(r.get("index", -1)))  # fmt: skip
        for r in doc["rows"]
    ]
    rows.sort(key=lambda r: (r.sqnr_db, r.index))
    sources = sorted({r.get("source", "?") for r in doc["rows"]})
    definition = (f"the DFC's layer noise analysis ({'/'.join(sources)}: simple = every layer quantized, advanced = "
                  "one layer at a time), SNR at each HN layer's output [dB], worst output per layer")  # fmt: skip
    return NoiseReport("hailo", True, rows, "", 0, {}, definition)


# -- files -----------------------------------------------------------------------------------------------------
def write_noise(report: NoiseReport, out_dir: str | Path, title: str = "") -> list[Path]:
    """Write ``layer_noise.json`` (always), ``layer_noise.csv`` and ``layer_noise.png`` (when available).

    Returns:
        The files written.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    files = [out / "layer_noise.json"]
    files[0].write_text(json.dumps(report.to_dict(), indent=2))
    if not report.available:
        return files
    with (out / "layer_noise.csv").open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["tensor", "node", "op_type", "sqnr_db", "bits", "index"])
        for r in report.rows:
            w.writerow([r.tensor, r.node, r.op_type, f"{r.sqnr_db:.4f}", "" if r.bits is None else r.bits, r.index])
    files.append(out / "layer_noise.csv")
    png = _plot(report, out / "layer_noise.png", title)
    if png is not None:
        files.append(png)
    return files


def _plot(report: NoiseReport, path: Path, title: str) -> Path | None:
    """SQNR per tensor in graph order, colored by op type, with the 10 dB 'sensitive' line (matplotlib PNG)."""
    try:
        import matplotlib

        matplotlib.use("Agg", force=False)
        import matplotlib.pyplot as plt
    except Exception as exc:  # noqa: BLE001 - the plot is optional; the table is the record
        log.info("no layer-noise plot: matplotlib unavailable (%s)", exc)
        return None
    rows = sorted(report.rows, key=lambda r: r.index)
    finite = [r.sqnr_db for r in rows if math.isfinite(r.sqnr_db)]
    cap = (max(finite) + 10.0) if finite else 100.0
    ys = [min(r.sqnr_db, cap) if r.sqnr_db > -math.inf else 0.0 for r in rows]
    ops = sorted({r.op_type for r in rows})
    cmap = plt.get_cmap("tab20")
    colors = {op: cmap(i % 20) for i, op in enumerate(ops)}
    fig, ax = plt.subplots(figsize=(min(16.0, max(8.0, 0.12 * len(rows) + 3)), 4.5), dpi=110)
    ax.bar(range(len(rows)), ys, color=[colors[r.op_type] for r in rows], width=0.85)
    ax.axhline(SENSITIVE_DB, color="crimson", lw=1, ls="--", label=f"{SENSITIVE_DB:g} dB (sensitive below)")
    labeled: list[int] = []
    for i in sorted(range(len(rows)), key=lambda i: rows[i].sqnr_db):  # name the worst, a few, not overlapping
        if len(labeled) == 5:
            break
        if any(abs(i - j) < max(2, len(rows) // 40) for j in labeled):
            continue
        labeled.append(i)
        parts = rows[i].node.strip("/").split("/")  # /masker/TCN.10/shared_block/shared_block.2/X -> TCN.10/shared_block.2/X
        parts = [p for k, p in enumerate(parts) if k + 1 == len(parts) or not parts[k + 1].startswith(p + ".")]
        label = "/".join(parts[-3:]) or rows[i].tensor
        ax.annotate(label, (i, ys[i]), textcoords="offset points", xytext=(0, 3), ha="left", fontsize=6, rotation=60)
    handles = [plt.Rectangle((0, 0), 1, 1, color=colors[op]) for op in ops]
    ax.legend(
        [*handles, ax.lines[0]], [*ops, ax.lines[0].get_label()],
        fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0,
    )  # fmt: skip
    hailo = report.backend == "hailo"
    ax.set_xlabel("HN layer (DFC order)" if hailo else "tensor (float graph order)")
    ax.set_ylabel("SNR [dB]" if hailo else "SQNR [dB]")
    default = ("Per-layer SNR, the DFC's layer noise analysis" if hailo
               else f"Per-tensor SQNR, float vs quantized ({report.n_inputs} inputs)")  # fmt: skip
    ax.set_title(title or default, fontsize=9)
    ax.set_xlim(-1, len(rows))
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def read_noise(path: str | Path) -> NoiseReport:
    """Read a ``layer_noise.json`` (as written by :func:`write_noise`)."""
    return NoiseReport.from_dict(json.loads(Path(path).read_text()))


# -- the pipeline's stage ---------------------------------------------------------------------------------------
def noise_stage(
    backend: str, float_onnx: Path, optimized_path: Path, inputs: np.ndarray, workdir: Path, title: str = ""
) -> dict[str, Any]:
    """Measure a trial's layer noise into ``workdir`` (``layer_noise.json`` always; ``.csv``/``.png`` when available).

    Never raises for a measurement problem: a diagnostic must not fail a trial that passed. A failure is written
    as "not available" with its reason.

    Args:
        backend: ``ort`` or ``hailo``.
        float_onnx: The exported float model.
        optimized_path: The optimize stage's model (ORT: the QDQ ONNX; Hailo: the quantized HAR).
        inputs: ``[n,1,1,W]`` float32, a few evaluation mixtures.
        workdir: Where the files go.

    Returns:
        JSON-serialisable summary (the stage's cache meta).
    """
    try:
        if backend == "ort":
            report = noise_report(float_onnx, optimized_path, inputs)
        else:
            report = hailo_noise_report(optimized_path)
    except Exception as exc:  # noqa: BLE001 - see the docstring
        log.warning("layer noise measurement failed: %s: %s", type(exc).__name__, exc)
        report = NoiseReport(backend, False, [], f"measurement failed: {type(exc).__name__}: {str(exc)[:300]}")
    write_noise(report, workdir, title)
    return report.summary()


# -- a trial run's table (for `hefsweep diff`) ---------------------------------------------------------------------
_FLOAT_ART, _QDQ_ART, _NOISE_ART = "export/model.onnx", "compiled/model.qdq.onnx", "noise/layer_noise.json"


def _artifacts(client: Any, run_id: str, folder: str) -> set[str]:
    try:
        return {a.path for a in client.list_artifacts(run_id, folder)}
    except Exception:  # noqa: BLE001 - an unreadable folder is an absent one
        return set()


def _eval_inputs(client: Any, run: Any, tmp: Path, float_onnx: Path, n_inputs: int) -> np.ndarray:
    """The first ``n_inputs`` mixtures of the run's evaluation set (parent run's ``space`` -> ``data.evaluation``)."""
    import onnx

    from harness.audio import load_eval_set
    from harness.space import load_space
    from harness.tracking import run_space_file

    run_id = run.info.run_id
    space_file = run_space_file(client, run, "its evaluation set gives the inputs")
    space = load_space(space_file)
    try:
        width = int(run.data.params["width"])
    except (KeyError, ValueError):
        raise HarnessError(f"MLflow run {run_id}", f"width param {run.data.params.get('width')!r}", "an integer width") from None
    rate = None
    if "calibration/calibration_manifest.json" in _artifacts(client, run_id, "calibration"):
        manifest = client.download_artifacts(run_id, "calibration/calibration_manifest.json", str(tmp))
        rate = json.loads(Path(manifest).read_text()).get("sample_rate")
    if rate is None:
        from harness.model import load_checkpoint

        rate = load_checkpoint(space.checkpoint).config.sample_rate
    dims = [d.dim_value for d in onnx.load(str(float_onnx), load_external_data=False).graph.output[0].type.tensor_type.shape.dim]
    n_src = dims[1] if len(dims) == 4 and dims[1] > 0 else 1
    ev = load_eval_set(space.data.evaluation, sample_rate=int(rate), width=width, n_src=n_src, limit=n_inputs)
    return np.asarray(ev.mixtures[:n_inputs, None, None, :], dtype=np.float32)


def load_run_noise(client: Any, run_id: str, *, n_inputs: int = 3, log_computed: bool = True) -> tuple[NoiseReport, str]:
    """A trial run's layer-noise table: its logged ``noise/layer_noise.json``, else computed from its logged models.

    Computing uses the run's ``export/model.onnx`` and ``compiled/model.qdq.onnx`` and the first ``n_inputs``
    mixtures of its evaluation set, and (``log_computed``) logs the result to the run under ``noise/``.

    Returns:
        (report, ``"logged"`` or ``"computed"``).

    Raises:
        HarnessError: unknown run, not a trial run, no table and no models to compute one from (e.g. a failed
            trial), unreadable space or evaluation set.
    """
    import tempfile

    from harness.tracking import trial_run

    run = trial_run(client, run_id, client.tracking_uri)
    with tempfile.TemporaryDirectory(prefix="hefsweep-noise-") as tmp_name:
        tmp = Path(tmp_name)
        logged: NoiseReport | None = None
        if _NOISE_ART in _artifacts(client, run_id, "noise"):
            try:
                logged = read_noise(client.download_artifacts(run_id, _NOISE_ART, str(tmp)))
            except ValueError as exc:
                raise HarnessError(f"{_NOISE_ART} of run {run_id}", f"unreadable ({exc})", "a table written by hefsweep") from None
            if logged.available:
                return logged, "logged"
        have = _artifacts(client, run_id, "export") | _artifacts(client, run_id, "compiled")
        missing = [a for a in (_FLOAT_ART, _QDQ_ART) if a not in have]
        if missing:
            status = run.data.tags.get("hefsweep.status", run.info.status)
            why = logged.reason if logged is not None else f"no {_NOISE_ART}"
            raise HarnessError(
                f"MLflow run {run_id}",
                f"{why}; and no {' + '.join(missing)} to compute one from (status {status}, backend "
                f"{run.data.params.get('backend', '?')})",
                f"a passing ORT trial with {_FLOAT_ART} and {_QDQ_ART} logged",
            )
        float_onnx = Path(client.download_artifacts(run_id, _FLOAT_ART, str(tmp / "f")))
        qdq_onnx = Path(client.download_artifacts(run_id, _QDQ_ART, str(tmp / "q")))
        inputs = _eval_inputs(client, run, tmp, float_onnx, n_inputs)
        report = noise_report(float_onnx, qdq_onnx, inputs)
        if log_computed:
            out = tmp / "noise"
            write_noise(report, out, f"Per-tensor SQNR, run {run_id[:12]} ({report.n_inputs} inputs)")
            client.log_artifacts(run_id, str(out), "noise")
        return report, "computed"


# -- two tables --------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class DiffRow:
    """One tensor in both tables: ``delta_db = b - a`` (positive: less noise in B)."""

    tensor: str
    op_type: str
    a_db: float
    b_db: float

    @property
    def delta_db(self) -> float:
        if self.a_db == self.b_db:  # includes inf == inf
            return 0.0
        return self.b_db - self.a_db


@dataclass
class NoiseDiff:
    """Two layer-noise tables joined on tensor name."""

    rows: list[DiffRow]
    only_a: list[str]
    only_b: list[str]

    def top(self, n: int) -> list[DiffRow]:
        """The ``n`` rows whose SQNR changed most (by absolute delta; an inf delta first)."""
        def key(r: DiffRow) -> tuple[float, str]:
            d = r.delta_db
            return (-(abs(d) if not math.isnan(d) else -1.0), r.tensor)

        return sorted(self.rows, key=key)[:n]

    def summary(self) -> dict[str, Any]:
        finite = [r.delta_db for r in self.rows if math.isfinite(r.delta_db)]
        return {
            "n_common": len(self.rows),
            "only_a": len(self.only_a),
            "only_b": len(self.only_b),
            "median_delta_db": float(np.median(finite)) if finite else None,
            "n_better_in_b": sum(r.delta_db > 0 for r in self.rows),
            "n_worse_in_b": sum(r.delta_db < 0 for r in self.rows),
        }


def diff_noise(a: NoiseReport, b: NoiseReport) -> NoiseDiff:
    """Join two tables on tensor name (tensors differ when the trials' substitutions differ)."""
    ra = {r.tensor: r for r in a.rows}
    rb = {r.tensor: r for r in b.rows}
    common = [t for t in ra if t in rb]
    rows = [DiffRow(t, ra[t].op_type, ra[t].sqnr_db, rb[t].sqnr_db) for t in common]
    return NoiseDiff(rows, sorted(set(ra) - set(rb)), sorted(set(rb) - set(ra)))
