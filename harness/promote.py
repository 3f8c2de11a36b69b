"""Verified promotion: register a trial's deployable artifact in the MLflow Model Registry, move an alias to it,
roll the alias back, and pull a registered artifact with its hash checked.

Promotion re-checks the artifact *as stored* before registering it:

1. **sha256** -- the compiled artifact (``hefsweep.artifact``, e.g. ``compiled/model.qdq.onnx`` or
   ``compiled/model.hef``) is downloaded from the run and hashed; it must equal ``hefsweep.artifact_sha256``.
2. **versions** -- the run's ``hefsweep.version.*`` tags must equal ``get_backend(name, **options).versions()``
   here (``allow_version_mismatch`` turns a mismatch into a recorded warning).
3. **eval set + emulation** -- the evaluation set is rebuilt from the study's search space (the parent run's
   ``space`` param -> ``data.evaluation``, ``eval_clips``; the run's ``width``), its key must equal the run's
   ``hefsweep.eval_set``; then the quantized model, the original float model (the checkpoint of the study's space,
   its sha256 checked against the trial's ``trial.json`` ``original_reference``, run in torch as the sweep did) and
   the substituted float ``export/model.onnx`` are run on it and the objective is recomputed exactly as the sweep
   computes it (``harness.pipeline._metrics``: per clip, true length, relative eps, best permutation, quantized vs
   original float; mean over clips), which must be within ``tolerance_db`` of the logged ``si_snr_db``; the
   substitution and quantization losses are recomputed alongside. A trial logged before the end-to-end objective
   (no ``original_reference``) is checked against its own definition (quantized vs ``export/model.onnx``). ORT: the
   downloaded QDQ ONNX itself runs in ONNX Runtime. Hailo: the logged
   quantized HAR (``optimize/model_quantized.har``), whose sha256 must be the trial's ``hefsweep.har_sha256``, is
   emulated through the backend in an isolated worker; when
   the DFC is not importable here promotion is refused unless ``skip_emulation`` (then versions and emulation
   are recorded as skipped and only the hash vouches for the artifact).
   A time-tiled run (:mod:`harness.tiling`): its ``compiled/tiling.json`` must hash to the trial's ``trial.json``
   ``tiling.sha256`` (check ``tiling``); the quantized model then runs on the plan's tiles (aligned against
   ``export_tile/model.onnx`` as in the trial), stitched, and is scored on the whole clips; the version is tagged
   ``hefsweep.tiling`` / ``hefsweep.tiling_sha256`` and :func:`pull` writes ``tiling.json`` beside the artifact once
   its hash matches.

Registration: ``create_registered_model`` (if missing) + ``create_model_version(source=<run artifact URI>/<artifact
path>, run_id=...)`` with tags ``hefsweep.sha256``, ``hefsweep.study``, ``hefsweep.run``, ``hefsweep.si_snr_db``,
``hefsweep.version.*`` ...; a run already registered under the model is reused rather than registered twice.
The source is the artifact *file*: MLflow 3.17's ``download_artifacts("models:/<name>@<alias>")`` of a
single-file version yields an empty folder, so :func:`pull` downloads the version's ``source`` URI instead
(works for ``file:`` and ``mlflow-artifacts:`` sources alike).

Ledger (see :class:`Ledger`): every promotion and rollback appends one JSON entry, kept in MLflow on a
dedicated run (tag ``hefsweep.role=ledger``) in the experiment of the model's first promotion, found again
through the registered model's tag ``hefsweep.ledger_run``. Each entry is its own immutable artifact
``entries/<seq>-<id>.json`` (appends never overwrite each other); ``ledger.jsonl`` on the same run is the whole
ledger rewritten after every append, and ``<root>/ledger/<model>.jsonl`` is a local copy of it. An entry holds
who (user@host), when (UTC ISO), action, model, alias, version, previous_version, run_id, study, sha256, source,
metrics and the checks performed (with their status: ok / allowed / skipped). A rollback undoes the latest
promotion of that alias not yet undone (its ``undoes`` field names it), so repeated rollbacks walk back in time.

Order of effects: nothing touches the registry until every check passed; then the version is registered (or
reused), the alias is moved, and the ledger entry is written -- if writing the entry fails, the alias is put
back where it was, so an alias move without its ledger entry is not left behind.

Concurrency: safe for sequential use from any number of machines sharing the tracking server. Two promotions
or rollbacks of the *same model* at the same moment are not serialized: no ledger entry is lost (each is its
own artifact), but the alias ends wherever the later ``set_registered_model_alias`` put it, both entries may
carry the same ``seq`` and the same ``previous_version``, and the ``ledger.jsonl`` view may miss the other's
entry until the next append. Serialize promotions per model (one operator or one CI job).
"""

from __future__ import annotations

import getpass
import json
import logging
import math
import os
import re
import shutil
import socket
import tempfile
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from harness.cache import file_sha256
from harness.errors import HarnessError
from harness.tracking import open_client

