"""Hailo (``hailo`` backend): the DFC's own per-layer SNR, read from the ``dfc_layer_noise.json`` of the optimize stage."""

from __future__ import annotations

import json
from pathlib import Path

from harness.layer_noise._report import NoiseReport, Row

__all__ = ["hailo_noise_report"]


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
