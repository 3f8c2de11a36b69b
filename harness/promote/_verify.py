"""Verification of a run's stored artifact (:func:`verify_run`, the checks of :mod:`harness.promote`): sha256,
tiling recipe and bundle (:mod:`._tiling`, :mod:`._bundle`), backend versions, the quantized HAR's hash, the
evaluation set, and the objective recomputed by emulation (:func:`_objective`, with the pipeline's own metrics)."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from harness.errors import HarnessError
from harness.promote._bundle import _Bundle
from harness.promote._records import Check, Verified
from harness.promote._runs import _options_from_tags, _require_ok, _space_of
from harness.promote._store import _check_sha256, _download
from harness.promote._tiling import _Tiling

_HAILO_HAR = "optimize/model_quantized.har"


def _versions_check(
    recorded: dict[str, str], current: dict[str, str], backend: str, allow: bool, rid: str
) -> Check:
    keys = sorted(set(recorded) | set(current))
    diff = [k for k in keys if recorded.get(k) != current.get(k)]
    fmt = lambda d, ks: ", ".join(f"{k} {d.get(k, '-')}" for k in ks)  # noqa: E731
    if not diff:
        return Check("versions", "ok", fmt(current, keys))
    if not allow:
        raise HarnessError(
            f"backend {backend} versions of run {rid}",
            f"recorded {fmt(recorded, diff)}; this environment has {fmt(current, diff)}",
            "the versions the trial was built with",
            "install them, or pass --allow-version-mismatch (recorded in the ledger)",
        )
    return Check("versions", "allowed", f"mismatch allowed: recorded {fmt(recorded, diff)}; here {fmt(current, diff)}")


def _check_har(har: Path, expected: str | None, rid: str) -> Check:
    """The quantized HAR that is about to be emulated must be the trial's (``hefsweep.har_sha256``, recorded by the
    sweep); a trial logged before the tag existed is said to be unverified.

    Raises:
        HarnessError: the stored HAR's hash differs from the recorded one.
    """
    if not expected:
        return Check("har_sha256", "skipped", "no hefsweep.har_sha256 on the run (logged before HAR hashes were recorded)")
    actual = _check_sha256(har, expected, f"artifact {_HAILO_HAR} of run {rid}",
                           "as recorded in hefsweep.har_sha256 (the stored file changed after the trial)")  # fmt: skip
    return Check("har_sha256", "ok", f"{actual[:16]}... matches hefsweep.har_sha256")


def _emulate_hailo(spec: Any, har: Path, inputs: np.ndarray, workdir: Path, timeout: float) -> np.ndarray:
    from harness.backends import Optimized
    from harness.isolation import IsolatedFailure, run_isolated

    x_npy, y_npy = workdir / "inputs.npy", workdir / "outputs.npy"
    np.save(x_npy, inputs)
    try:
        run_isolated(
            "harness._stage_calls:emulate", spec, Optimized(path=har), x_npy, y_npy,
            timeout=timeout, log_path=workdir / "emulate.log", python=spec.interpreter(),
        )  # fmt: skip
    except IsolatedFailure as exc:
        raise HarnessError(f"emulation of {har.name}", f"failed ({exc.exc_class}: {exc.message[:200]})",
                           "the quantized HAR to emulate as in the trial") from None  # fmt: skip
    return np.asarray(np.load(y_npy))


def verify_run(
    client: Any,
    tracking_uri: str,
    run: Any,
    workdir: Path,
    *,
    tolerance_db: float = 0.1,
    allow_version_mismatch: bool = False,
    skip_emulation: bool = False,
    progress: Callable[[Check], None] | None = None,
) -> Verified:
    """Re-check a trial's stored artifact (see :mod:`harness.promote`). Downloads go to ``workdir``.

    Raises:
        HarnessError: a run that is not an ok trial, a hash mismatch, a version mismatch (unless allowed), an
            evaluation set that differs from the trial's, a recomputed SI-SNR outside ``tolerance_db``, or a
            backend that cannot emulate here (unless ``skip_emulation``).
    """
    from harness.backends import BackendSpec
    from harness.errors import BackendUnavailable

    _require_ok(run)
    tags, rid = run.data.tags, run.info.run_id
    report = progress or (lambda c: None)
    checks: list[Check] = []

    def done(c: Check) -> None:
        checks.append(c)
        report(c)

    # 1. sha256 of the stored artifact
    artifact, expected = tags["hefsweep.artifact"], tags["hefsweep.artifact_sha256"]
    base = run.info.artifact_uri
    local = _download(f"{base}/{artifact}", workdir / "artifact", tracking_uri, f"artifact {artifact} of run {rid}")
    actual = _check_sha256(local, expected, f"artifact {artifact} of run {rid}",
                           "as recorded in hefsweep.artifact_sha256 (the stored file changed after the trial)")  # fmt: skip
    done(Check("sha256", "ok", f"{actual[:16]}... matches hefsweep.artifact_sha256"))
    # 1b. a tiled run: its deployment recipe (compiled/tiling.json) must be the trial's
    tiling = _Tiling.of_run(run, workdir, tracking_uri)
    if tiling is not None:
        done(tiling.check)
    # 1c. a split run: every segment's files against its bundle manifest (harness/bundle.py)
    bundle = _Bundle.of_run(artifact, local, base, workdir, tracking_uri, rid)
    if bundle is not None:
        done(bundle.check)

    # 2. backend versions
    backend = run.data.params.get("backend") or "ort"
    recorded = {k.removeprefix("hefsweep.version."): v for k, v in tags.items() if k.startswith("hefsweep.version.")}
    space = _space_of(client, run, required=not skip_emulation)
    options = dict(space.backend_options) if space is not None else _options_from_tags(backend, tags)
    try:
        current = BackendSpec(backend, tuple(sorted(options.items()))).versions()  # Hailo: asked of the DFC's Python
    except BackendUnavailable as exc:
        if not skip_emulation:
            raise HarnessError(f"backend {backend} for run {rid}", exc.seen, exc.expected,
                               "promote where the backend is installed, or pass --skip-emulation") from None  # fmt: skip
        done(Check("versions", "skipped", f"backend {backend} is not importable here (--skip-emulation)"))
        done(Check("emulation", "skipped", "--skip-emulation"))
        return _verified(run, backend, artifact, actual, recorded, checks, tiling)
    done(_versions_check(recorded, current, backend, allow_version_mismatch, rid))
    if skip_emulation or space is None:
        done(Check("emulation", "skipped", "--skip-emulation"))
        return _verified(run, backend, artifact, actual, recorded, checks, tiling)

    # 3. evaluation set and emulation
    from harness.audio import load_eval_set
    from harness.backends._ort import run_onnx

    float_onnx = _download(f"{base}/export/model.onnx", workdir / "export", tracking_uri,
                           f"export/model.onnx of run {rid}")  # fmt: skip
    manifest = _download(f"{base}/calibration/calibration_manifest.json", workdir / "calibration",
                         tracking_uri, f"calibration manifest of run {rid}")  # fmt: skip
    try:
        sample_rate = int(json.loads(manifest.read_text())["sample_rate"])
        width = int(run.data.params["width"])
    except (KeyError, ValueError, TypeError) as exc:
        raise HarnessError(f"run {rid}", f"no usable sample rate or width ({type(exc).__name__}: {exc})",
                           "a trial logged by `hefsweep sweep`") from None  # fmt: skip
    n_src = _n_src(float_onnx)
    ev = load_eval_set(space.data.evaluation, sample_rate=sample_rate, width=width, n_src=n_src,
                       limit=space.data.eval_clips)  # fmt: skip
    if ev.key != tags.get("hefsweep.eval_set"):
        raise HarnessError(
            f"evaluation set {space.data.evaluation} ({len(ev)} clips, W={width})",
            f"key {ev.key[:16]}... (its files or eval_clips differ from the trial's)",
            f"key {str(tags.get('hefsweep.eval_set'))[:16]}... as recorded in hefsweep.eval_set",
        )
    done(Check("eval_set", "ok", f"{len(ev)} clips, key {ev.key[:16]}... matches hefsweep.eval_set"))
    x = np.ascontiguousarray(ev.mixtures[:, None, None, :], dtype=np.float32)
    ref = run_onnx(float_onnx, x)
    # tiled: the compiled model runs on the trial's tiles (aligned against the float tile model) and is stitched
    xq, aref = (x, ref) if tiling is None else tiling.inputs(ev, base, workdir, tracking_uri, rid)
    if bundle is not None:  # a split run: the chain of its verified segments, in the backend's interpreter
        quant = bundle.emulate(space.backend_spec(), xq, workdir, space.stage_timeout)
    elif backend == "ort":
        quant = run_onnx(local, xq)
    else:
        har = _download(f"{base}/{_HAILO_HAR}", workdir / "har", tracking_uri, f"{_HAILO_HAR} of run {rid}")
        done(_check_har(har, tags.get("hefsweep.har_sha256"), rid))
        quant = _emulate_hailo(space.backend_spec(), har, xq, workdir, space.stage_timeout)
    if quant.shape[-1] != aref.shape[-1]:  # the DFC's deconv gives F*stride samples: align as the trial did
        from harness.model import load_checkpoint
        from harness.pipeline import apply_alignment, output_alignment

        try:
            alignment = output_alignment(quant, aref, load_checkpoint(space.checkpoint).config)
        except ValueError as exc:
            raise HarnessError(f"emulation of run {rid}", str(exc), "an output the trial could align") from None
        quant = apply_alignment(quant, alignment, aref.shape[-1])
    if tiling is not None:
        quant = tiling.plan.stitch(quant)
    if quant.shape != ref.shape:
        raise HarnessError(f"emulation of run {rid}", f"output shape {quant.shape}", f"the float model's {ref.shape}")
    recomputed, against = _objective(client, tracking_uri, run, space, ev, quant, ref, workdir)
    mean, worst = recomputed["si_snr_db"], recomputed["si_snr_worst_db"]
    logged = float(run.data.metrics["si_snr_db"])
    delta = abs(mean - logged)
    if not math.isfinite(mean) or delta > tolerance_db:
        raise HarnessError(
            f"emulation of run {rid}",
            f"si_snr_db {mean:.3f} dB recomputed from the stored artifact vs {logged:.3f} dB logged "
            f"(|diff| {delta:.3f} dB)",
            f"|diff| <= {tolerance_db:g} dB (--tolerance-db)",
        )
    detail = f"si_snr_db {mean:.3f} dB recomputed vs {logged:.3f} logged (|diff| {delta:.3f} <= {tolerance_db:g} dB)"
    if "substitution_si_snr_db" in recomputed:
        detail += (f"; {against}: substitution {recomputed['substitution_si_snr_db']:.2f} dB, "
                   f"quantization {recomputed['quant_si_snr_db']:.2f} dB")  # fmt: skip
    else:
        detail += f"; {against}"
    done(Check("emulation", "ok", detail))
    v = _verified(run, backend, artifact, actual, recorded, checks, tiling)
    v.metrics.update({f"{k}_recomputed": val for k, val in recomputed.items() if k in _RECOMPUTED})
    return v


#: The recomputed metrics kept with a promotion (``<name>_recomputed`` in the ledger and on the model version).
_RECOMPUTED = ("si_snr_db", "si_snr_worst_db", "substitution_si_snr_db", "quant_si_snr_db")


def _objective(
    client: Any, tracking_uri: str, run: Any, space: Any, ev: Any, quant: np.ndarray, ref: np.ndarray, workdir: Path
) -> tuple[dict[str, float], str]:
    """The trial's metrics recomputed as the sweep computes them, and what the objective was measured against.

    With the trial's ``original_reference`` (``trial.json``): the original float model's outputs from the space's
    checkpoint (its sha256 must be the trial's), then ``harness.pipeline._metrics``. Without it (a trial logged
    before the end-to-end objective): that trial's definition, quantized vs the substituted ``export/model.onnx``
    (mean over sources and clips, absolute eps, source order as output, all W samples).
    """
    from harness.cache import file_sha256
    from harness.pipeline import _metrics, original_outputs

    rid = run.info.run_id
    trial = _download(f"{run.info.artifact_uri}/trial.json", workdir / "trial", tracking_uri, f"trial.json of run {rid}")
    try:
        recorded = (json.loads(trial.read_text()).get("original_reference") or {}).get("checkpoint_sha256")
    except (ValueError, AttributeError) as exc:
        raise HarnessError(f"trial.json of run {rid}", f"unreadable ({type(exc).__name__}: {exc})",
                           "the JSON a sweep logs") from None  # fmt: skip
    if not recorded:
        from harness.metrics import si_snr

        per_clip = si_snr(quant[:, :, 0, :], ref[:, :, 0, :]).mean(axis=1)
        legacy = {"si_snr_db": float(per_clip.mean()), "si_snr_worst_db": float(per_clip.min())}
        return legacy, "legacy objective (the trial predates the end-to-end objective): quantized vs export/model.onnx"
    ckpt = Path(space.checkpoint)
    actual = file_sha256(ckpt) if ckpt.is_file() else "missing"
    if actual != recorded:
        raise HarnessError(
            f"checkpoint {ckpt}",
            f"sha256 {actual[:16]}..." if actual != "missing" else "no such file",
            f"sha256 {recorded[:16]}... as in the trial's original_reference (the objective is measured against "
            "the original float model)",
            "promote where the study's checkpoint is",
        )
    from harness.model import load_checkpoint

    orig = original_outputs(load_checkpoint(ckpt), ev.mixtures)
    metrics, _ = _metrics(quant, ref, orig, ev)
    return metrics, "vs the original float model"


def _verified(
    run: Any, backend: str, artifact: str, sha: str, versions: dict[str, str], checks: list[Check],
    tiling: _Tiling | None = None,
) -> Verified:  # fmt: skip
    m = run.data.metrics
    metrics = {k: float(m[k]) for k in _RECOMPUTED if k in m}
    study = run.data.tags["hefsweep.study"]
    tags = tiling.tags() if tiling is not None else {}
    return Verified(run.info.run_id, study, backend, artifact, sha, versions, metrics, tuple(checks), tags)


def _n_src(onnx_path: Path) -> int:
    import onnx

    model = onnx.load(str(onnx_path), load_external_data=False)
    dims = [d.dim_value for d in model.graph.output[0].type.tensor_type.shape.dim]
    if len(dims) != 4 or dims[1] < 1:
        raise HarnessError(onnx_path.name, f"output shape {dims}", "[1, n_src, 1, W]")
    return int(dims[1])