__all__ = [
    "Check",
    "Ledger",
    "LEDGER_FORMAT",
    "Promotion",
    "Pulled",
    "Verified",
    "open_client",
    "parse_model_ref",
    "promote",
    "pull",
    "rollback",
    "verify_run",
]

log = logging.getLogger("harness.promote")

LEDGER_FORMAT = "hefsweep.ledger/1"
_LEDGER_TAG = "hefsweep.ledger_run"
_HAILO_HAR = "optimize/model_quantized.har"
_SAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")


# -- results ------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Check:
    """One verification step: ``status`` is ``ok``, ``skipped`` or ``allowed`` (a mismatch let through)."""

    name: str
    status: str
    detail: str

    def to_dict(self) -> dict[str, str]:
        """JSON form (for the ledger)."""
        return {"name": self.name, "status": self.status, "detail": self.detail}


@dataclass(frozen=True)
class Verified:
    """What :func:`verify_run` established about a run's stored artifact."""

    run_id: str
    study: str
    backend: str
    artifact: str
    sha256: str
    versions: dict[str, str]
    metrics: dict[str, float]
    checks: tuple[Check, ...]
    tiling: dict[str, str] = field(default_factory=dict)  # a tiled run's tiling.json: version tags (see _Tiling)


@dataclass(frozen=True)
class Promotion:
    """The outcome of :func:`promote` or :func:`rollback`.

    Attributes:
        action: ``promote``, ``rollback`` or ``unchanged`` (the alias already pointed at this run's version).
        entry: The ledger entry appended (``None`` when unchanged).
        ledger_size: Entries in the ledger after the append.
        reused: The run was already registered under the model; its version was reused, not duplicated.
    """

    action: str
    model: str
    alias: str
    version: str
    previous_version: str | None
    run_id: str
    study: str
    sha256: str
    checks: tuple[Check, ...] = ()
    metrics: dict[str, float] = field(default_factory=dict)
    entry: dict[str, Any] | None = None
    ledger_run_id: str | None = None
    ledger_size: int = 0
    local_ledger: Path | None = None
    reused: bool = False


@dataclass(frozen=True)
class Pulled:
    """A verified artifact written by :func:`pull`."""

    model: str
    version: str
    path: Path
    sha256: str
    run_id: str | None
    tags: dict[str, str]
    extra: tuple[Path, ...] = ()  # files pulled with the artifact (a tiled run's tiling.json)


# -- MLflow access --------------------------------------------------------------------------------------------
def _first_line(exc: BaseException, limit: int = 200) -> str:
    text = str(exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:limit]


@contextmanager
def _store(obj: str, expected: str, missing: str = "not found") -> Iterator[None]:
    """Map MLflow store errors inside the block to one-line :class:`HarnessError` about ``obj``."""
    from mlflow.exceptions import MlflowException

    try:
        yield
    except MlflowException as exc:
        if exc.error_code == "RESOURCE_DOES_NOT_EXIST" or "not found" in str(exc).lower():
            raise HarnessError(obj, missing, expected) from None
        raise HarnessError(obj, f"MLflow error ({_first_line(exc)})", expected) from None


def _download(uri: str, dst: Path, tracking_uri: str, what: str) -> Path:
    """Download one artifact URI (``file:``, ``mlflow-artifacts:`` ...) into ``dst``; returns the local path."""
    import mlflow

    try:
        local = Path(mlflow.artifacts.download_artifacts(artifact_uri=uri, dst_path=str(dst), tracking_uri=tracking_uri))
    except Exception as exc:  # noqa: BLE001 - a missing or unreadable artifact is a store problem, not a bug
        raise HarnessError(what, f"could not download {uri} ({type(exc).__name__}: {_first_line(exc)})",
                           "a readable artifact") from None  # fmt: skip
    if not local.is_file():
        raise HarnessError(what, f"{uri} is not a file", "a single artifact file")
    return local


def _check_sha256(local: Path, expected: str, obj: str, recorded: str) -> str:
    """``local``'s sha256, which must be ``expected`` (``recorded`` says where that was recorded)."""
    actual = file_sha256(local)
    if actual != expected:
        raise HarnessError(obj, f"sha256 {actual[:16]}...", f"{expected[:16]}... {recorded}")
    return actual


def _who() -> str:
    try:
        user = getpass.getuser()
    except Exception:  # noqa: BLE001 - no login name in containers without a passwd entry
        user = "unknown"
    return f"{user}@{socket.gethostname()}"


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def _quote_ok(value: str, what: str) -> str:
    if "'" in value or "\\" in value or "\n" in value:
        raise HarnessError(f"{what} {value!r}", "contains a quote, backslash or newline", "a plain name")
    return value


