"""A trial run's table for ``hefsweep diff``: :func:`load_run_noise` reads its logged ``noise/layer_noise.json``, or
computes one from its logged ONNX models and evaluation set (and logs it to the run)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from harness.errors import HarnessError
from harness.layer_noise._ort import noise_report
from harness.layer_noise._report import NoiseReport, read_noise, write_noise

__all__ = ["load_run_noise"]

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
