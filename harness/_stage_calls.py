"""Entry points that run inside isolated child processes (see :mod:`harness.isolation`).

Each takes a backend name, plain paths and dataclasses, constructs the backend in the child, and writes its
results into the given working directory. Nothing here imports torch.

Split models (:mod:`harness.segments`): ``translate`` takes the segment, ``optimize`` reads a segment's calibration
from an ``.npz`` (one array per input tensor), and ``emulate`` takes a
:class:`~harness.backends._protocol.SegmentChain` wherever it takes an ``Optimized``: it runs the segments in order
in this worker, passing each tensor from its producer to its consumers (the host-side glue). A segment's failure is
re-raised as the same exception class with ``[seg i/K] `` before its message, which
:func:`harness.failures.classify` moves into the stage name (``emulate[seg 2/3]``).
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from harness import testing
from harness.backends import BackendSpec, Compiled, Optimized, OverrideSet, QuantSettings, Translated
from harness.backends._protocol import Segment, SegmentChain

__all__ = ["compile_", "emulate", "optimize", "translate"]


def _inject(stage: str) -> None:
    """Fault injection for reliability tests: ``HEFSWEEP_INJECT="optimize:sleep:3,compile:segv"``.

    Actions: ``sleep:<s>`` (a slow stage), ``hang`` (never returns), ``segv`` (dies by SIGSEGV), ``raise:<Class>``
    (raises an exception of that class name). Unset in normal use.
    """
    spec = os.environ.get("HEFSWEEP_INJECT", "")
    for item in filter(None, (x.strip() for x in spec.split(","))):
        where, _, action = item.partition(":")
        if where != stage:
            continue
        kind, _, arg = action.partition(":")
        if kind == "sleep":
            time.sleep(float(arg or 1))
        elif kind == "hang":
            testing.hang()
        elif kind == "segv":
            testing.crash_segfault()
        elif kind == "raise":
            testing.raise_error(arg or "InjectedFault", f"injected fault in {stage}")


class NonFiniteOutput(ArithmeticError):
    """The emulated model produced NaN or Inf."""


def translate(backend: BackendSpec, onnx_path: Path, workdir: Path, segment: Segment | None = None) -> Translated:
    """``Backend.translate`` in a child (of one segment of the model when ``segment`` is given)."""
    _inject("translate")
    if segment is None:
        return backend.create().translate(onnx_path, workdir)
    return backend.create().translate(onnx_path, workdir, segment=segment)


def optimize(
    backend: BackendSpec,
    translated: Translated,
    calibration_npy: Path,
    overrides: OverrideSet,
    settings: QuantSettings,
    workdir: Path,
    reuse_dir: Path | None,
) -> Optimized:
    """``Backend.optimize`` in a child; calibration is read from an ``.npy`` file ``[n,1,1,W]`` (or, for a segment,
    an ``.npz`` with one array per input tensor, keyed by tensor name)."""
    _inject("optimize")
    if Path(calibration_npy).suffix == ".npz":
        with np.load(calibration_npy) as z:
            data = {name: z[name] for name in z.files}
        return _optimize_segment(backend.create(), translated, data, overrides, settings, workdir, reuse_dir)
    data = np.load(calibration_npy)
    return backend.create().optimize(translated, data, overrides, settings, workdir, reuse_dir=reuse_dir)


def _optimize_segment(
    backend: Any, translated: Translated, data: dict[str, np.ndarray], overrides: OverrideSet,
    settings: QuantSettings, workdir: Path, reuse_dir: Path | None,
) -> Optimized:  # fmt: skip
    """A segment's optimize with the trial's override set: an override that names nothing *in this segment* (a gLN
    pool override on the decoder's segment) is left out here and listed in ``info["absent_overrides"]``; the
    pipeline fails the trial only when an override matches in no segment (:mod:`harness.segments`). Backends raise
    ``OverrideTargetNotFound`` before any work, so each retry costs only the check."""
    import dataclasses

    from harness.backends import OverrideTargetNotFound

    absent: list[dict[str, Any]] = []
    kept = list(overrides.overrides)
    while True:
        try:
            result = backend.optimize(translated, data, OverrideSet(overrides.name, tuple(kept)), settings, workdir,
                                      reuse_dir=reuse_dir)  # fmt: skip
            break
        except OverrideTargetNotFound as exc:
            hit = [ov for ov in kept if exc.pattern in ov.layers]
            if not hit:
                raise
            for ov in hit:
                kept.remove(ov)
                absent.append({"override": ov.to_dict(), "message": str(exc)})
    ignored = tuple(f"{a['override']['kind']} on {a['override']['layers']}: no layer of this segment matches" for a in absent)
    return dataclasses.replace(result, ignored=result.ignored + ignored, info={**result.info, "absent_overrides": absent})


def compile_(backend: BackendSpec, optimized: Optimized, workdir: Path, levers: OverrideSet | None = None) -> Compiled:
    """``Backend.compile`` in a child (with the trial's compiler levers, when it has any)."""
    _inject("compile")
    if levers is None or not levers.overrides:
        return backend.create().compile(optimized, workdir)
    return backend.create().compile(optimized, workdir, levers=levers)


def emulate(
    backend: BackendSpec, optimized: Optimized | SegmentChain, inputs_npy: Path, out_npy: Path
) -> tuple[int, ...]:
    """``Backend.emulate`` in a child (of every segment in turn for a :class:`SegmentChain`); writes outputs to
    ``out_npy`` and returns their shape.

    Raises:
        NonFiniteOutput: the outputs contain NaN or Inf.
    """
    _inject("emulate")
    inputs = np.load(inputs_npy)
    if isinstance(optimized, SegmentChain):
        out = _emulate_chain(backend.create(), optimized, inputs)
    else:
        out = _finite(backend.create().emulate(optimized, inputs))
    np.save(out_npy, out.astype(np.float32))
    return tuple(out.shape)


def _finite(out: Any) -> Any:
    bad = int(np.size(out) - np.count_nonzero(np.isfinite(out)))
    if bad:
        raise NonFiniteOutput(f"{bad} non-finite values in the emulated outputs of shape {tuple(out.shape)}")
    return out


def _emulate_chain(backend: Any, chain: SegmentChain, inputs: np.ndarray) -> np.ndarray:
    """Segment 1 on ``inputs``, each later segment on the tensors earlier ones produced; the model's output.

    The last segment's output is the model's output in the backend's layout (Hailo: ``[n, n_src, 1, W']``)."""
    values: dict[str, np.ndarray] = {chain.model_input: inputs.astype(np.float32)}
    for seg, opt in zip(chain.segments, chain.optimized, strict=True):
        try:
            out = backend.emulate(opt, {t: values[t] for t in seg.inputs})
            for name, arr in out.items():
                _finite(arr)
        except Exception as exc:  # noqa: BLE001 - re-raised with the segment named, same class name
            raise _named(exc, seg) from exc
        values.update(out)
    return values[chain.model_output]


def _named(exc: Exception, seg: Segment) -> Exception:
    """``exc``'s class name and message with ``[seg i/K] `` in front (classified as ``<stage>[seg i/K]``)."""
    cls = type(type(exc).__name__, (Exception,), {})
    return cls(f"[{seg.label}] {exc}")


def noise(backend: BackendSpec, float_onnx: Path, optimized_path: Path, inputs: np.ndarray, workdir: Path) -> dict[str, Any]:
    """:func:`harness.layer_noise.noise_stage` in a child (ONNX Runtime runs the quantized model, as in emulate)."""
    from harness.layer_noise import noise_stage

    _inject("noise")
    return noise_stage(backend.name, float_onnx, optimized_path, inputs, workdir)