# -- choosing and verifying a run -----------------------------------------------------------------------------
def _best_run(client: Any, study: str) -> Any:
    _quote_ok(study, "study")
    with _store(f"study {study!r}", "an MLflow experiment written by `hefsweep sweep`"):
        exp = client.get_experiment_by_name(study)
    if exp is None:
        raise HarnessError(f"study {study!r}", "no MLflow experiment of that name", "a study swept into this store")
    with _store(f"study {study!r}", "searchable runs"):
        runs = client.search_runs(
            [exp.experiment_id],
            filter_string=(
                f"tags.`hefsweep.study` = '{study}' and tags.`hefsweep.role` = 'trial' "
                "and tags.`hefsweep.status` = 'ok' and tags.`hefsweep.compiled` = 'true'"
            ),
            order_by=["metrics.si_snr_db DESC"],
            max_results=1,
        )
    if not runs:
        raise HarnessError(f"study {study!r}", "has no run with hefsweep.status=ok", "at least one successful trial")
    return runs[0]


def _get_run(client: Any, run_id: str) -> Any:
    with _store(f"run {run_id}", "the id of a trial run in this tracking store"):
        return client.get_run(run_id)


def _require_ok(run: Any) -> None:
    tags = run.data.tags
    rid = run.info.run_id
    if tags.get("hefsweep.role") != "trial":
        role = tags.get("hefsweep.role", "no hefsweep.role tag")
        raise HarnessError(f"run {rid}", f"is not a trial run ({role})", "the run of a sweep trial")
    status = tags.get("hefsweep.status")
    if status != "ok":
        seen = f"status {status}" if status else "no hefsweep.status (running or interrupted)"
        if tags.get("hefsweep.signature"):
            seen += f" ({tags['hefsweep.signature']})"
        raise HarnessError(f"run {rid}", seen, "a trial with hefsweep.status=ok")
    for key in ("hefsweep.artifact", "hefsweep.artifact_sha256", "hefsweep.study"):
        if not tags.get(key):
            raise HarnessError(f"run {rid}", f"has no {key} tag", "a trial logged by `hefsweep sweep`")
    if "si_snr_db" not in run.data.metrics:
        raise HarnessError(f"run {rid}", "has no si_snr_db metric", "a trial logged by `hefsweep sweep`")


def _space_of(client: Any, run: Any, required: bool = True) -> Any:
    """The study's search space, from the parent run's ``space`` param (``None`` if absent and not required)."""
    from harness.space import load_space
    from harness.tracking import run_space_file

    try:
        path = run_space_file(client, run, "its data.evaluation is needed to re-run emulation")
    except HarnessError as exc:
        if not required:
            return None
        raise HarnessError(exc.obj, exc.seen, exc.expected, "promote where the sweep's files are, or pass --skip-emulation") from None
    return load_space(path)


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
    """Re-check a trial's stored artifact (see the module docstring). Downloads go to ``workdir``.

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


def _options_from_tags(backend: str, tags: dict[str, str]) -> dict[str, Any]:
    """Backend options when the space file is not at hand: the Hailo target from the run's version tags."""
    arch = tags.get("hefsweep.version.hw_arch")
    return {"hw_arch": arch} if backend == "hailo" and arch else {}


def _verified(
    run: Any, backend: str, artifact: str, sha: str, versions: dict[str, str], checks: list[Check],
    tiling: _Tiling | None = None,
) -> Verified:  # fmt: skip
    m = run.data.metrics
    metrics = {k: float(m[k]) for k in _RECOMPUTED if k in m}
    study = run.data.tags["hefsweep.study"]
    tags = tiling.tags() if tiling is not None else {}
    return Verified(run.info.run_id, study, backend, artifact, sha, versions, metrics, tuple(checks), tags)


@dataclass(frozen=True)
class _Tiling:
    """A tiled run's ``compiled/tiling.json`` (:mod:`harness.tiling`), checked against the sha256 its trial recorded
    (``trial.json`` ``tiling.sha256``); promotion tags the version with it so :func:`pull` brings it back verified."""

    plan: Any
    sha256: str
    check: Check

    ARTIFACT = "compiled/tiling.json"

    @classmethod
    def of_run(cls, run: Any, workdir: Path, tracking_uri: str) -> _Tiling | None:
        """None for an untiled run (no ``tiling`` in ``trial.json``, or a tile width that ran untiled).

        Raises:
            HarnessError: ``tiling.json`` missing, changed since the trial, or not a plan for the run's width.
        """
        from harness.tiling import TilePlan

        if run.data.params.get("tile_width") in (None, "None", ""):
            return None
        rid, base = run.info.run_id, run.info.artifact_uri
        trial = _download(f"{base}/trial.json", workdir / "trial_tiling", tracking_uri, f"trial.json of run {rid}")
        try:
            info = json.loads(trial.read_text()).get("tiling") or {}
        except (ValueError, AttributeError) as exc:
            raise HarnessError(f"trial.json of run {rid}", f"unreadable ({type(exc).__name__}: {exc})",
                               "the JSON a sweep logs") from None  # fmt: skip
        if not info.get("tiled"):
            return None
        obj = f"artifact {cls.ARTIFACT} of run {rid}"
        local = _download(f"{base}/{cls.ARTIFACT}", workdir / "tiling", tracking_uri, obj)
        sha = _check_sha256(local, str(info.get("sha256")), obj, "as recorded in the trial's trial.json (tiling.sha256)")
        try:
            plan = TilePlan.from_json(json.loads(local.read_text()))
        except ValueError as exc:
            raise HarnessError(obj, str(exc), "the tiling plan the trial ran") from None
        if plan.width != int(run.data.params["width"]):
            raise HarnessError(obj, f"width {plan.width}", f"the run's width {run.data.params['width']}")
        detail = (f"{sha[:16]}... matches the trial's; {plan.n_tiles} tiles of {plan.tile_width} "
                  f"(context {plan.context}, hop {plan.hop}) per {plan.width}-sample clip")  # fmt: skip
        return cls(plan, sha, Check("tiling", "ok", detail))

    def inputs(self, ev: Any, base: str, workdir: Path, tracking_uri: str, rid: str) -> tuple[np.ndarray, np.ndarray]:
        """The evaluation clips as this plan's tiles ``[n * n_tiles, 1, 1, T]`` and the float tile model's outputs on
        them (``export_tile/model.onnx``: what a shorter backend output is aligned against, as in the trial)."""
        from harness.backends._ort import run_onnx

        tiles = np.ascontiguousarray(self.plan.split(ev.mixtures)[:, None, None, :], dtype=np.float32)
        onnx_path = _download(f"{base}/export_tile/model.onnx", workdir / "export_tile", tracking_uri,
                              f"export_tile/model.onnx of run {rid}")  # fmt: skip
        return tiles, run_onnx(onnx_path, tiles)

    def tags(self) -> dict[str, str]:
        """The model version's tags naming the recipe and its hash."""
        return {"hefsweep.tiling": self.ARTIFACT, "hefsweep.tiling_sha256": self.sha256}


