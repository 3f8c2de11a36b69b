"""One trial's pipeline: export -> calibrate -> translate -> optimize -> compile -> emulate -> metrics.

Each stage is a content-hashed entry in the :class:`~harness.cache.StageCache`: its key covers its parameters
and the keys of the stages it consumes, so a trial that repeats an earlier export, calibration or
quantization reuses it instead of recomputing. optimize, compile and emulate run in isolated child processes
with the space's ``stage_timeout``. The first stage that fails ends the trial with a classified
:class:`~harness.failures.Failure`; nothing is raised to the sweep.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import re
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from harness.backends import Compiled, Optimized, OverrideSet, QuantSettings, Translated
from harness.cache import CachedBuildError, StageCache, StageEntry, file_sha256, stage_key
from harness.failures import Failure, classify, classify_with_log
from harness.isolation import IsolatedFailure, Worker
from harness.space import SearchSpace

__all__ = ["Pipeline", "TrialConfig", "TrialResult"]

log = logging.getLogger("harness.pipeline")

_CLIPS_PER_CALL = 2  # emulation granularity when a pruner watches per-clip SI-SNR
STAGES = (
    "recover", "export", "calibrate", "original", "reference", "translate", "optimize", "compile", "emulate", "noise"
)
_VERSIONS = {"export": 1, "calibrate": 1, "original": 1, "reference": 1, "translate": 2, "optimize": 2, "compile": 1, "emulate": 4}


@dataclass(frozen=True)
class TrialConfig:
    """The values of one trial's dimensions.

    ``gln_stats``, ``decoder`` and ``mask_mul`` are the exact topology rewrites (:mod:`harness.substitutions`);
    their defaults are the model's own forms, and they enter the export's cache key only when not default.
    """

    prelu: str = "keep"
    norm: str | None = None
    clamp: float | None = None
    gln_stats: str = "joint"
    decoder: str = "grouped"
    mask_mul: str = "repeat"
    width: int = 16000
    calib_clip_length: int | None = None
    calib_fill: str = "repeat"
    calib_size: int = 16
    calib_method: str = "minmax"
    override_set: str = "none"
    recover_steps: int = 0
    tile_width: int | None = None
    tile_context: int | None = None
    segments: int = 1
    n_filters: int | None = None
    bn_chan: int | None = None
    hid_chan: int | None = None
    skip_chan: int | None = None
    n_blocks: int | None = None
    n_repeats: int | None = None

    def to_dict(self) -> dict[str, Any]:
        """Flat parameters (for MLflow params and cache keys)."""
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class TrialResult:
    """What a trial produced.

    Attributes:
        status: ``ok`` or ``failed``.
        metrics: SI-SNR metrics and seconds per stage.
        failure: The classified failure of the first failing stage.
        artifacts: (local path, artifact folder) pairs to log.
        stages: Per stage: cache key, whether it was a cache hit, seconds.
        info: Substitutions that fired, export op counts, compile facts ...
    """

    status: str
    metrics: dict[str, float] = field(default_factory=dict)
    failure: Failure | None = None
    artifacts: tuple[tuple[Path, str], ...] = ()
    stages: dict[str, dict[str, Any]] = field(default_factory=dict)
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """True when every stage passed."""
        return self.status == "ok"


class StagePruned(Exception):
    """Emulation stopped early: the trial's per-clip SI-SNR is significantly worse than the best trial's.

    Marked ``transient`` so the stage cache does not record it as the stage's outcome.
    """

    transient = True

    def __init__(self, clips: int) -> None:
        self.clips = clips
        super().__init__(f"pruned after {clips} clips")


class _NoiseUnavailable(Exception):
    """The noise stage hung or its worker died: this trial reports "not available" (``summary``, files in
    ``folder``, outside the stage cache), and the cache does not publish it (``transient``): a passing hiccup must
    not stand for every later trial of the key."""

    transient = True

    def __init__(self, summary: dict[str, Any], folder: Path) -> None:
        self.summary = summary
        self.folder = folder
        super().__init__(str(summary.get("reason", "not available")))


class _StageFailed(Exception):
    def __init__(self, failure: Failure, failed_dir: Path | None, traceback_text: str) -> None:
        self.failure = failure
        self.failed_dir = failed_dir
        self.traceback_text = traceback_text
        super().__init__(failure.signature)


def _to_meta(obj: Any, base: Path) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for f in dataclasses.fields(obj):
        v = getattr(obj, f.name)
        if isinstance(v, Path):
            v = {"__path__": str(v.relative_to(base))}
        elif isinstance(v, tuple):
            v = list(v)
        out[f.name] = v
    return out


def _from_meta(cls: Any, meta: dict[str, Any], base: Path) -> Any:
    kwargs: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        v = meta[f.name]
        if isinstance(v, dict) and "__path__" in v:
            v = base / v["__path__"]
        elif isinstance(v, list):
            v = tuple(v)
        kwargs[f.name] = v
    return cls(**kwargs)


class Pipeline:
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

    # -- shared inputs, loaded once per process -------------------------------------------------------------
    @property
    def model(self) -> Any:
        """The float model from the checkpoint (loaded on first use); with ``model.onnx``, the user's ONNX
        (:class:`harness.onnx_model.OnnxModel`)."""
        if self._model is None and self.space.model is not None:
            from harness.onnx_model import OnnxModel

            self._model = OnnxModel(self.space.model.onnx, self.space.model.sample_rate, self._first_width())
        if self._model is None:
            from harness.model import load_checkpoint

            self._model = load_checkpoint(self.space.checkpoint)
        return self._model

    def _model_sha(self) -> str:
        """The model file's sha256 (for an ONNX model with the conversion's version: part of the stage keys)."""
        sha = file_sha256(self.space.model_file)
        if self.space.model is None:
            return sha
        from harness.onnx_model import ONNX_MODEL_VERSION

        return f"{sha}:onnx_model{ONNX_MODEL_VERSION}"

    def trial_model(self, cfg: TrialConfig) -> tuple[Any, dict[str, Any] | None]:
        """The model a trial exports: the checkpoint's, or (capacity values set and different from the checkpoint's,
        ``mode: frontier``) the resized one of :func:`harness.model.resize_model` with its provenance (memoized)."""
        from harness.model import CAPACITY_DIMS, changed_values, resize_model

        if self.space.model is not None:  # an ONNX model: capacity dimensions are refused at space load
            return self.model, None
        changed = changed_values(self.model.config, {k: getattr(cfg, k) for k in CAPACITY_DIMS})
        if not changed:
            return self.model, None
        key = tuple(changed.items())
        if key not in self._resized:
            resized = resize_model(self.model, changed)
            self._resized = {key: (resized.model, {"changed": changed, **resized.info(), "needs_retraining": True})}
        model, info = self._resized[key]
        return model, dict(info)

    @property
    def sample_rate(self) -> int:
        """The model's sample rate (audio must match it)."""
        rate = self.model.config.sample_rate
        if rate is None:
            from harness.errors import CheckpointError

            raise CheckpointError(
                self.space.checkpoint, "model_args.sample_rate is None", "the sample rate the model was trained at"
            )
        return int(rate)

    def eval_set(self, width: int) -> Any:
        """The evaluation mixtures (and clean sources) fitted to ``width``."""
        if width not in self._eval:
            from harness.audio import load_eval_set

            self._eval[width] = load_eval_set(
                self.space.data.evaluation,
                sample_rate=self.sample_rate,
                width=width,
                n_src=self.model.config.n_src,
                limit=self.space.data.eval_clips,
            )
        return self._eval[width]

    def backend_versions(self) -> dict[str, str]:
        """Versions of the backend's runtime (part of every backend stage's key), asked of the interpreter that runs
        the backend's stages (for Hailo: the DFC environment's, probed once; a bad ``python`` is a one-line error)."""
        if self._versions is None:
            self._versions = self.space.backend_spec().versions()
        return self._versions

    def stage_python(self) -> str:
        """The interpreter of the backend's isolated stages (resolved once)."""
        if self._python is None:
            self._python = self.space.backend_spec().interpreter()
        return self._python

    def validate_inputs(self) -> None:
        """Check checkpoint and audio once before any trial (bad input -> HarnessError, exit 1)."""
        from harness.audio import build_calibration_set, list_audio, read_audio

        if self.space.model is not None:  # an ONNX model: convertible at every width the space names
            self.model.check_widths(_candidates(self.space.dimensions.width))
        _ = self.model
        files = list_audio(self.space.data.calibration)
        for f in files:
            read_audio(f, self.sample_rate)
        width = self._first_width()
        self.eval_set(width)
        need = self.space.data.min_calibration_clips
        audio_log = logging.getLogger("harness.audio")
        level = audio_log.level
        audio_log.setLevel(logging.ERROR)  # W-mismatch warnings belong to trials, not to this check
        try:
            for clip_length in _candidates(self.space.dimensions.calib_clip_length):
                build_calibration_set(
                self.space.data.calibration,
                    sample_rate=self.sample_rate,
                    width=width,
                    clip_length=clip_length,
                    policy="pad",
                    size=need,
                    min_clips=need,
                )
        finally:
            audio_log.setLevel(level)

    def _first_width(self) -> int:
        return int(_candidates(self.space.dimensions.width)[0])

    # -- the trial ----------------------------------------------------------------------------------------------
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

    def _stage(self, name: str, key: str, fn: Callable[[Path], dict[str, Any]], stages: dict[str, Any]) -> StageEntry:
        self.progress(name)
        start = time.monotonic()
        try:
            entry = self.cache.build(name, key, fn)
        except CachedBuildError as err:
            cause = err.cause
            if isinstance(cause, (StagePruned, _NoiseUnavailable)):  # not the stage's outcome: nothing published
                stages[name] = {"key": key, "cached": False, "seconds": time.monotonic() - start}
                raise cause from None
            if isinstance(cause, IsolatedFailure):
                # a bare message (the DFC's "Compilation failed") is classified from the stage's own log lines
                failure = classify_with_log(name, cause.exc_class, cause.message, _stage_logs(err.failed_dir, name))
                tb = cause.traceback
            else:
                import traceback

                failure = classify(name, type(cause).__name__, str(cause))
                tb = "".join(traceback.format_exception(cause))
            stages[name] = {"key": key, "cached": err.replayed, "seconds": time.monotonic() - start}
            raise _StageFailed(failure, err.failed_dir, tb) from None
        seconds = time.monotonic() - start if entry.hit else entry.meta.get("seconds", 0.0)
        stages[name] = {"key": key, "cached": entry.hit, "seconds": seconds}
        resources = entry.path / "resources.json"
        if not entry.hit and resources.is_file():
            stages[name]["peak_rss_mb"] = json.loads(resources.read_text())["peak_rss_mb"]
        return entry

    def _stage_loaded(
        self, name: str, key: str, fn: Callable[[Path], dict[str, Any]], stages: dict[str, Any], file: str
    ) -> tuple[StageEntry, np.ndarray]:
        """:meth:`_stage`, then its ``file`` loaded at once; an entry pruned between the lookup and the load (a
        concurrent ``hefsweep cache prune``) is built again."""
        for attempt in (1, 2):
            entry = self._stage(name, key, fn, stages)
            try:
                return entry, np.load(entry.path / file)
            except FileNotFoundError:
                if attempt == 2:
                    raise
                log.info("%s %s: pruned after its lookup; building it again", name, key[:12])
        raise AssertionError("unreachable")

    def _isolated(self, stage: str, target: str, workdir: Path, *args: Any) -> Any:
        """``harness._stage_calls:<target>`` in the stage worker; the noise stage (it only reads files and runs
        ONNX Runtime) always runs under the harness's own interpreter, backend stages under the backend's."""
        python = sys.executable if stage == "noise" else self.stage_python()
        worker = self._workers.get(python)
        if worker is None:
            worker = self._workers[python] = Worker(python=python)
        spec = self.space.backend_spec()
        run = worker.call(
            f"harness._stage_calls:{target}",
            spec,
            *args,
            timeout=spec.timeout(stage, self.space.stage_timeout),
            log_path=workdir / f"{stage}.log",
        )
        (workdir / "resources.json").write_text(
            json.dumps({"child_seconds": run.seconds, "peak_rss_mb": run.peak_rss_mb})
        )
        return run.value

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

    def _calibration_files(self) -> tuple[list[Path], list[list[str]]]:
        """The calibration folder's audio files and their ``[name, sha256]`` pairs (what keys the stages built from
        them; hashes are memoized per process)."""
        from harness.audio import list_audio

        files = list_audio(self.space.data.calibration)
        return files, [[f.name, file_sha256(f)] for f in files]

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

    # -- stage bodies (run in the cache's temp folder) --------------------------------------------------------
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


