"""Recovery of lossy substitutions: fine-tune the substituted model to reproduce the original model's outputs.

PReLU -> ReLU and gLN -> cLN/affine/identity change the function the weights were trained for, and separation
breaks before any quantization (on the demo checkpoint, keep/cLN is 4 dB SI-SNR from the original float outputs).
The ``recover`` stage distils the checkpoint as loaded (the teacher) into the substituted model (the student):

- Inputs: the calibration audio files (the same files as the calibration set); each step takes random crops of W
  samples (:attr:`RecoverSettings.crop`) at random offsets. No labels: the targets are the teacher's outputs on the
  same crops. (Crops of W, not shorter ones: the student's norms are per time step, but the teacher's gLN statistics
  span its whole input, so only crops of W train on the function the evaluation compares.)
- Loss: negative SNR in dB of the student's source outputs against the teacher's, per source and clip (a log loss,
  so quiet and loud crops weigh alike, and not scale-invariant, so the student keeps the teacher's output level),
  plus :attr:`RecoverSettings.feature_weight` times the same loss on the intermediate features (bottleneck output,
  every TCN block's residual and skip outputs). The first :attr:`RecoverSettings.forced_fraction` of the steps are
  teacher-forced: every block gets the teacher's block input and learns the teacher's block outputs.
- Adam, cosine learning-rate decay, gradient-norm clipping, a fixed seed; threads from
  :func:`harness.backends._ort.threads` (``HEFSWEEP_THREADS``) as in the export.
- A time budget (``recover_seconds`` in the space): training stops at the first step that starts past it
  (``stopped_early`` in the stage's metadata).

Only the lossy part of a substitution spec (:meth:`~harness.substitutions.SubstitutionSpec.without_exact`) is
trained; the exact rewrites (``prelu: maxmin``, ``gln_stats``, ``decoder``, ``mask_mul``) are applied afterwards to
the recovered weights by :func:`recovered_model`, as they carry weights over unchanged. A spec whose lossy part
changes nothing (only exact rewrites, or ``norm`` equal to the checkpoint's) needs no recovery
(:func:`needs_recovery`).

Measurements (stage metadata, trial metrics): ``recover_loss_start`` / ``recover_loss_end``, the output distillation
loss (-SNR dB) on the first W samples of the first 16 calibration files before and after;
``recover_si_snr_before_db`` / ``recover_si_snr_after_db``, the substituted-vs-original float SI-SNR on the
evaluation mixtures at width W; ``recover_seconds`` (training only); ``recover_steps_done``.
Artifacts: ``recover.log`` (a line every :attr:`RecoverSettings.log_every` steps), ``loss.json`` (the training
objective per step), ``loss.png`` (when matplotlib is installed) and ``recovered.pt`` (the student's state_dict).
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "RECOVER_VERSION",
    "RecoverResult",
    "RecoverSettings",
    "distill",
    "exact_part",
    "needs_recovery",
    "recovered_model",
    "run_recover_stage",
    "training_signals",
]

#: Part of the stage's cache key: bump when the training procedure or its outputs change.
RECOVER_VERSION = 1

log = logging.getLogger("harness.recover")

_EPS = 1e-8
_MEASURE_CLIPS = 16  # calibration files whose first W samples the start/end distillation loss is measured on
_STATE = "recovered.pt"


@dataclass(frozen=True)
class RecoverSettings:
    """How the recovery trains (every field is part of the stage's cache key).

    Attributes:
        steps: Optimizer steps (the ``recover_steps`` dimension; 0 = no recovery).
        lr: Adam's peak learning rate (cosine decay to 5 % of it over ``steps``).
        batch: Crops per step.
        crop: Samples per training crop (None or more than W: W). The teacher's norms see the whole input (gLN's
            statistics), so crops of W train on exactly the function the evaluation compares.
        seconds: Time budget; the step that would start past it is not run.
        seed: Seeds the crop sampler and torch.
        clip_grad: Gradient-norm clipping threshold.
        feature_weight: Weight of the intermediate-feature term (-SNR of the bottleneck output and of every TCN
            block's residual and skip outputs vs the teacher's, averaged); 0 = outputs only.
        forced_fraction: The first steps (this fraction of ``steps``) are teacher-forced: every TCN block gets the
            teacher's input and learns to give the teacher's outputs (block-local targets converge fast); the rest
            run the student end to end.
        log_every: A log line (and a progress call) every this many steps.
    """

    steps: int
    lr: float = 1e-3
    batch: int = 2
    crop: int | None = None
    seconds: float = 300.0
    seed: int = 0
    clip_grad: float = 5.0
    feature_weight: float = 0.3
    forced_fraction: float = 0.2
    log_every: int = 25

    def key_params(self) -> dict[str, Any]:
        """The settings as cache-key parameters."""
        return asdict(self)


@dataclass(frozen=True)
class RecoverResult:
    """What a distillation run measured."""

    steps_done: int
    stopped_early: bool
    seconds: float
    losses: tuple[float, ...]
    loss_start: float
    loss_end: float
    si_snr_before_db: float | None
    si_snr_after_db: float | None
    forced_steps: int = 0

    def metrics(self) -> dict[str, float]:
        """The trial metrics (``recover_*``)."""
        out = {
            "recover_loss_start": self.loss_start,
            "recover_loss_end": self.loss_end,
            "recover_seconds": self.seconds,
            "recover_steps_done": float(self.steps_done),
        }
        if self.si_snr_before_db is not None and self.si_snr_after_db is not None:
            out["recover_si_snr_before_db"] = self.si_snr_before_db
            out["recover_si_snr_after_db"] = self.si_snr_after_db
        return out


# -- which specs need it --------------------------------------------------------------------------------------------
def exact_part(spec: Any) -> Any:
    """The exact rewrites of ``spec`` alone (``prelu: maxmin`` and the topology forms; no norm or clamp)."""
    from harness.substitutions import SubstitutionSpec

    return SubstitutionSpec(
        prelu="maxmin" if spec.prelu == "maxmin" else "keep",
        gln_stats=spec.gln_stats,
        decoder=spec.decoder,
        mask_mul=spec.mask_mul,
    )


def needs_recovery(model: Any, spec: Any) -> bool:
    """Whether the lossy part of ``spec`` changes ``model`` (False for exact rewrites and a norm left as it is)."""
    from harness.substitutions import SubstitutionSpec, apply_rules, rules_for

    lossy = spec.without_exact()
    if lossy == SubstitutionSpec():
        return False
    import copy

    return bool(apply_rules(copy.deepcopy(model), rules_for(lossy)))


def recovered_model(model: Any, spec: Any, state_path: Path) -> tuple[Any, list[str]]:
    """The substituted model for ``spec`` with the recovered weights of its lossy part, then its exact rewrites.

    Args:
        model: The original model (not mutated).
        spec: The trial's full substitution spec.
        state_path: The recover stage's ``recovered.pt``.

    Returns:
        ``(model, fired)`` as :func:`~harness.substitutions.apply_substitutions` returns them.
    """
    import torch

    from harness.substitutions import apply_substitutions

    student, fired = apply_substitutions(model, spec.without_exact())
    student.load_state_dict(torch.load(state_path, map_location="cpu", weights_only=True))
    student.eval()
    out, exact_fired = apply_substitutions(student, exact_part(spec))
    return out, [*fired, *exact_fired]


# -- data ---------------------------------------------------------------------------------------------------------
def training_signals(files: Sequence[Path], sample_rate: int, width: int) -> list[np.ndarray]:
    """The calibration files as float32 signals of at least ``width`` samples (a shorter file is repeated to
    ``width``, as the calibration set's ``repeat`` fill does)."""
    from harness.audio import fit_length, read_audio

    out = []
    for f in files:
        x = read_audio(f, sample_rate)
        out.append(np.asarray(fit_length(x, width, "repeat") if len(x) < width else x, dtype=np.float32))
    return out


# -- training -----------------------------------------------------------------------------------------------------
def _neg_snr(est: Any, ref: Any, whole: bool = False) -> Any:
    """Mean of -SNR(est vs ref) in dB: per source and clip on ``[N, n_src, 1, T]`` outputs, or (``whole``) per clip
    over a whole feature map (all channels and frames) ``[N, C, 1, F]``."""
    import torch

    if whole:
        est, ref = est.flatten(1), ref.flatten(1)
    num = ref.pow(2).sum(dim=-1) + _EPS
    den = (est - ref).pow(2).sum(dim=-1) + _EPS
    return -(10.0 * torch.log10(num / den)).mean()


class _Features:
    """Forward hooks that collect the bottleneck output and every TCN block's (residual, skip) outputs."""

    def __init__(self, model: Any) -> None:
        self.values: list[Any] = []
        masker = model.masker
        self.handles = [masker.bottleneck.register_forward_hook(self._hook)]
        self.handles += [block.register_forward_hook(self._hook) for block in masker.TCN]

    def _hook(self, module: Any, args: Any, out: Any) -> None:
        self.values += [t for t in (out if isinstance(out, tuple) else (out,)) if t is not None]

    def take(self) -> list[Any]:
        out, self.values = self.values, []
        return out

    def close(self) -> None:
        for h in self.handles:
            h.remove()


def _forced_loss(student: Any, teacher: Any, x: Any) -> Any:
    """Teacher-forced block losses: the bottleneck and every TCN block of the student on the teacher's inputs."""
    import torch

    with torch.no_grad():
        t_tf = teacher.enc_activation(teacher.encoder(x))
        t_out = teacher.masker.bottleneck(t_tf)
        stream, targets = [t_out], []
        for block in teacher.masker.TCN:
            res, skip = block(stream[-1])
            targets.append((res, skip))
            stream.append(stream[-1] + res)
    s_tf = student.enc_activation(student.encoder(x))
    terms = [_neg_snr(student.masker.bottleneck(s_tf), t_out, whole=True)]
    for block, inp, (res, skip) in zip(student.masker.TCN, stream, targets, strict=False):
        s_res, s_skip = block(inp)
        terms.append(_neg_snr(s_res, res, whole=True))
        if skip is not None and s_skip is not None:
            terms.append(_neg_snr(s_skip, skip, whole=True))
    return sum(terms) / len(terms)


def _outputs(model: Any, x: np.ndarray) -> np.ndarray:
    """``model`` on ``[n, W]`` mixtures -> ``[n, n_src, 1, W]`` (:func:`harness.model.separate`)."""
    from harness.model import separate

    return separate(model, x)


def _loss_on(student: Any, x: np.ndarray, target: np.ndarray) -> float:
    import torch

    return float(_neg_snr(torch.from_numpy(_outputs(student, x)), torch.from_numpy(target)))


def _si_snr_db(est: np.ndarray, ref: np.ndarray) -> float:
    from harness.metrics import si_snr

    return float(si_snr(est[:, :, 0, :], ref[:, :, 0, :]).mean())


def distill(
    teacher: Any,
    student: Any,
    signals: Sequence[np.ndarray],
    width: int,
    settings: RecoverSettings,
    *,
    eval_mixtures: np.ndarray | None = None,
    on_log: Callable[[str], None] | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> RecoverResult:
    """Train ``student`` (in place) to reproduce ``teacher`` on random crops of ``signals``.

    Args:
        teacher: The original model (not trained).
        student: The substituted model (trained in place, left in eval mode).
        signals: Training audio, float32 1-D arrays of at least ``width`` samples.
        width: The trial's input width W (crops are at most W; the start/end loss is measured on the first W
            samples of the first signals).
        settings: Steps, learning rate, crops, budget, seed.
        eval_mixtures: Held-out mixtures ``[m, W']`` for the before/after SI-SNR of student vs teacher.
        on_log: Called with each log line (every ``log_every`` steps, and at the start and end).
        clock: Time source of the budget (tests pass a fake one).

    Returns:
        The :class:`RecoverResult`.
    """
    import torch

    from harness.backends._ort import threads

    if threads():
        torch.set_num_threads(threads())
    say = on_log or (lambda line: None)
    torch.manual_seed(settings.seed)
    rng = np.random.default_rng(settings.seed)
    teacher.eval()  # the teacher runs under no_grad only: its parameters (shared with other trials) are not touched

    crop = min(settings.crop or width, width)
    measure = np.stack([x[:width] for x in signals[:_MEASURE_CLIPS]])
    measure_target = _outputs(teacher, measure)
    eval_target = _outputs(teacher, eval_mixtures) if eval_mixtures is not None else None
    student.eval()
    loss_start = _loss_on(student, measure, measure_target)
    before = _si_snr_db(_outputs(student, eval_mixtures), eval_target) if eval_target is not None else None
    say(
        f"recover: {settings.steps} steps, lr {settings.lr:g}, batch {settings.batch} x {crop} "
        f"samples from {len(signals)} files, W {width}, budget {settings.seconds:g} s; "
        f"loss {loss_start:.3f}" + (f", student vs teacher SI-SNR {before:.2f} dB" if before is not None else "")
    )

    params = list(student.parameters())
    for p in params:
        p.requires_grad_(True)
    opt = torch.optim.Adam(params, lr=settings.lr)
    floor = 0.05
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt,
        lambda s: floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * min(s, settings.steps) / max(settings.steps, 1))),
    )
    losses: list[float] = []
    start = clock()
    stopped = False
    use_features = settings.feature_weight > 0
    t_feats = _Features(teacher) if use_features else None
    s_feats = _Features(student) if use_features else None
    forced_steps = int(settings.forced_fraction * settings.steps)
    student.train()
    for step in range(settings.steps):
        if clock() - start >= settings.seconds:
            stopped = True
            say(f"recover: time budget {settings.seconds:g} s reached after {step} of {settings.steps} steps")
            break
        rows = rng.integers(0, len(signals), settings.batch)
        offs = [int(rng.integers(0, len(signals[r]) - crop + 1)) for r in rows]
        batch = np.stack([signals[r][o : o + crop] for r, o in zip(rows, offs, strict=True)])
        x = torch.from_numpy(batch)[:, None, None, :]
        if step < forced_steps:
            loss = _forced_loss(student, teacher, x)
            for hooks in (t_feats, s_feats):
                if hooks is not None:
                    hooks.take()  # the forced pass's features are not the free-running ones
        else:
            with torch.no_grad():
                target = teacher(x)
            loss = _neg_snr(student(x), target)
        if step >= forced_steps and t_feats is not None and s_feats is not None:
            pairs = list(zip(s_feats.take(), t_feats.take(), strict=True))
            loss = loss + settings.feature_weight * sum(_neg_snr(a, b, whole=True) for a, b in pairs) / len(pairs)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, settings.clip_grad)
        opt.step()
        sched.step()
        losses.append(float(loss.detach()))
        done = step + 1
        if done % settings.log_every == 0 or done == settings.steps:
            recent = float(np.mean(losses[-settings.log_every :]))
            lr = sched.get_last_lr()[0]
            say(f"recover: step {done}/{settings.steps} loss {recent:.3f} lr {lr:.2e} {clock() - start:.1f} s")
    seconds = clock() - start
    for hooks in (t_feats, s_feats):
        if hooks is not None:
            hooks.close()
    student.eval()
    loss_end = _loss_on(student, measure, measure_target)
    after = _si_snr_db(_outputs(student, eval_mixtures), eval_target) if eval_target is not None else None
    say(
        f"recover: done, {len(losses)} steps in {seconds:.1f} s; loss {loss_start:.3f} -> {loss_end:.3f}"
        + (f", student vs teacher SI-SNR {before:.2f} -> {after:.2f} dB" if after is not None else "")
    )
    return RecoverResult(
        len(losses), stopped, seconds, tuple(losses), loss_start, loss_end, before, after, min(forced_steps, len(losses))
    )


