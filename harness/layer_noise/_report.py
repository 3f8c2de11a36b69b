"""The layer-noise report: :class:`Row`, :class:`NoiseReport` and their files (``layer_noise.json``, ``.csv``, ``.png``).

:func:`write_noise` writes a report (the table and plot only when it is available), :func:`read_noise` reads the
JSON back. ``FILES`` names what a noise folder holds; ``SENSITIVE_DB`` is the "sensitive layer" line of the plot.
"""

from __future__ import annotations

import csv
import json
import logging
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["FILES", "SENSITIVE_DB", "NoiseReport", "Row", "read_noise", "write_noise"]

log = logging.getLogger("harness.layer_noise")

#: The files a noise folder holds (the plot only where matplotlib is importable, the table only when available).
FILES = ("layer_noise.json", "layer_noise.csv", "layer_noise.png")
#: Layers below this SQNR are "sensitive" (Hailo staff's rule of thumb, dfc_api.md 5.3); marked in the plot.
SENSITIVE_DB = 10.0
_FORMAT = "hefsweep.layer_noise/1"
_ORT_DEFINITION = (
    "sqnr_db = 10*log10(sum(ref^2)/sum((ref-q)^2)) over all inputs; ref: float ONNX tensor, q: the QDQ model's "
    "dequantized tensor of the same name; inf = identical"
)


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
