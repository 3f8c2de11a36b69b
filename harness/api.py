"""The Python API: what the CLI does, callable from a script or a notebook.

    import hefsweep

    result = hefsweep.sweep("search_spaces/demo.yaml", trials=4, root="mlruns")
    print(result.best_value, result.best_run_id, result.runs_url)
    exported = hefsweep.export("assets/demo_convtasnet.pt", "model.onnx", width=16000, prelu="relu")
    report = hefsweep.report(result.study, root="mlruns")

Each call returns a small frozen result (names, numbers, paths, MLflow run ids), raises
:class:`~harness.errors.HarnessError` on bad input (the CLI prints those as one line and exits 1), and writes the
same stores, runs and artifacts as the command of the same name. Stores default to files under ``root``
(``mlruns/``); pass ``storage=`` (an Optuna URL, e.g. ``postgresql://...``) and ``tracking_uri=`` (an MLflow
server) to share a study across machines.
"""

from __future__ import annotations

import io
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.errors import HarnessError

__all__ = ["ExportResult", "SweepResult", "export", "report", "sweep"]

PathLike = str | os.PathLike[str]


@dataclass(frozen=True)
class SweepResult:
    """What :func:`sweep` did.

    Attributes:
        study: The study (and MLflow experiment) name.
        n_trials, n_ok, n_failed: Trials run by this call and how they ended.
        best_trial, best_value: The best trial of this call and its objective (``objective``; None when none passed).
        best_run_id: Its MLflow run id.
        run_ids: The MLflow run ids of this call's trials (trial number -> run id).
        signatures: Failure signatures of this call's failed trials, with counts.
        experiment_id, parent_run_id: The MLflow experiment and the sweep's parent run.
        storage, tracking_uri: The stores the call used.
        runs_url: The MLflow UI's runs table of the experiment (at http://127.0.0.1:5000, what ``hefsweep ui`` serves).
        seconds: Wall time of the call.
    """

    study: str
    n_trials: int
    n_ok: int
    n_failed: int
    best_trial: int | None
    best_value: float | None
    objective: str
    best_run_id: str | None
    run_ids: dict[int, str]
    signatures: dict[str, int]
    experiment_id: str
    parent_run_id: str
    storage: str
    tracking_uri: str
    runs_url: str
    seconds: float


@dataclass(frozen=True)
class ExportResult:
    """What :func:`export` wrote: the ONNX file, the substitutions that fired and the fidelity gate's figures.

    ``sample_rate`` is the checkpoint's (None when it records none: the fidelity probe was then 8 kHz speech)."""

    path: Path
    fired: tuple[str, ...]
    fidelity_si_snr_db: float
    fidelity_max_abs_err: float
    opset: int
    op_counts: dict[str, int] = field(default_factory=dict)
    sample_rate: int | None = None


def _space(space: Any, backend: str | None) -> Any:
    from harness.space import SearchSpace, load_space

    loaded = space if isinstance(space, SearchSpace) else load_space(space)
    return loaded.model_copy(update={"backend": backend}) if backend else loaded


def _run_ids(tracking_uri: str, experiment_id: str, parent_run_id: str) -> dict[int, str]:
    """trial number -> MLflow run id of the parent run's child runs (one search)."""
    from mlflow.tracking import MlflowClient

    from harness.tracking import quiet_mlflow

    with quiet_mlflow():
        runs = MlflowClient(tracking_uri).search_runs(
            [experiment_id], f"tags.mlflow.parentRunId = '{parent_run_id}'", max_results=10000
        )
    out: dict[int, str] = {}
    for run in runs:
        number = run.data.tags.get("hefsweep.trial")
        if number is not None and number.isdigit():
            out[int(number)] = run.info.run_id
    return dict(sorted(out.items()))


def sweep(
    space: PathLike | Any,
    *,
    trials: int | None = None,
    timeout: float | None = None,
    study: str | None = None,
    storage: str | None = None,
    tracking_uri: str | None = None,
    root: PathLike = "mlruns",
    backend: str | None = None,
    progress: bool = True,
) -> SweepResult:
    """Run (or resume) a sweep, as ``hefsweep sweep`` does.

    Args:
        space: A search-space YAML file (see ``search_spaces/``) or a loaded :class:`~harness.space.SearchSpace`.
        trials: Trials to run now (default: the space's; 0 creates the study only).
        timeout: Time budget in seconds (default: the space's).
        study: Study / experiment name (default: the space's).
        storage: Optuna storage URL (default: ``sqlite:///<root>/optuna.db``).
        tracking_uri: MLflow tracking URI (default: ``sqlite:///<root>/mlflow.db``).
        root: Folder of the default stores, artifacts and the stage cache.
        backend: ``ort`` or ``hailo`` instead of the space's.
        progress: Print live progress (trial n/N, stage) to stdout; False keeps the call silent.
    """
    from harness.sweep import default_storage, run_sweep
    from harness.tracking import default_tracking_uri, runs_url

    if trials is not None and trials < 0:
        raise HarnessError("trials", f"{trials}", "a number of trials >= 0 (0 creates the study only)")
    root = Path(root)
    loaded = _space(space, backend)
    storage = storage or default_storage(root)
    tracking_uri = tracking_uri or default_tracking_uri(root)
    s = run_sweep(
        loaded, trials=trials, timeout=timeout, study_name=study, storage=storage, tracking_uri=tracking_uri,
        root=root, stream=sys.stdout if progress else io.StringIO(),
    )  # fmt: skip
    return SweepResult(
        study=s.study, n_trials=s.n_trials, n_ok=s.n_ok, n_failed=s.n_failed, best_trial=s.best_trial,
        best_value=s.best_value, objective=getattr(s, "objective", "si_snr_db"), best_run_id=s.best_run_id,
        run_ids=_run_ids(tracking_uri, s.experiment_id, s.parent_run_id) if s.parent_run_id else {},
        signatures=dict(s.signatures), experiment_id=s.experiment_id, parent_run_id=s.parent_run_id,
        storage=storage, tracking_uri=tracking_uri, runs_url=runs_url("http://127.0.0.1:5000", s.experiment_id),
        seconds=s.seconds,
    )  # fmt: skip


