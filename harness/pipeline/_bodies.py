"""The stage bodies: what each stage does in the cache's temp folder (export, calibrate, original, reference,
emulate, noise), the optional ``recover`` stage and the trial's tiling plan. Mixed into
:class:`~harness.pipeline.Pipeline`, which orders them (:meth:`~harness.pipeline.Pipeline._run`)."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from harness.backends import Optimized
from harness.cache import StageEntry, stage_key
from harness.failures import classify
from harness.isolation import IsolatedFailure
from harness.pipeline._alignment import apply_alignment, output_alignment
from harness.pipeline._keys import _spec
from harness.pipeline._metrics import _metrics, _write_listening_pairs, original_outputs
from harness.pipeline._trial import _CLIPS_PER_CALL, StagePruned, TrialConfig, _NoiseUnavailable, _StageFailed

if TYPE_CHECKING:
    from harness.space import SearchSpace


class _StageBodies:
    """The stage bodies of :class:`~harness.pipeline.Pipeline` (its other parts provide ``_stage``, ``_isolated``
    and the shared inputs)."""

    space: SearchSpace
    progress: Callable[[str], None]
    _scratch: list[Path]
    model: Any
    sample_rate: int

    if TYPE_CHECKING:  # provided by _Inputs and _StageRunner

        def trial_model(self, cfg: TrialConfig) -> tuple[Any, dict[str, Any] | None]: ...

        def _calibration_files(self) -> tuple[list[Path], list[list[str]]]: ...

        def _stage(
            self, name: str, key: str, fn: Callable[[Path], dict[str, Any]], stages: dict[str, Any]
        ) -> StageEntry: ...

        def _isolated(self, stage: str, target: str, workdir: Path, *args: Any) -> Any: ...

    def _noise(self, float_onnx: Path, optimized: Optimized, inputs: np.ndarray, workdir: Path) -> dict[str, Any]:
        """The layer-noise stage, isolated like emulation; a failure there is written as "not available" (a
        diagnostic never fails a trial that passed). An error the measurement raised is its outcome (published); a
        hang or a dead worker (``Timeout``/``Crash``) is this trial's only: written outside the cache entry and
        raised as :class:`_NoiseUnavailable`, so the next trial of the key measures again."""
        import tempfile

        from harness.layer_noise import NoiseReport, write_noise

        try:
            return dict(self._isolated("noise", "noise", workdir, float_onnx, optimized.path, inputs, workdir))
        except IsolatedFailure as exc:
            report = NoiseReport(self.space.backend, False, [], f"measurement failed: {str(exc)[:300]}")
            if exc.exc_class not in ("Timeout", "Crash"):
                write_noise(report, workdir)
                return report.summary()
            folder = Path(tempfile.mkdtemp(prefix="hefsweep-noise-"))
            self._scratch.append(folder)
            write_noise(report, folder)
            raise _NoiseUnavailable(report.summary(), folder) from None


    def _recover(
        self, cfg: TrialConfig, ckpt_sha: str, ev: Any, stages: dict[str, Any], artifacts: list[tuple[Path, str]],
        info: dict[str, Any],
    ) -> StageEntry | None:
        """The ``recover`` stage (:mod:`harness.recover`) when ``cfg.recover_steps`` > 0 and a lossy substitution
        fires; None otherwise (``info["recover"]`` says ``skipped (exact)`` for a spec with only exact rewrites)."""
        if cfg.recover_steps <= 0:
            return None
        import torch

        from harness.recover import RECOVER_VERSION, RecoverSettings, needs_recovery, run_recover_stage

        spec = _spec(cfg)
        student, resized = self.trial_model(cfg)
        if resized is None and not needs_recovery(self.model, spec):
            info["recover"] = "skipped (exact)"
            return None
        settings = RecoverSettings(steps=cfg.recover_steps, seconds=self.space.recover_seconds)
        if resized is not None:  # a resized student (mode: frontier): its feature maps are not the teacher's shapes,
            settings = dataclasses.replace(settings, feature_weight=0.0, forced_fraction=0.0)  # so outputs only
        lossy = spec.without_exact()
        files, hashed = self._calibration_files()
        params = {
            "checkpoint": ckpt_sha,
            "substitutions": {"prelu": lossy.prelu, "norm": lossy.norm, "clamp": lossy.clamp},
            "settings": settings.key_params(),
            "width": cfg.width,
            "files": hashed,
            "sample_rate": self.sample_rate,
            "eval": ev.key,
            "torch": torch.__version__,
        }
        if resized is not None:  # the student is the resized model (only then in the key: other keys stay)
            from harness.model import RESIZE_VERSION

            params["capacity"] = {**resized["changed"], "resize_version": RESIZE_VERSION}
        entry = self._stage(
            "recover",
            stage_key("recover", RECOVER_VERSION, params),
            lambda d: run_recover_stage(
                self.model, spec, files, self.sample_rate, cfg.width, ev.mixtures, settings, d, self.progress,
                student=student,
            ),
            stages,
        )
        info["recover"] = {k: entry.meta[k] for k in ("fired", "steps_done", "stopped_early") if k in entry.meta}
        info["recover_metrics"] = dict(entry.meta["metrics"])
        files_out = (entry.path / n for n in ("recover.log", "loss.json", "loss.png"))
        artifacts += [(p, "recover") for p in files_out if p.is_file()]
        return entry


    def _export(self, cfg: TrialConfig, ev: Any, d: Path, recovered: Path | None = None) -> dict[str, Any]:
        from harness.export import check_fidelity, export_onnx
        from harness.substitutions import apply_substitutions

        if self.space.model is not None:
            return self._export_onnx_model(cfg, ev, d)
        spec = _spec(cfg)
        base = self.trial_model(cfg)[0]  # the checkpoint's model, or the resized one (mode: frontier)
        if recovered is None:
            model, fired = apply_substitutions(base, spec)
        else:  # the lossy part with the recover stage's weights, then the exact rewrites
            from harness.recover import recovered_model

            model, fired = recovered_model(base, spec, recovered)
        report = export_onnx(model, cfg.width, d / "model.onnx")
        (d / "export.log").write_text(report.log or "(exporter printed nothing)\n")
        probe = ev.mixtures[:2, None, None, :].astype(np.float32)
        # The gate checks the ONNX against the model without the exact rewrites (the unmodified model when every
        # substitution is exact), so it also proves the rewrites exact, not just the exporter faithful.
        inexact = spec.without_exact()
        if recovered is not None:  # the recovered model without the exact rewrites
            from harness.recover import recovered_model

            reference = model if inexact == spec else recovered_model(base, inexact, recovered)[0]
        else:
            reference = model if inexact == spec else apply_substitutions(base, inexact)[0]
        fidelity = check_fidelity(reference, d / "model.onnx", probe, self.space.fidelity_gate_db)
        fidelity["fidelity_vs_original"] = float(inexact == type(spec)() and base is self.model)
        return {"fired": list(fired), "op_counts": report.op_counts, "fidelity": fidelity}

    def _export_onnx_model(self, cfg: TrialConfig, ev: Any, d: Path) -> dict[str, Any]:
        """The export of a user's ONNX model: 4-D form and exact rewrites (harness.onnx_model), gated against the
        user's ONNX itself in ONNX Runtime (so the gate proves the conversion and the rewrites exact)."""
        from harness.export import check_fidelity_onnx, export_user_onnx

        choices = {"prelu": cfg.prelu, "gln_stats": cfg.gln_stats, "decoder": cfg.decoder, "mask_mul": cfg.mask_mul}
        report, fired = export_user_onnx(self.model, cfg.width, choices, d / "model.onnx")
        (d / "export.log").write_text(report.log)
        probe = ev.mixtures[:2, None, None, :].astype(np.float32)
        fidelity = check_fidelity_onnx(self.model.run_original, d / "model.onnx", probe, self.space.fidelity_gate_db)
        fidelity["fidelity_vs_original"] = 1.0
        names = [f"onnx:{k}" for k, v in fired.items() if v]
        return {"fired": names, "op_counts": report.op_counts, "fidelity": fidelity, "rewrites": fired}

    def _calibrate(self, cfg: TrialConfig, d: Path) -> dict[str, Any]:
        from harness.audio import build_calibration_set

        cs = build_calibration_set(
            self.space.data.calibration,
            sample_rate=self.sample_rate,
            width=cfg.width,
            clip_length=cfg.calib_clip_length,
            policy=cfg.calib_fill,
            size=cfg.calib_size,
            min_clips=self.space.data.min_calibration_clips,
        )
        np.save(d / "calibration.npy", cs.data[:, None, None, :].astype(np.float32))
        cs.write_manifest(d / "calibration_manifest.json")
        return {"manifest_key": cs.key, "n_clips": int(cs.data.shape[0])}

    def _original(self, ev: Any, d: Path) -> dict[str, Any]:
        """The original float model's outputs (the checkpoint as loaded, no substitution, run in torch; a user's
        ONNX model in ONNX Runtime at the trial's width)."""
        if self.space.model is not None:
            out = self.model.run_original(ev.mixtures)
        else:
            out = original_outputs(self.model, ev.mixtures)
        np.save(d / "original.npy", out)
        return {"shape": list(out.shape)}

    def _reference(self, onnx_path: Path, ev: Any, d: Path) -> dict[str, Any]:
        from harness.backends._ort import run_onnx

        out = run_onnx(onnx_path, ev.mixtures[:, None, None, :].astype(np.float32))
        np.save(d / "float.npy", out)
        return {"shape": list(out.shape)}

    def _emulate(
        self,
        optimized: Optimized,
        ev: Any,
        d: Path,
        ref: np.ndarray,
        on_clip: Callable[[int, float], bool] | None,
        orig: np.ndarray,
        plan: Any = None,
        tile_onnx: Path | None = None,
    ) -> dict[str, Any]:
        """Emulate all evaluation clips; with ``on_clip``, a few clips per worker call so a trial can stop early
        (fed the objective per clip: vs the original float model ``orig``, as :func:`_metrics` scores it). With a
        tiling ``plan`` (:mod:`harness.tiling`) each clip runs as the plan's tiles, stitched back to the full clip;
        the float model ``tile_onnx`` runs on the same tiles (``float_tiled.npy``: the tiling's own gap)."""
        from harness.metrics import score_clip

        mixtures = ev.mixtures[:, None, None, :].astype(np.float32)
        chunk = len(mixtures) if on_clip is None else _CLIPS_PER_CALL
        outs, floats = [], []
        alignment: dict[str, Any] | None = None
        for start in range(0, len(mixtures), chunk):
            if plan is not None:
                assert tile_onnx is not None
                out, flt, alignment = self._emulate_tiled(optimized, ev.mixtures[start : start + chunk], d, plan, tile_onnx, alignment)
                outs.append(out)
                floats.append(flt)
            else:
                raw = self._emulate_batch(optimized, mixtures[start : start + chunk], d)
                if raw.shape[-1] != ref.shape[-1] and alignment is None:
                    alignment = output_alignment(raw, ref[start : start + len(raw)], self.model.config)
                outs.append(raw if alignment is None else apply_alignment(raw, alignment, ref.shape[-1]))
            if on_clip is not None:
                values = [
                    score_clip(q[:, 0, :], orig[start + i, :, 0, :], ev.lengths[start + i]).si_snr_db
                    for i, q in enumerate(outs[-1])
                ]
                if any([on_clip(start + i, float(v)) for i, v in enumerate(values)]):
                    raise StagePruned(start + len(values))
        out = np.concatenate(outs)
        np.save(d / "outputs.npy", out)
        if plan is not None:
            np.save(d / "float_tiled.npy", np.concatenate(floats))
            plan.write(d / "tiling.json", self.sample_rate)
        # written before the entry is published: a published cache entry is never modified
        (d / "per_clip.json").write_text(json.dumps(_metrics(out, ref, orig, ev)[1], indent=2))
        _write_listening_pairs(d / "audio", ev, ref, out, self.sample_rate)
        for name in ("inputs.npy", "part.npy"):
            (d / name).unlink(missing_ok=True)
        return {"shape": list(out.shape), "alignment": alignment}

    def _emulate_batch(self, optimized: Optimized, inputs: np.ndarray, d: Path) -> np.ndarray:
        """One isolated emulate call: ``inputs`` ``[n, 1, 1, W]`` -> the backend's outputs ``[n, n_src, 1, W']``."""
        x, part = d / "inputs.npy", d / "part.npy"
        np.save(x, inputs)
        self._isolated("emulate", "emulate", d, optimized, x, part)
        return np.load(part)

    def _emulate_tiled(
        self, optimized: Optimized, clips: np.ndarray, d: Path, plan: Any, tile_onnx: Path, alignment: dict[str, Any] | None
    ) -> tuple[np.ndarray, np.ndarray, dict[str, Any] | None]:
        """``clips`` ``[n, W]`` as ``plan``'s tiles through :meth:`_emulate_batch` and through the float ``tile_onnx``
        (ONNX Runtime), each stitched: (quantized ``[n, n_src, 1, W]``, float tiled, the output alignment). A backend
        output shorter than the tile (the DFC's deconv) is aligned to the float tiles' outputs, once."""
        from harness.backends._ort import run_onnx

        tiles = plan.split(clips)[:, None, None, :].astype(np.float32)
        raw = self._emulate_batch(optimized, tiles, d)
        flt = run_onnx(tile_onnx, tiles)
        if raw.shape[-1] != plan.tile_width:
            if alignment is None:
                alignment = output_alignment(raw, flt, self.model.config)
            raw = apply_alignment(raw, alignment, plan.tile_width)
        return plan.stitch(raw), plan.stitch(flt), alignment

    def _tile_plan(self, cfg: TrialConfig, stages: dict[str, Any], info: dict[str, Any]) -> Any:
        """The trial's :class:`harness.tiling.TilePlan`, or None (untiled; ``info["tiling"]`` says why when
        ``tile_width`` is set but not below ``width``). A tile too short for its context fails the trial
        (``tile:TilingError:no_hop``)."""
        if cfg.tile_width is None:
            return None
        if cfg.tile_width >= cfg.width:
            info["tiling"] = {"tiled": False, "reason": f"tile_width {cfg.tile_width} >= width {cfg.width}: runs untiled"}
            return None
        from harness.tiling import TilingError, plan_tiles

        try:
            plan = plan_tiles(cfg.width, cfg.tile_width, cfg.tile_context, self.trial_model(cfg)[0].config)  # resized: its own
        except TilingError as exc:
            stages["tile"] = {"key": "", "cached": False, "seconds": 0.0}
            raise _StageFailed(classify("tile", type(exc).__name__, str(exc)), None, f"{type(exc).__name__}: {exc}\n") from None
        info["tiling"] = {"tiled": True, **plan.summary(), "width": cfg.width}
        return plan
