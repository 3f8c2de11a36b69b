"""Glue between a trial and time tiling (:mod:`harness.tiling`): the tiling part of a stage key, the export's
probe at the tile width, the layer-noise probe of a tiled trial and the float tiling gap's metrics. The trial's
plan itself is made by ``Pipeline._tile_plan`` (:mod:`harness.pipeline._bodies`)."""

from __future__ import annotations

from typing import Any

import numpy as np


class _Cropped:
    """The evaluation mixtures cut to the tile width: the fidelity probe of the export at the tile width."""

    def __init__(self, mixtures: np.ndarray) -> None:
        self.mixtures = mixtures


def _tiling_key(plan: Any) -> dict[str, Any]:
    """A stage key's tiling part: empty when untiled (untiled keys stay as they were)."""
    return {} if plan is None else {"tiling": plan.key_params()}


def _noise_inputs(ev: Any, n: int, plan: Any) -> np.ndarray:
    """The layer-noise probe: the first ``n`` clips, or (tiled) the first ``n`` tiles of the first clips."""
    if plan is None:
        return ev.mixtures[:n, None, None, :]
    return plan.split(ev.mixtures[:n])[:n, None, None, :]


def _tiling_metrics(float_tiled: np.ndarray, ref: np.ndarray, ev: Any, plan: Any) -> dict[str, float]:
    """``tiles_per_clip`` and ``tiling_float_si_snr_db`` / ``…_worst_db``: the float model run tile by tile and
    stitched vs the same model untiled (per clip, true length; 80 dB = identical, as for cLN with the context
    covering the receptive field; for gLN the measured gap)."""
    from harness.metrics import score_clip

    values = [score_clip(float_tiled[i, :, 0], ref[i, :, 0], int(n)).si_snr_db for i, n in enumerate(ev.lengths)]
    return {"tiles_per_clip": float(plan.n_tiles), "tiling_float_si_snr_db": float(np.mean(values)),
            "tiling_float_si_snr_worst_db": float(np.min(values))}  # fmt: skip