def _pull_tiling(source: str, tags: dict[str, str], tmp: Path, tracking_uri: str, what: str) -> Path | None:
    """A tiled version's ``tiling.json`` (beside its artifact), downloaded into ``tmp`` and checked against the
    version's ``hefsweep.tiling_sha256``; None for an untiled version."""
    expected = tags.get("hefsweep.tiling_sha256")
    if not expected:
        return None
    uri = f"{source.rsplit('/', 1)[0]}/{Path(tags.get('hefsweep.tiling', 'tiling.json')).name}"
    local = _download(uri, tmp / "tiling", tracking_uri, f"tiling.json of {what}")
    _check_sha256(local, expected, f"tiling.json {uri} of {what}",
                  "as recorded on the version (hefsweep.tiling_sha256; the stored file was changed; refused)")  # fmt: skip
    return local


class _Bundle:
    """A split run's bundle (:mod:`harness.bundle`): its manifest (already checked against the run's
    ``hefsweep.artifact_sha256``) and every segment file, downloaded and checked against the manifest."""

    def __init__(self, manifest: dict[str, Any], root: Path, check: Check) -> None:
        self.manifest, self.root, self.check = manifest, root, check

    @classmethod
    def of_run(cls, artifact: str, local: Path, base: str, workdir: Path, tracking_uri: str, rid: str) -> _Bundle | None:
        """None unless the run's artifact is a ``bundle.json``.

        Raises:
            HarnessError: a segment file missing or changed (its sha256 differs from the manifest's).
        """
        from harness.bundle import fetch_files, is_bundle, read_bundle, verify_files

        if not is_bundle(artifact):
            return None
        manifest = read_bundle(local)
        folder = artifact.rsplit("/", 1)[0]
        root = workdir / "bundle"

        def download(rel: str, dest: Path) -> Path:
            return _download(f"{base}/{folder}/{rel}", dest, tracking_uri, f"{folder}/{rel} of run {rid}")

        fetch_files(manifest, download, root)
        files = verify_files(manifest, root, f"run {rid}")
        n = len(manifest["segments"])
        return cls(manifest, root, Check("bundle", "ok", f"{n} segments, {len(files)} files match bundle.json"))

    def emulate(self, spec: Any, inputs: np.ndarray, workdir: Path, timeout: float) -> np.ndarray:
        """The chain of the bundle's segments on ``inputs`` (:func:`harness.bundle.emulate_bundle`)."""
        from harness.bundle import emulate_bundle

        return emulate_bundle(spec, self.manifest, self.root, inputs, workdir, timeout)


def _pull_bundle(source: str, local: Path, tmp: Path, tracking_uri: str, what: str) -> list[tuple[Path, str]]:
    """A split version's segment files (beside its verified ``bundle.json``), downloaded into ``tmp`` and checked
    against the manifest: (local file, path relative to the manifest); empty for a version that is not a bundle."""
    from harness.bundle import fetch_files, is_bundle, read_bundle, verify_files

    if not is_bundle(source):
        return []
    manifest = read_bundle(local)
    folder = source.rsplit("/", 1)[0]
    root = tmp / "bundle"

    def download(rel: str, dest: Path) -> Path:
        return _download(f"{folder}/{rel}", dest, tracking_uri, f"{rel} of {what}")

    fetch_files(manifest, download, root)
    return [(root / rel, rel) for rel, _ in verify_files(manifest, root, what)]