def export(
    checkpoint: PathLike,
    out: PathLike,
    *,
    width: int = 16000,
    prelu: str = "keep",
    norm: str | None = None,
    clamp: float | None = None,
    gln_stats: str = "joint",
    decoder: str = "grouped",
    mask_mul: str = "repeat",
    gate_db: float = 60.0,
) -> ExportResult:
    """Export one variant of a checkpoint to ONNX (``[1,1,1,W]`` in) and check it against torch, as
    ``hefsweep export`` does.

    Raises:
        HarnessError: a bad checkpoint, a width below 256 samples, or an export that fails the fidelity gate.
    """
    import numpy as np

    from harness.audio import speech_like
    from harness.export import FidelityGateError, check_fidelity, export_onnx
    from harness.model import load_checkpoint
    from harness.substitutions import SubstitutionSpec, apply_substitutions

    if width < 256:
        raise HarnessError("width", f"{width}", "an input length of at least 256 samples")
    out = Path(out)
    model = load_checkpoint(checkpoint)
    spec = SubstitutionSpec(
        prelu=prelu, norm=norm, clamp=clamp, gln_stats=gln_stats, decoder=decoder, mask_mul=mask_mul,  # type: ignore[arg-type]
    )  # fmt: skip
    sub, fired = apply_substitutions(model, spec)
    out.parent.mkdir(parents=True, exist_ok=True)
    written = export_onnx(sub, width, out)
    # the probe's rate only shapes its spectrum: a checkpoint without one (asteroid allows None) is probed as 8 kHz
    rate = model.config.sample_rate or 8000
    probe = speech_like(np.random.default_rng(0), width, rate)[None, None, None, :].astype(np.float32)
    try:
        fid = check_fidelity(sub, out, probe, gate_db)
    except FidelityGateError as exc:
        raise HarnessError(out, str(exc), f"SI-SNR >= {gate_db:g} dB against torch") from None
    return ExportResult(
        path=out, fired=tuple(fired), fidelity_si_snr_db=float(fid["fidelity_si_snr_db"]),
        fidelity_max_abs_err=float(fid["fidelity_max_abs_err"]), opset=int(written.opset),
        op_counts=dict(written.op_counts), sample_rate=model.config.sample_rate,
    )  # fmt: skip


def report(
    study: str,
    *,
    storage: str | None = None,
    tracking_uri: str | None = None,
    root: PathLike = "mlruns",
    out_dir: PathLike | None = None,
    top: int = 10,
    boundary: Sequence[str] | None = None,
    frontier: Sequence[str] | None = None,
    ui_url: str = "http://127.0.0.1:5000",
    log: bool = True,
) -> Any:
    """Write a study's HTML report (``report.html``: history, feasibility, signatures, the loss decomposition, the
    capacity frontier of a ``mode: frontier`` study ...) and log it to the study's parent run (unless ``log`` is
    False), as ``hefsweep report`` does. ``boundary``: the two parameters of the feasibility plot; ``frontier``: the
    two capacity axes of the frontier plot; ``ui_url``: the MLflow UI the page links to. Returns
    :class:`harness.report.ReportResult` (``path`` is the HTML file)."""
    from harness.report import build_report, default_report_dir
    from harness.sweep import default_storage
    from harness.tracking import default_tracking_uri

    if top < 1:
        raise HarnessError("top", str(top), "at least 1")
    if boundary is not None and len(boundary) != 2:
        raise HarnessError("boundary", ",".join(boundary), "two parameter names (X, Y)")
    root = Path(root)
    return build_report(
        study,
        storage=storage or default_storage(root),
        tracking_uri=tracking_uri or default_tracking_uri(root),
        out_dir=Path(out_dir) if out_dir is not None else default_report_dir(root, study),
        ui_url=ui_url,
        top=top,
        boundary=list(boundary) if boundary is not None else None,
        log_to_parent=log,
        frontier_axes=list(frontier) if frontier is not None else None,
    )