# -- the stage ----------------------------------------------------------------------------------------------------
def run_recover_stage(
    model: Any,
    spec: Any,
    files: Sequence[Path],
    sample_rate: int,
    width: int,
    eval_mixtures: np.ndarray,
    settings: RecoverSettings,
    workdir: Path,
    progress: Callable[[str], None] | None = None,
    student: Any = None,
) -> dict[str, Any]:
    """The ``recover`` stage body: distil ``model`` into its lossy substitution and write the stage's files.

    ``student`` (default ``model``) is the model the lossy substitution is applied to and trained: a resized model
    (``mode: frontier``, :func:`harness.model.resize_model`) learns from the original ``model`` as its teacher (with
    ``feature_weight`` and ``forced_fraction`` 0: its feature maps have other shapes).

    Writes ``recovered.pt`` (the student's state_dict, loaded by :func:`recovered_model`), ``recover.log``,
    ``loss.json`` and, with matplotlib installed, ``loss.png`` into ``workdir``.

    Returns:
        The stage metadata: ``metrics`` (``recover_*``), ``fired``, ``steps_done``, ``stopped_early``, ``plot``.
    """
    from harness.substitutions import apply_substitutions

    report = progress or (lambda msg: None)
    lines: list[str] = []
    logfile = (workdir / "recover.log").open("w")

    def on_log(line: str) -> None:
        lines.append(line)
        logfile.write(line + "\n")
        logfile.flush()
        log.info("%s", line)
        if "step " in line:
            report(f"recover {line.split('step ')[1].split(' ')[0]}")

    try:
        student, fired = apply_substitutions(model if student is None else student, spec.without_exact())
        signals = training_signals(files, sample_rate, width)
        result = distill(model, student, signals, width, settings, eval_mixtures=eval_mixtures, on_log=on_log)
    finally:
        logfile.close()
    import torch

    torch.save(student.state_dict(), workdir / _STATE)
    (workdir / "loss.json").write_text(
        json.dumps({
            "steps": list(range(1, result.steps_done + 1)),
            "loss": list(result.losses),
            "unit": "-SNR dB",
            "teacher_forced_steps": result.forced_steps,  # block-local objective before, end-to-end after
        })
    )
    plot = _plot(result, workdir / "loss.png", title=f"recover {'/'.join(fired)} W={width}")
    return {
        "fired": fired,
        "metrics": result.metrics(),
        "steps_done": result.steps_done,
        "stopped_early": result.stopped_early,
        "n_files": len(signals),
        "plot": plot,
    }


def _plot(result: RecoverResult, path: Path, title: str) -> bool:
    """The training loss curve as a PNG (False, no file, when matplotlib is not installed)."""
    try:
        import matplotlib

        matplotlib.use("Agg", force=False)
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    if not result.losses:
        return False
    loss = np.asarray(result.losses)
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot(np.arange(1, len(loss) + 1), loss, lw=0.6, alpha=0.5, label="step")
    k = max(1, len(loss) // 50)
    if k > 1:
        smooth = np.convolve(loss, np.ones(k) / k, mode="valid")
        ax.plot(np.arange(k, len(loss) + 1), smooth, lw=1.5, label=f"mean of {k}")
    if result.forced_steps:
        ax.axvline(result.forced_steps + 0.5, color="grey", ls=":", lw=1, label="teacher-forced | end to end")
    ax.set_xlabel("step")
    ax.set_ylabel("loss (-SNR vs teacher, dB)")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return True