def _place_bundle(files: list[tuple[Path, str]], out: Path) -> list[Path]:
    """Write verified bundle files into ``out`` at their paths relative to the manifest (``seg1/model.hef`` ...)."""
    written = []
    for src, rel in files:
        dest = out / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        staging = dest.with_name(f".{dest.name}.{os.getpid()}.partial")
        shutil.copyfile(src, staging)
        os.replace(staging, dest)
        written.append(dest)
    return written


def _n_src(onnx_path: Path) -> int:
    import onnx

    model = onnx.load(str(onnx_path), load_external_data=False)
    dims = [d.dim_value for d in model.graph.output[0].type.tensor_type.shape.dim]
    if len(dims) != 4 or dims[1] < 1:
        raise HarnessError(onnx_path.name, f"output shape {dims}", "[1, n_src, 1, W]")
    return int(dims[1])


# -- the ledger ------------------------------------------------------------------------------------------------
class Ledger:
    """The promotion ledger of one registered model, kept in MLflow (see the module docstring).

    Args:
        client: The MLflow client.
        tracking_uri: Its URI (for artifact downloads).
        model: Registered model name.
        run_id: The ledger run.
        root: Folder of the local copy (``<root>/ledger/<model>.jsonl``); ``None`` for no local copy.
    """

    def __init__(self, client: Any, tracking_uri: str, model: str, run_id: str, root: Path | None) -> None:
        self.client = client
        self.tracking_uri = tracking_uri
        self.model = model
        self.run_id = run_id
        self.root = root

    @property
    def local_path(self) -> Path | None:
        """The local copy's path."""
        return None if self.root is None else Path(self.root) / "ledger" / f"{_SAFE_NAME.sub('_', self.model)}.jsonl"

    @classmethod
    def find(cls, client: Any, tracking_uri: str, model: str, root: Path | None) -> Ledger | None:
        """The model's ledger, or ``None`` when it has none (never promoted by hefsweep)."""
        with _store(f"registered model {model!r}", "a model in this registry"):
            rm = client.get_registered_model(model)
        run_id = (rm.tags or {}).get(_LEDGER_TAG)
        return cls(client, tracking_uri, model, run_id, root) if run_id else None

    @classmethod
    def open(cls, client: Any, tracking_uri: str, model: str, experiment_id: str, root: Path | None) -> Ledger:
        """The model's ledger, created (in ``experiment_id``) and linked from the model on first use."""
        found = cls.find(client, tracking_uri, model, root)
        if found is not None:
            return found
        with _store(f"ledger of {model!r}", "a writable tracking store"):
            runs = client.search_runs(
                [experiment_id],
                filter_string=(
                    "tags.`hefsweep.role` = 'ledger' "
                    f"and tags.`hefsweep.ledger.model` = '{_quote_ok(model, 'model')}'"
                ),
                max_results=1,
            )
            if runs:
                run_id = runs[0].info.run_id
            else:
                run = client.create_run(
                    experiment_id,
                    run_name=f"ledger-{model}",
                    tags={"hefsweep.role": "ledger", "hefsweep.ledger.model": model},
                )
                run_id = run.info.run_id
                client.set_terminated(run_id, "FINISHED")
            client.set_registered_model_tag(model, _LEDGER_TAG, run_id)
        return cls(client, tracking_uri, model, run_id, root)

    def entries(self) -> list[dict[str, Any]]:
        """All entries, oldest first."""
        what = f"ledger run {self.run_id} of {self.model!r}"
        with _store(what, "the ledger run named by the model's hefsweep.ledger_run tag"):
            files = [a.path for a in self.client.list_artifacts(self.run_id, "entries") if not a.is_dir]
        if not files:
            return []
        with tempfile.TemporaryDirectory() as tmp:
            with _store(f"ledger run {self.run_id}", "readable ledger entries"):
                local = Path(self.client.download_artifacts(self.run_id, "entries", tmp))
            out = [json.loads(p.read_text()) for p in sorted(local.glob("*.json"))]
        return sorted(out, key=lambda e: (int(e.get("seq", 0)), str(e.get("when", "")), str(e.get("id", ""))))

    def append(self, entry: dict[str, Any]) -> list[dict[str, Any]]:
        """Append ``entry`` (``seq`` and ``id`` are filled in); rewrite ``ledger.jsonl`` and the local copy.

        Returns:
            All entries after the append.
        """
        entries = self.entries()
        entry = {"format": LEDGER_FORMAT, "seq": len(entries) + 1, "id": uuid.uuid4().hex[:12], **entry}
        entries.append(entry)
        text = "".join(json.dumps(e, sort_keys=True) + "\n" for e in entries)
        with tempfile.TemporaryDirectory() as tmp:
            one = Path(tmp) / f"{entry['seq']:06d}-{entry['id']}.json"
            one.write_text(json.dumps(entry, indent=2, sort_keys=True))
            whole = Path(tmp) / "ledger.jsonl"
            whole.write_text(text)
            with _store(f"ledger run {self.run_id} of {self.model!r}", "a writable artifact store"):
                self.client.log_artifact(self.run_id, str(whole))  # the view first: the entry is the commit
                self.client.log_artifact(self.run_id, str(one), "entries")
        if self.local_path is not None:
            try:
                self.local_path.parent.mkdir(parents=True, exist_ok=True)
                tmp_path = self.local_path.with_name(f".{self.local_path.name}.{os.getpid()}")
                tmp_path.write_text(text)
                os.replace(tmp_path, self.local_path)
            except OSError as exc:  # the copy is a convenience; the ledger in MLflow is already written
                log.warning("could not write the local ledger copy %s: %s", self.local_path, exc)
        return entries