#: Logs a stage's tools write into its workdir (the DFC's, [T] real_dfc/README.md), read for bare failure messages.
_TOOL_LOGS = ("allocator.log", "hailo_sdk.client.log", "acceleras.log")
_LOG_TAIL = 256 * 1024


def _stage_logs(folder: Path | None, stage: str) -> str:
    """The tail of the stage's log and of the tool logs in its failed build's folder (empty when there are none)."""
    if folder is None:
        return ""
    parts = []
    for name in (f"{stage}.log", *_TOOL_LOGS):
        path = folder / name
        if path.is_file():
            with path.open("rb") as f:
                f.seek(max(0, path.stat().st_size - _LOG_TAIL))
                parts.append(f.read().decode("utf-8", "replace"))
    return "\n".join(parts)


def output_alignment(quant: np.ndarray, ref: np.ndarray, config: Any) -> dict[str, Any]:
    """Where a backend output shorter than W sits in the float reference: found once, by cross-correlation.

    The DFC's decoder deconv returns F·stride samples (15992 for W=16000, ``real_dfc/real_hn.json``) where the ONNX
    returns (F-1)·stride + L = W; a shortfall of up to ``kernel_size - stride`` samples is expected and is aligned
    (the offset that best matches the float outputs of these clips), anything else is an error.

    Raises:
        ValueError: the output is longer than W or shorter by more than ``kernel_size - stride``.
    """
    width, short = ref.shape[-1], ref.shape[-1] - quant.shape[-1]
    limit = max(int(config.kernel_size) - int(config.stride or config.kernel_size // 2), 0)
    if not 0 < short <= limit:
        raise ValueError(
            f"emulated output has {quant.shape[-1]} samples for W={width}; expected W or at most "
            f"kernel_size - stride = {limit} fewer"
        )
    q = quant[:, :, 0, :].astype(np.float64)
    scores = []
    for k in range(short + 1):
        r = ref[:, :, 0, k : k + quant.shape[-1]].astype(np.float64)
        scores.append(float(np.sum(q * r) / (np.sqrt(np.sum(q * q) * np.sum(r * r)) or 1.0)))
    offset = int(np.argmax(scores))
    return {"output_width": int(quant.shape[-1]), "width": int(width), "offset": offset,
            "correlation": round(scores[offset], 6), "method": "cross-correlation on the first emulated clips"}  # fmt: skip


def apply_alignment(quant: np.ndarray, alignment: dict[str, Any], width: int) -> np.ndarray:
    """Place ``quant`` at the alignment's offset in zeros of length ``width``."""
    out = np.zeros(quant.shape[:-1] + (width,), dtype=quant.dtype)
    k = alignment["offset"]
    out[..., k : k + quant.shape[-1]] = quant
    return out


def optimize_params(quant: OverrideSet, settings: QuantSettings) -> dict[str, Any]:
    """The optimize stage's key parameters: the overrides' content, not the set's name -- "none" and a repair's
    "none+r1" that only added a compiler lever (kept out of optimize) quantize the same model (version 2; version 1
    keyed the name too)."""
    return {"overrides": [o.to_dict() for o in quant.overrides], "settings": settings.to_dict()}


def compile_params(levers: OverrideSet) -> dict[str, Any]:
    """The compile stage's key parameters: the compiler levers when there are any (none: the key of before levers)."""
    return {"levers": levers.to_dict()} if levers.overrides else {}


def _spec(cfg: TrialConfig) -> Any:
    """The trial's substitution spec."""
    from harness.substitutions import SubstitutionSpec

    return SubstitutionSpec(
        prelu=cfg.prelu,  # type: ignore[arg-type]
        norm=cfg.norm,  # type: ignore[arg-type]
        clamp=cfg.clamp,
        gln_stats=cfg.gln_stats,  # type: ignore[arg-type]
        decoder=cfg.decoder,  # type: ignore[arg-type]
        mask_mul=cfg.mask_mul,  # type: ignore[arg-type]
    )


def _candidates(dim: Any) -> list[Any]:
    """The distinct values a dimension can take at its extremes (list values, range ends or the fixed value)."""
    if isinstance(dim, list):
        return list(dict.fromkeys(dim))
    if hasattr(dim, "low"):
        return [dim.low, dim.high]
    return [dim]


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
