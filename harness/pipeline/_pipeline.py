"""The :class:`Pipeline`: one trial's stages in order (:meth:`Pipeline._run`) and the trial's result
(:meth:`Pipeline.run`); the repair loop around optimize/compile. The stage bodies, the stage runner and the
shared inputs are its mixins (:mod:`._bodies`, :mod:`._runner`, :mod:`._inputs`)."""

from __future__ import annotations

import dataclasses
import re
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from harness.backends import Compiled, Optimized, OverrideSet, QuantSettings, Translated
from harness.cache import StageCache, StageEntry, file_sha256, stage_key
from harness.isolation import Worker
from harness.pipeline._bodies import _StageBodies
from harness.pipeline._inputs import _Inputs
from harness.pipeline._keys import _from_meta, _to_meta, compile_params, optimize_params
from harness.pipeline._metrics import _metrics
from harness.pipeline._runner import _StageRunner
from harness.pipeline._tiling import _Cropped, _noise_inputs, _tiling_key, _tiling_metrics
from harness.pipeline._trial import _VERSIONS, StagePruned, TrialConfig, TrialResult, _NoiseUnavailable, _StageFailed
from harness.space import SearchSpace


class Pipeline(_Inputs, _StageRunner, _StageBodies):
    """Runs trials of one search space on one backend. Construction does no work.

    Args:
        space: The validated search space.
        cache: Where stage results are published.
        progress: Called with the stage name as each stage starts (for live display).
    """

    def __init__(
        self, space: SearchSpace, cache: StageCache, progress: Callable[[str], None] | None = None
    ) -> None:
        self.space = space
        self.cache = cache
        self.progress = progress or (lambda stage: None)
        self._model: Any = None
        self._resized: dict[tuple[Any, ...], tuple[Any, dict[str, Any]]] = {}  # the last trial's resized model
        self._eval: dict[int, Any] = {}
        self._versions: dict[str, str] | None = None
        self._workers: dict[str, Worker] = {}
        self._python: str | None = None
        self._scratch: list[Path] = []  # per-trial files kept outside the cache (see _NoiseUnavailable)

    def close(self) -> None:
        """Stop the stage worker processes (a later trial starts new ones) and remove per-trial scratch files."""
        import shutil

        workers, self._workers = self._workers, {}
        for worker in workers.values():
            worker.close()
        scratch, self._scratch = self._scratch, []
        for folder in scratch:
            shutil.rmtree(folder, ignore_errors=True)

    def run(
        self,
        cfg: TrialConfig,
        overrides: OverrideSet | None = None,
        on_clip: Callable[[int, float], bool] | None = None,
        compile_gate: Callable[[float], bool] | None = None,
    ) -> TrialResult:
        """Run every stage for ``cfg``; a failing stage becomes a classified failed result.

        Args:
            cfg: The trial's dimension values.
            overrides: An explicit override set to use instead of the space's ``cfg.override_set`` (e.g. for
                ``hefsweep minimize`` probes).
            on_clip: Called with (clip index, the clip's objective: SI-SNR of the quantized model vs the original float
                model) as emulation proceeds, a few clips at a time; returning True stops the trial (status ``pruned``).
            compile_gate: When given, compile runs after emulation and only if ``compile_gate(si_snr_db)`` is
                True ("optimize many, compile few"); ``info["compiled"]`` says whether it ran.
        """
        stages: dict[str, dict[str, Any]] = {}
        artifacts: list[tuple[Path, str]] = []
        info: dict[str, Any] = {}
        try:
            self._run(cfg, stages, artifacts, info, overrides, on_clip, compile_gate)
        except StagePruned as exc:
            metrics = {f"time_{k}_s": v["seconds"] for k, v in stages.items()}
            metrics.update(info.pop("recover_metrics", {}))
            info["pruned_after_clips"] = exc.clips
            return TrialResult("pruned", metrics, None, tuple(artifacts), stages, info)
        except _StageFailed as exc:
            metrics = {f"time_{k}_s": v["seconds"] for k, v in stages.items()}
            metrics.update(info.pop("recover_metrics", {}))  # the recovery's measurements also when a later stage fails
            if exc.failed_dir is not None:
                folder = "failed_" + re.sub(r"[^A-Za-z0-9_.-]+", "_", exc.failure.stage).strip("_")  # compile[seg 2/3]
                artifacts += [(p, folder) for p in sorted(exc.failed_dir.iterdir()) if p.is_file()]
            info["traceback"] = exc.traceback_text
            return TrialResult("failed", metrics, exc.failure, tuple(artifacts), stages, info)
        metrics = dict(info.pop("metrics"))
        metrics.update(info.pop("recover_metrics", {}))
        metrics.update({f"time_{k}_s": v["seconds"] for k, v in stages.items()})
        rss = [v["peak_rss_mb"] for v in stages.values() if "peak_rss_mb" in v]
        if rss:
            metrics["worker_peak_rss_mb"] = max(rss)
        return TrialResult("ok", metrics, None, tuple(artifacts), stages, info)


    def _run(
        self,
        cfg: TrialConfig,
        stages: dict[str, Any],
        artifacts: list[tuple[Path, str]],
        info: dict[str, Any],
        explicit: OverrideSet | None = None,
        on_clip: Callable[[int, float], bool] | None = None,
        compile_gate: Callable[[float], bool] | None = None,
    ) -> None:
        space = self.space
        ckpt_sha = self._model_sha()
        import torch

        from harness.backends._ort import threads

        if threads():
            torch.set_num_threads(threads())

        # 1. export (with substitutions and the fidelity gate)
        export_params = {
            "checkpoint": ckpt_sha,
            "prelu": cfg.prelu,
            "norm": cfg.norm,
            "clamp": cfg.clamp,
            "width": cfg.width,
            "gate_db": space.fidelity_gate_db,
            "torch": torch.__version__,
        }
        # the exact topology rewrites join the key only when not default: default trials keep their keys
        from harness.space import EXACT_DEFAULTS

        export_params.update({k: getattr(cfg, k) for k, v in EXACT_DEFAULTS.items() if getattr(cfg, k) != v})
        ev = self.eval_set(cfg.width)
        export_params["eval"] = ev.key  # the fidelity gate's probe clips: its verdict is part of the export's outcome
        # a resized model (mode: frontier) joins the key only when resized: other trials keep their keys
        resized = self.trial_model(cfg)[1]
        if resized is not None:
            from harness.model import RESIZE_VERSION

            export_params["capacity"] = {**resized["changed"], "resize_version": RESIZE_VERSION}
            info["resized"] = resized
        # 0. recovery of lossy substitutions (optional): its recovered weights become the export's
        recovered = self._recover(cfg, ckpt_sha, ev, stages, artifacts, info)
        if recovered is not None:
            export_params["recover"] = recovered.key
        export = self._stage(
            "export",
            stage_key("export", _VERSIONS["export"], export_params),
            lambda d: self._export(cfg, ev, d, recovered.path / "recovered.pt" if recovered is not None else None),
            stages,
        )
        onnx_path = export.path / "model.onnx"
        info["fired"] = export.meta["fired"]
        info["export_ops"] = export.meta["op_counts"]
        info["fidelity"] = export.meta["fidelity"]
        artifacts += [(onnx_path, "export"), (export.path / "export.log", "logs")]
        # 1b. time tiling (harness/tiling.py): the backend stages get the model exported at the tile width; the
        # references (original and substituted float) stay untiled on the full clips
        plan = self._tile_plan(cfg, stages, info)
        build_onnx, build_key, build_width = onnx_path, export.key, cfg.width
        if plan is not None:
            build_width = plan.tile_width
            tile_export = self._stage(
                "export_tile",
                stage_key("export_tile", _VERSIONS["export"], {**export_params, "width": build_width}),
                lambda d: self._export(
                    dataclasses.replace(cfg, width=build_width), _Cropped(ev.mixtures[:, :build_width]), d,
                    recovered.path / "recovered.pt" if recovered is not None else None,
                ),
                stages,
            )
            build_onnx, build_key = tile_export.path / "model.onnx", tile_export.key
            artifacts.append((build_onnx, "export_tile"))

        # 2. calibration set
        from harness.audio._calibration import MANIFEST_FORMAT, effective_policy

        calib_params = {
            "format": MANIFEST_FORMAT,  # how clips are selected (round-robin over the files) and described
            "files": self._calibration_files()[1],
            "width": build_width,
            "clip_length": cfg.calib_clip_length,
            # None when no selected clip is shorter than W: pad, repeat and crop then build one set under one key
            "policy": effective_policy(
                space.data.calibration,
                sample_rate=self.sample_rate,
                width=build_width,
                clip_length=cfg.calib_clip_length,
                policy=cfg.calib_fill,
                size=cfg.calib_size,
            ),
            "size": cfg.calib_size,
            "sample_rate": self.sample_rate,
        }
        calib = self._stage(
            "calibrate", stage_key("calibrate", _VERSIONS["calibrate"], calib_params), lambda d: self._calibrate(dataclasses.replace(cfg, width=build_width), d), stages
        )
        artifacts.append((calib.path / "calibration_manifest.json", "calibration"))
        info["calibration_key"] = calib.meta["manifest_key"]
        info["eval_key"] = ev.key

        # 3. float outputs on the evaluation set: the original model (the checkpoint as loaded, no substitution, in
        # torch; the objective's reference) and the substituted export (ONNX; the quantization loss's reference)
        orig_params = {"checkpoint": ckpt_sha, "eval": ev.key, "width": cfg.width, "torch": torch.__version__}
        orig, orig_out = self._stage_loaded(
            "original",
            stage_key("original", _VERSIONS["original"], orig_params),
            lambda d: self._original(ev, d),
            stages,
            "original.npy",
        )
        info["original_reference"] = {"checkpoint_sha256": ckpt_sha, "key": orig.key, "runtime": f"torch {torch.__version__}"}
        # loaded once, right after its lookup: a `cache prune` running meanwhile cannot take it away mid-trial
        _, ref_out = self._stage_loaded(
            "reference",
            stage_key("reference", _VERSIONS["reference"], {"eval": ev.key}, (export.key,)),
            lambda d: self._reference(onnx_path, ev, d),
            stages,
            "float.npy",
        )

        if cfg.segments > 1:  # split HEFs: the backend stages per segment and the chain (harness/segments.py)
            from harness.segments import run_split

            run_split(self, cfg, build_onnx, build_key, plan, calib, orig, orig_out, ref_out, ev, stages, artifacts,
                      info, explicit, on_clip)  # fmt: skip
            return

        # 4-7. backend stages, isolated
        versions = self.backend_versions()
        backend_id = {"backend": space.backend, "options": space.backend_options, **versions}
        tr_key = stage_key("translate", _VERSIONS["translate"], backend_id, (build_key,))
        tr = self._stage(
            "translate",
            tr_key,
            lambda d: _to_meta(self._isolated("translate", "translate", d, build_onnx, d), d),
            stages,
        )
        translated = _from_meta(Translated, tr.meta, tr.path)

        overrides = explicit if explicit is not None else space.override_set(cfg.override_set)
        settings = QuantSettings(method=cfg.calib_method)  # type: ignore[arg-type]
        reuse = self.cache.root / "reuse" / stage_key("ranges", 1, {"method": settings.method}, (tr.key, calib.key))

        from harness.backends._overrides import split_levers

        def optimize_only(ovs: OverrideSet) -> tuple[StageEntry, Optimized, Compiled | None]:
            quant = split_levers(ovs)[0]  # the compiler levers act at compile: optimize neither sees nor keys them
            opt = self._stage(
                "optimize",
                stage_key(
                    "optimize",
                    _VERSIONS["optimize"],
                    optimize_params(quant, settings),
                    (tr.key, calib.key),
                ),
                lambda d: _to_meta(
                    self._isolated("optimize", "optimize", d, translated, calib.path / "calibration.npy", quant, settings, d, reuse),
                    d,
                ),
                stages,
            )
            return opt, _from_meta(Optimized, opt.meta, opt.path), None

        def compile_(opt: StageEntry, optimized: Optimized, ovs: OverrideSet) -> Compiled:
            levers = split_levers(ovs)[1]
            comp = self._stage(
                "compile",
                stage_key("compile", _VERSIONS["compile"], compile_params(levers), (opt.key,)),
                lambda d: _to_meta(self._isolated("compile", "compile_", d, optimized, d, levers), d),
                stages,
            )
            return _from_meta(Compiled, comp.meta, comp.path)

        def optimize_compile(ovs: OverrideSet) -> tuple[StageEntry, Optimized, Compiled | None]:
            opt, optimized, _ = optimize_only(ovs)
            return opt, optimized, compile_(opt, optimized, ovs)

        # "Optimize many, compile few": with a compile gate, compile runs after emulation and only when the gate
        # admits the trial's SI-SNR (the repair loop then covers optimize failures only).
        step = optimize_compile if compile_gate is None else optimize_only
        if space.repairs:
            opt, optimized, compiled = self._repair_loop(step, overrides, translated, artifacts, info)
        else:
            opt, optimized, compiled = step(overrides)
        info["optimize"] = {"applied": list(optimized.applied), "ignored": list(optimized.ignored), **optimized.info}
        artifacts += [(p, "optimize") for p in (optimized.script, opt.path / "optimize.log") if p is not None and p.exists()]
        if optimized.path.suffix != ".onnx":
            artifacts.append((optimized.path, "optimize"))  # e.g. the quantized HAR, needed to re-emulate a HEF

        def record(compiled: Compiled) -> None:
            info["compile"] = {**compiled.info, "sha256": file_sha256(compiled.path), "file": compiled.path.name}
            artifacts.append((compiled.path, "compiled"))

        if compiled is not None:
            record(compiled)

        emu = self._stage(
            "emulate",
            stage_key("emulate", _VERSIONS["emulate"], {"eval": ev.key, **_tiling_key(plan)}, (opt.key, orig.key)),
            lambda d: self._emulate(optimized, ev, d, ref_out, on_clip, orig_out, plan, build_onnx),
            stages,
        )
        if emu.meta.get("alignment"):
            info["emulate_alignment"] = emu.meta["alignment"]
        info["metrics"], per_clip = _metrics(np.load(emu.path / "outputs.npy"), ref_out, orig_out, ev)
        info["per_clip_si_snr_db"] = [row["si_snr_db"] for row in per_clip]
        if plan is not None:  # the float tiling gap (exact for local norms) and the deployment recipe, beside the HEF
            info["metrics"].update(_tiling_metrics(np.load(emu.path / "float_tiled.npy"), ref_out, ev, plan))
            info["tiling"]["sha256"] = file_sha256(emu.path / "tiling.json")
            artifacts.append((emu.path / "tiling.json", "compiled"))
        if space.layer_noise_clips:
            from harness.layer_noise import NOISE_VERSION

            n_noise = space.layer_noise_clips
            try:
                noise = self._stage(
                    "noise",
                    stage_key("noise", NOISE_VERSION, {"eval": ev.key, "clips": n_noise, **_tiling_key(plan)}, (export.key, opt.key)),
                    lambda d: self._noise(build_onnx, optimized, _noise_inputs(ev, n_noise, plan), d),
                    stages,
                )
                info["layer_noise"], noise_dir = noise.meta, noise.path
            except _NoiseUnavailable as gone:  # this trial's "not available", not published
                info["layer_noise"], noise_dir = {**gone.summary, "seconds": stages["noise"]["seconds"]}, gone.folder
            artifacts += [(p, "noise") for p in sorted(noise_dir.glob("layer_noise.*"))]
        if compile_gate is not None:
            info["compiled"] = bool(compile_gate(info["metrics"]["si_snr_db"]))
            if info["compiled"]:
                record(compile_(opt, optimized, overrides))
        else:
            info["compiled"] = True
        artifacts.append((emu.path / "per_clip.json", "metrics"))
        audio = emu.path / "audio"
        if audio.is_dir():
            artifacts += [(p, "audio") for p in sorted(audio.iterdir())]

    def _repair_loop(
        self,
        optimize_compile: Callable[[OverrideSet], tuple[StageEntry, Optimized, Compiled | None]],
        overrides: OverrideSet,
        translated: Translated,
        artifacts: list[tuple[Path, str]],
        info: dict[str, Any],
    ) -> tuple[StageEntry, Optimized, Compiled | None]:
        """optimize (+ compile), and after each classified failure the next fix from the repair table.

        Every iteration is written to ``compile_failure.txt`` / ``compile_failure.json`` (trial artifacts).

        Raises:
            _StageFailed: the loop stopped without success (the last failure ends the trial).
        """
        from harness.backends import backend_class
        from harness.repair import Attempt, run_repairs

        backend = backend_class(self.space.backend)
        diagnose = backend.diagnose
        family_of = getattr(backend, "family", None)  # the resolved layer's family by role, where the backend has roles
        failures: list[_StageFailed] = []

        def attempt(ovs: OverrideSet) -> Attempt:
            start = time.monotonic()
            try:
                return Attempt(value=optimize_compile(ovs), seconds=time.monotonic() - start)
            except _StageFailed as exc:
                failures.append(exc)
                layer = diagnose(exc.failure, translated)
                family = family_of(layer, translated) if family_of is not None and layer else None
                return Attempt(exc.failure, layer, seconds=time.monotonic() - start, family=family)

        outcome = run_repairs(attempt, overrides, max_repairs=self.space.repairs)
        folder = self.cache.root / "repairs" / uuid.uuid4().hex
        artifacts += [(p, "") for p in outcome.log.write(folder)]
        info["repair"] = {**outcome.log.tags(), "final_override_set": outcome.overrides.to_dict()}
        if not outcome.succeeded:
            raise failures[-1]
        result: tuple[StageEntry, Optimized, Compiled | None] = outcome.value
        return result