# -- promote / rollback / pull -----------------------------------------------------------------------------------
def _alias_version(client: Any, model: str, alias: str) -> str | None:
    from mlflow.exceptions import MlflowException

    try:
        return str(client.get_model_version_by_alias(model, alias).version)
    except MlflowException as exc:
        if exc.error_code == "RESOURCE_DOES_NOT_EXIST" or "not found" in str(exc).lower():
            return None
        seen = f"MLflow error ({_first_line(exc)})"
        raise HarnessError(f"alias {alias!r} of {model!r}", seen, "a readable registry") from None


def _ensure_model(client: Any, model: str) -> None:
    from mlflow.exceptions import MlflowException

    try:
        client.get_registered_model(model)
        return
    except MlflowException as exc:
        if exc.error_code != "RESOURCE_DOES_NOT_EXIST" and "not found" not in str(exc).lower():
            seen = f"MLflow error ({_first_line(exc)})"
            raise HarnessError(f"registered model {model!r}", seen, "a usable registry") from None
    try:
        client.create_registered_model(model, description="Promoted by `hefsweep promote` (verified artifacts).")
    except MlflowException as exc:
        if exc.error_code != "RESOURCE_ALREADY_EXISTS":  # created meanwhile by another promoter: fine
            seen = f"cannot create ({_first_line(exc)})"
            raise HarnessError(f"registered model {model!r}", seen, "a writable registry") from None


def _version_tags(v: Verified) -> dict[str, str]:
    tags = {
        "hefsweep.sha256": v.sha256,
        "hefsweep.study": v.study,
        "hefsweep.run": v.run_id,
        "hefsweep.backend": v.backend,
        "hefsweep.artifact": v.artifact,
        "hefsweep.checks": ", ".join(f"{c.name}={c.status}" for c in v.checks),
        **{f"hefsweep.version.{k}": val for k, val in v.versions.items()},
        **v.tiling,
    }
    tags.update({f"hefsweep.{k}": f"{val:.4f}" for k, val in v.metrics.items()})
    return tags


def _await_ready(client: Any, mv: Any, model: str) -> Any:
    import time

    deadline = time.monotonic() + 60
    while str(getattr(mv, "status", "READY")) not in ("READY", "ModelVersionStatus.READY"):
        if time.monotonic() > deadline:
            raise HarnessError(f"version {mv.version} of {model!r}", f"status {mv.status} after 60 s", "READY")
        time.sleep(0.5)
        mv = client.get_model_version(model, mv.version)
    return mv


