"""What a trial is scored with: the original float model's outputs (the objective's reference), the SI-SNR
metrics and per-clip rows (:func:`_metrics`; ``hefsweep promote`` recomputes them with the same function), and
the WAV listening pairs written beside them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np


def original_outputs(model: Any, mixtures: np.ndarray) -> np.ndarray:
    """The original float model's outputs on ``mixtures`` (``[n, W]``), float32 ``[n, n_src, 1, W]``: the model as
    loaded from the checkpoint, in torch (the objective's reference; ``hefsweep promote`` recomputes it the same way)."""
    from harness.model import separate

    return separate(model, mixtures)


def _metrics(
    quant: np.ndarray, ref: np.ndarray, orig: np.ndarray, ev: Any
) -> tuple[dict[str, float], list[dict[str, Any]]]:
    """The trial's SI-SNR metrics and per-clip rows (``metrics/per_clip.json``).

    Three outputs per clip, ``[n, n_src, 1, W]`` each: ``quant`` (the quantized emulation), ``ref`` (the substituted
    float export) and ``orig`` (the original float model). Every comparison is per clip with the true length, a
    relative eps and the best source permutation (:func:`harness.metrics.score_clip`), then averaged over clips:

    - ``si_snr_db`` / ``si_snr_worst_db``: quantized vs original float (the objective: mean / worst clip);
    - ``substitution_si_snr_db`` / ``…_worst_db``: substituted float vs original float (the substitutions' loss);
    - ``quant_si_snr_db`` / ``…_worst_db``: quantized vs substituted float (the quantization's loss);
    - with clean sources: ``orig_float_si_snri_db``, ``float_si_snri_db`` (substituted float) and
      ``quant_si_snri_db``, the SI-SNR improvement over the mixture of each model.
    """
    from harness.metrics import score_clip, si_snri_clip

    lengths = [int(n) for n in ev.lengths]
    rows: list[dict[str, Any]] = []
    for i, name in enumerate(ev.names):
        q, r, o, n = quant[i, :, 0, :], ref[i, :, 0, :], orig[i, :, 0, :], lengths[i]
        e2e, sub, qnt = score_clip(q, o, n), score_clip(r, o, n), score_clip(q, r, n)
        row: dict[str, Any] = {
            "clip": name,
            "length": n,
            "si_snr_db": e2e.si_snr_db,
            "per_source_db": list(e2e.per_source_db),
            "perm": list(e2e.perm),
            "substitution_si_snr_db": sub.si_snr_db,
            "substitution_per_source_db": list(sub.per_source_db),
            "substitution_perm": list(sub.perm),
            "quant_si_snr_db": qnt.si_snr_db,
            "quant_per_source_db": list(qnt.per_source_db),
            "quant_perm": list(qnt.perm),
        }
        if ev.sources is not None:
            src, mix = ev.sources[i], ev.mixtures[i]
            row["orig_float_si_snri_db"] = si_snri_clip(o, src, mix, n)
            row["float_si_snri_db"] = si_snri_clip(r, src, mix, n)
            row["quant_si_snri_db"] = si_snri_clip(q, src, mix, n)
        rows.append(row)
    metrics: dict[str, float] = {}
    for key in ("si_snr", "substitution_si_snr", "quant_si_snr"):
        values = np.array([row[f"{key}_db"] for row in rows])
        metrics[f"{key}_db"] = float(values.mean())
        metrics[f"{key}_worst_db"] = float(values.min())
    if ev.sources is not None:
        for key in ("orig_float_si_snri_db", "float_si_snri_db", "quant_si_snri_db"):
            metrics[key] = float(np.mean([row[key] for row in rows]))
    return metrics, rows


_LISTEN_CLIPS = 3


def _write_listening_pairs(folder: Path, ev: Any, ref: np.ndarray, quant: np.ndarray, rate: int) -> None:
    """WAV files to A/B by ear: for the first clips, the mixture and each source from the float and the quantized
    model, scaled by one gain per clip (so float and quantized compare at the same level), 16-bit PCM."""
    import soundfile as sf

    folder.mkdir(parents=True, exist_ok=True)
    for i in range(min(_LISTEN_CLIPS, len(quant))):
        peak = max(float(np.max(np.abs(a))) for a in (ev.mixtures[i], ref[i], quant[i]))
        gain = 0.9 / peak if peak > 0 else 1.0
        name = ev.names[i].rsplit(".", 1)[0]
        sf.write(folder / f"{i}_{name}_mixture.wav", ev.mixtures[i] * gain, rate, subtype="PCM_16")
        for k in range(quant.shape[1]):
            sf.write(folder / f"{i}_{name}_s{k + 1}_float.wav", ref[i, k, 0] * gain, rate, subtype="PCM_16")
            sf.write(folder / f"{i}_{name}_s{k + 1}_quantized.wav", quant[i, k, 0] * gain, rate, subtype="PCM_16")
