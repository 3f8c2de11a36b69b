"""The pipeline's noise stage (after emulate): :func:`noise_stage` measures a trial's table into the stage's folder."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from harness.layer_noise._hailo import hailo_noise_report
from harness.layer_noise._ort import noise_report
from harness.layer_noise._report import NoiseReport, write_noise

__all__ = ["NOISE_VERSION", "noise_stage"]

log = logging.getLogger("harness.layer_noise")

#: Part of the noise stage's cache key: bump when the numbers or the files change.
NOISE_VERSION = 2


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