def promote(
    tracking_uri: str,
    *,
    study: str | None = None,
    run_id: str | None = None,
    name: str | None = None,
    alias: str = "champion",
    tolerance_db: float = 0.1,
    allow_version_mismatch: bool = False,
    skip_emulation: bool = False,
    root: Path | None = None,
    progress: Callable[[str], None] | None = None,
) -> Promotion:
    """Verify a trial's stored artifact, register it and move ``alias`` to it; append a ledger entry.

    Args:
        tracking_uri: MLflow tracking (and registry) URI.
        study: Promote this study's best ok trial (highest ``si_snr_db``) ...
        run_id: ... or this run (exactly one of the two).
        name: Registered model name (default ``hefsweep-<study>``).
        alias: The alias to move.
        tolerance_db: Allowed |recomputed - logged| mean SI-SNR.
        allow_version_mismatch: Let a backend version mismatch through (recorded in the ledger).
        skip_emulation: Do not re-run emulation (recorded in the ledger); needed for Hailo runs where the DFC is
            not installed.
        root: Folder of the local ledger copy.
        progress: Called with a line of text per step (for the CLI).

    Returns:
        The :class:`Promotion` (``action`` ``unchanged`` when the alias already pointed at the run's version).

    Raises:
        HarnessError: see :func:`verify_run`; also an unknown run/study, a study without ok runs, an unreachable
            store. Nothing is registered unless every check passed.
    """
    if (study is None) == (run_id is None):
        raise HarnessError("promote", "needs exactly one of --study and --run", "--study NAME or --run RUN_ID")
    if not (tolerance_db >= 0 and math.isfinite(tolerance_db)):
        raise HarnessError("--tolerance-db", tolerance_db, "a finite number >= 0")
    say = progress or (lambda s: None)
    client = open_client(tracking_uri)
    run = _best_run(client, study) if study is not None else _get_run(client, str(run_id))
    _require_ok(run)
    rid = run.info.run_id
    tags = run.data.tags
    say(
        f"run {rid} (study {tags['hefsweep.study']}, trial #{tags.get('hefsweep.trial', '?')}, "
        f"backend {run.data.params.get('backend', '?')}): {tags['hefsweep.artifact']}, "
        f"si_snr_db {run.data.metrics['si_snr_db']:.3f}"
    )
    with tempfile.TemporaryDirectory(prefix="hefsweep-promote-") as tmp:
        v = verify_run(
            client, tracking_uri, run, Path(tmp),
            tolerance_db=tolerance_db, allow_version_mismatch=allow_version_mismatch,
            skip_emulation=skip_emulation, progress=lambda c: say(f"  [{c.status}] {c.name:<9} {c.detail}"),
        )  # fmt: skip
    model = name or f"hefsweep-{v.study}"

    _ensure_model(client, model)
    previous = _alias_version(client, model, alias)
    with _store(f"registered model {model!r}", "a usable registry"):
        same = [
            mv
            for mv in client.search_model_versions(f"name = '{_quote_ok(model, 'model')}' and run_id = '{rid}'")
            if (mv.tags or {}).get("hefsweep.sha256") == v.sha256 and mv.source == f"{run.info.artifact_uri}/{v.artifact}"
        ]
    if same and str(same[0].version) == previous:
        return Promotion("unchanged", model, alias, previous, previous, rid, v.study, v.sha256, v.checks, v.metrics)
    with _store(f"registered model {model!r}", "a writable registry"):
        if same:
            mv = same[0]
        else:
            mv = client.create_model_version(
                model, source=f"{run.info.artifact_uri}/{v.artifact}", run_id=rid, tags=_version_tags(v),
                description=f"{v.artifact} of run {rid} (study {v.study})", await_creation_for=0,
            )  # fmt: skip
            mv = _await_ready(client, mv, model)
    version = str(mv.version)
    ledger = Ledger.open(client, tracking_uri, model, run.info.experiment_id, root)
    entry = {
        "when": _now(),
        "who": _who(),
        "action": "promote",
        "model": model,
        "alias": alias,
        "version": version,
        "previous_version": previous,
        "run_id": rid,
        "study": v.study,
        "backend": v.backend,
        "artifact": v.artifact,
        "source": mv.source,
        "sha256": v.sha256,
        "versions": v.versions,
        "metrics": v.metrics,
        "checks": [c.to_dict() for c in v.checks],
    }
    entries = _move_alias_and_log(client, ledger, model, alias, version, previous, entry)
    return Promotion("promote", model, alias, version, previous, rid, v.study, v.sha256, v.checks, v.metrics,
                     entries[-1], ledger.run_id, len(entries), ledger.local_path, reused=bool(same))  # fmt: skip


def _move_alias_and_log(
    client: Any, ledger: Ledger, model: str, alias: str, version: str, previous: str | None, entry: dict[str, Any]
) -> list[dict[str, Any]]:
    """Move the alias, then append the ledger entry; if the append fails, put the alias back."""
    with _store(f"alias {alias!r} of {model!r}", "a writable registry"):
        client.set_registered_model_alias(model, alias, version)
    try:
        entries = ledger.append(entry)
    except BaseException:
        try:
            if previous is None:
                client.delete_registered_model_alias(model, alias)
            else:
                client.set_registered_model_alias(model, alias, previous)
        except Exception:  # noqa: BLE001, S110 - the original error is the one to report
            pass
        raise
    with _store(f"version {version} of {model!r}", "a writable registry"):
        done = {"promote": "promoted", "rollback": "rolled_back_to"}[entry["action"]]
        client.set_model_version_tag(model, version, f"hefsweep.{done}.{alias}", f"{entry['when']} by {entry['who']}")
    return entries


