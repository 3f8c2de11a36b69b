"""Entry points that run inside isolated child processes (see :mod:`harness.isolation`).

Each takes a backend name, plain paths and dataclasses, constructs the backend in the child, and writes its
results into the given working directory. Nothing here imports torch.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from harness import testing
from harness.backends import BackendSpec, Compiled, Optimized, OverrideSet, QuantSettings, Translated

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


def translate(backend: BackendSpec, onnx_path: Path, workdir: Path) -> Translated:
    """``Backend.translate`` in a child."""
    _inject("translate")
    return backend.create().translate(onnx_path, workdir)


def optimize(
    backend: BackendSpec,
    translated: Translated,
    calibration_npy: Path,
    overrides: OverrideSet,
    settings: QuantSettings,
    workdir: Path,
    reuse_dir: Path | None,
) -> Optimized:
    """``Backend.optimize`` in a child; calibration is read from an ``.npy`` file ``[n,1,1,W]``."""
    _inject("optimize")
    data = np.load(calibration_npy)
    return backend.create().optimize(translated, data, overrides, settings, workdir, reuse_dir=reuse_dir)


def compile_(backend: BackendSpec, optimized: Optimized, workdir: Path) -> Compiled:
    """``Backend.compile`` in a child."""
    _inject("compile")
    return backend.create().compile(optimized, workdir)


def emulate(backend: BackendSpec, optimized: Optimized, inputs_npy: Path, out_npy: Path) -> tuple[int, ...]:
    """``Backend.emulate`` in a child; writes outputs to ``out_npy`` and returns their shape.

    Raises:
        NonFiniteOutput: the outputs contain NaN or Inf.
    """
    _inject("emulate")
    out = backend.create().emulate(optimized, np.load(inputs_npy))
    bad = int(np.size(out) - np.count_nonzero(np.isfinite(out)))
    if bad:
        raise NonFiniteOutput(f"{bad} non-finite values in the emulated outputs of shape {tuple(out.shape)}")
    np.save(out_npy, out.astype(np.float32))
    return tuple(out.shape)


def noise(backend: BackendSpec, float_onnx: Path, optimized_path: Path, inputs: np.ndarray, workdir: Path) -> dict[str, Any]:
    """:func:`harness.layer_noise.noise_stage` in a child (ONNX Runtime runs the quantized model, as in emulate)."""
    from harness.layer_noise import noise_stage

    _inject("noise")
    return noise_stage(backend.name, float_onnx, optimized_path, inputs, workdir)
