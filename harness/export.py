"""PyTorch -> ONNX export in the 4-D horizontal form, with a fidelity gate.

The TorchScript exporter is used (``dynamo=False``, opset 17, one file): the dynamo exporter's optimizer
silently deletes ``+ 1e-8`` eps terms (FINDINGS.md, warning 1), which turns a channel-wise norm over digital
silence into 0/0. Every export is checked against PyTorch in ONNX Runtime: SI-SNR of the ONNX float output
against the torch output must reach the gate (60 dB by default) -- or, for models whose outputs are so small that
float32 rounding alone limits SI-SNR, the outputs must agree within float32 export tolerance -- else
:class:`FidelityGateError`. A user's ONNX model (:mod:`harness.onnx_model`) is written by :func:`export_user_onnx`
(converted to the 4-D form, exact rewrites applied) and gated by :func:`check_fidelity_onnx` against the user's
ONNX itself in ONNX Runtime.
"""

from __future__ import annotations

import io
import warnings
from collections.abc import Callable
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from harness.metrics import si_snr

__all__ = ["OPSET", "ExportReport", "FidelityGateError", "check_fidelity", "check_fidelity_onnx", "export_onnx", "export_user_onnx"]

OPSET = 17
_ATOL, _RTOL = 1e-5, 1e-3  # float32 export tolerance


class FidelityGateError(RuntimeError):
    """The exported ONNX model does not reproduce the PyTorch model."""


@dataclass(frozen=True)
class ExportReport:
    """What an export produced."""

    path: Path
    width: int
    opset: int
    op_counts: dict[str, int]
    log: str


def export_onnx(model: Any, width: int, path: Path) -> ExportReport:
    """Export ``model`` (input ``[1,1,1,W]``) to ``path`` with the TorchScript exporter.

    Args:
        model: A ``ConvTasNet4D`` (or any module with the same input/output contract), in eval mode.
        width: Input length W in samples.
        path: Output ``.onnx`` file (a single file, no external data).

    Returns:
        The :class:`ExportReport` (op counts, captured exporter log).
    """
    import collections

    import onnx
    import torch

    model = model.eval()
    dummy = torch.zeros(1, 1, 1, width, dtype=torch.float32)
    buf = io.StringIO()
    with torch.no_grad(), warnings.catch_warnings(record=True) as caught, redirect_stdout(buf), redirect_stderr(buf):
        warnings.simplefilter("always")
        torch.onnx.export(
            model,
            (dummy,),
            str(path),
            dynamo=False,
            opset_version=OPSET,
            input_names=["input"],
            output_names=["output"],
            do_constant_folding=True,
        )
    log = buf.getvalue() + "".join(f"{w.category.__name__}: {w.message}\n" for w in caught)
    proto = onnx.load(str(path))
    ops = collections.Counter(n.op_type for n in proto.graph.node)
    return ExportReport(path=path, width=width, opset=OPSET, op_counts=dict(sorted(ops.items())), log=log)


def check_fidelity(model: Any, onnx_path: Path, probe: np.ndarray, gate_db: float) -> dict[str, float]:
    """Compare PyTorch and ONNX Runtime float outputs on ``probe`` ``[n,1,1,W]``.

    Returns:
        ``{"fidelity_si_snr_db": worst per-source SI-SNR, "fidelity_max_abs_err": ...}``.

    Raises:
        FidelityGateError: the worst SI-SNR is below ``gate_db`` (or not finite) and the outputs also differ
            beyond float32 export tolerance (``atol=1e-5, rtol=1e-3``).
    """
    import torch

    from harness.backends._ort import run_onnx

    with torch.no_grad():
        ref = np.concatenate([model(torch.from_numpy(probe[i : i + 1])).numpy() for i in range(len(probe))])
    return _gate(run_onnx(onnx_path, probe), ref, gate_db, "torch")


def check_fidelity_onnx(reference: Callable[[np.ndarray], np.ndarray], onnx_path: Path, probe: np.ndarray,
                        gate_db: float) -> dict[str, float]:  # fmt: skip
    """:func:`check_fidelity` for a user's ONNX model: the export against ``reference`` (the user's ONNX in ONNX
    Runtime, :meth:`harness.onnx_model.OnnxModel.run_original`, called with the mixtures ``[n, W]``).

    Raises:
        FidelityGateError: as :func:`check_fidelity`, the outputs compared with the original ONNX's.
    """
    from harness.backends._ort import run_onnx

    return _gate(run_onnx(onnx_path, probe), reference(probe[:, 0, 0, :]), gate_db, "the original ONNX")


def _gate(got: np.ndarray, ref: np.ndarray, gate_db: float, what: str) -> dict[str, float]:
    if got.shape != ref.shape:
        raise FidelityGateError(f"ONNX output shape {got.shape} differs from {what} {ref.shape}")
    worst = float(np.min(si_snr(got[:, :, 0, :], ref[:, :, 0, :])))
    err = float(np.max(np.abs(got - ref)))
    # A model whose outputs are tiny (e.g. a trained model after PReLU -> ReLU) cannot reach 60 dB on float32
    # rounding alone; outputs equal within float32 export tolerance still pass.
    close = bool(np.all(np.isfinite(got))) and bool(np.allclose(got, ref, rtol=_RTOL, atol=_ATOL))
    if not close and (not np.isfinite(worst) or worst < gate_db):
        raise FidelityGateError(
            f"SI-SNR {worst:.1f} dB of ONNX vs {what} is below the {gate_db:g} dB gate (max abs error {err:.3g})"
        )
    return {"fidelity_si_snr_db": worst, "fidelity_max_abs_err": err, "fidelity_allclose": float(close)}


def export_user_onnx(model: Any, width: int, choices: dict[str, Any], path: Path) -> tuple[ExportReport, dict[str, int]]:
    """Write a user's ONNX model (:class:`harness.onnx_model.OnnxModel`) in the 4-D form at ``width`` with the exact
    rewrites ``choices`` selects to ``path``; returns the report (the conversion's notes as its log) and the
    rewrites' fire counts."""
    import collections

    import onnx

    prepared = model.prepare(width, choices)
    onnx.save(prepared.proto, str(path))
    ops = collections.Counter(n.op_type for n in prepared.proto.graph.node)
    version = next((o.version for o in prepared.proto.opset_import if o.domain in ("", "ai.onnx")), OPSET)
    fired = "".join(f"rewrite {k}: fired {v}x\n" for k, v in prepared.fired.items())
    log = f"ONNX model {model.path}\n" + "".join(f"{n}\n" for n in prepared.notes) + fired
    return ExportReport(path=path, width=width, opset=int(version), op_counts=dict(sorted(ops.items())), log=log), prepared.fired