def rollback(tracking_uri: str, name: str, *, alias: str = "champion", root: Path | None = None) -> Promotion:
    """Move ``alias`` back to the version it pointed to before the last promotion not yet rolled back.

    Repeated rollbacks walk further back through the ledger (each rollback undoes one promotion).

    Raises:
        HarnessError: unknown model, a model without a hefsweep ledger, nothing to roll back (no promotion, or the
            last one had no previous version), or an alias that was moved outside hefsweep since.
    """
    client = open_client(tracking_uri)
    ledger = Ledger.find(client, tracking_uri, name, root)
    if ledger is None:
        raise HarnessError(f"registered model {name!r}", "has no hefsweep ledger", "a model promoted by hefsweep")
    entries = [e for e in ledger.entries() if e.get("alias") == alias]
    undone = {e.get("undoes") for e in entries if e.get("action") == "rollback"}
    active = [e for e in entries if e.get("action") == "promote" and e.get("id") not in undone]
    if not active:
        raise HarnessError(f"alias {alias!r} of {name!r}", "no promotion left to roll back in the ledger",
                           "a promotion made with `hefsweep promote`")  # fmt: skip
    last = active[-1]
    target = last.get("previous_version")
    if target is None:
        raise HarnessError(
            f"alias {alias!r} of {name!r}",
            f"nothing to roll back to: version {last['version']} was the first promoted to it",
            "an earlier version recorded in the ledger",
        )
    current = _alias_version(client, name, alias)
    if current != str(last["version"]):
        raise HarnessError(
            f"alias {alias!r} of {name!r}",
            f"points to version {current} but the ledger's last promotion set version {last['version']} "
            "(moved outside hefsweep?)",
            "the alias where hefsweep left it",
        )
    with _store(f"version {target} of {name!r}", "a version that still exists in the registry", "no longer exists"):
        mv = client.get_model_version(name, str(target))
    vt = mv.tags or {}
    entry = {
        "when": _now(),
        "who": _who(),
        "action": "rollback",
        "model": name,
        "alias": alias,
        "version": str(target),
        "previous_version": str(current),
        "undoes": last["id"],
        "run_id": mv.run_id,
        "study": vt.get("hefsweep.study"),
        "artifact": vt.get("hefsweep.artifact"),
        "source": mv.source,
        "sha256": vt.get("hefsweep.sha256"),
        "metrics": {k.removeprefix("hefsweep."): float(val) for k, val in vt.items()
                    if k in ("hefsweep.si_snr_db", "hefsweep.si_snr_worst_db")},  # fmt: skip
        "checks": [{"name": "alias", "status": "ok", "detail": f"alias was on version {current} as the ledger says"}],
    }
    entries = _move_alias_and_log(client, ledger, name, alias, str(target), str(current), entry)
    return Promotion("rollback", name, alias, str(target), str(current), str(mv.run_id), str(entry["study"]),
                     str(entry["sha256"]), (), entry["metrics"], entries[-1], ledger.run_id, len(entries),
                     ledger.local_path)  # fmt: skip


def parse_model_ref(ref: str, default_alias: str = "champion") -> tuple[str, str | None, str | None]:
    """``NAME@alias`` / ``NAME/version`` / ``NAME`` (= ``NAME@<default_alias>``) -> (name, alias, version).

    Raises:
        HarnessError: an empty name, alias or version.
    """
    name, alias, version = ref, None, None
    if "@" in ref:
        name, alias = ref.rsplit("@", 1)
    elif "/" in ref and ref.rsplit("/", 1)[1].isdigit():
        name, version = ref.rsplit("/", 1)
    else:
        alias = default_alias
    if not name or (alias is not None and not alias):
        raise HarnessError(f"model reference {ref!r}", "empty name or alias", "NAME[@alias|/version]")
    return name, alias, version


def pull(tracking_uri: str, ref: str, out: Path) -> Pulled:
    """Download a registered version's artifact, verify its sha256 against the version's tag, write it to ``out``.

    The file is downloaded and hashed in a temporary folder and moved into ``out`` only when the hash matches;
    on any error ``out`` is left as it was (not even created).

    Raises:
        HarnessError: unknown model, alias or version; a version without a ``hefsweep.sha256`` tag; a hash
            mismatch (tampered artifact); an unreachable store; ``out`` is a file.
    """
    name, alias, version = parse_model_ref(ref)
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise HarnessError(out, "is a file", "a folder to write the artifact into")
    client = open_client(tracking_uri)
    with _store(f"registered model {name!r}", "a model in this registry (see `hefsweep promote`)"):
        client.get_registered_model(name)
    if alias is not None:
        with _store(f"alias {alias!r} of model {name!r}", "an alias set by `hefsweep promote`"):
            mv = client.get_model_version_by_alias(name, alias)
    else:
        with _store(f"version {version} of model {name!r}", "an existing version number"):
            mv = client.get_model_version(name, str(version))
    tags = dict(mv.tags or {})
    expected = tags.get("hefsweep.sha256")
    what = f"{name} version {mv.version}"
    if not expected:
        raise HarnessError(what, "has no hefsweep.sha256 tag", "a version registered by `hefsweep promote`")
    with tempfile.TemporaryDirectory(prefix="hefsweep-pull-") as tmp:
        local = _download(mv.source, Path(tmp), tracking_uri, f"artifact of {what}")
        actual = _check_sha256(local, expected, f"artifact {mv.source} of {what}",
                               "as recorded on the version (the stored artifact was changed; refused)")  # fmt: skip
        tiling = _pull_tiling(mv.source, tags, Path(tmp), tracking_uri, what)  # verified before anything is written
        segments = _pull_bundle(mv.source, local, Path(tmp), tracking_uri, what)  # a split version's files, verified
        out.mkdir(parents=True, exist_ok=True)
        written = []
        for src in (local, *([tiling] if tiling is not None else [])):
            dest = out / src.name
            staging = out / f".{src.name}.{os.getpid()}.partial"
            shutil.copyfile(src, staging)
            os.replace(staging, dest)
            written.append(dest)
        written += _place_bundle(segments, out)
    return Pulled(name, str(mv.version), written[0], actual, mv.run_id, tags, tuple(written[1:]))
