"""An existing ONNX as the model (``model: {onnx: PATH, sample_rate: 16000}`` in a space, ``hefsweep export --onnx``).

The user's ONNX takes the checkpoint's place: a 4-D "horizontal" model (input ``[N, 1, 1, T]``) is used as is, a
3-D Conv1d-style model (input ``[N, 1, T]`` or ``[N, T]``, with a dynamic time axis or not) is converted to the 4-D
form (:mod:`harness.onnx_model._convert`); the exact rewrites of the real-DFC issue apply as ONNX pattern rewrites
where their pattern matches (:mod:`harness.onnx_model._rewrites`), each reporting how often it fired. The
**original** float model of a trial -- the objective's reference -- is the user's ONNX itself, run in ONNX Runtime
at the trial's width (:meth:`OnnxModel.run_original`); the fidelity gate proves the converted, rewritten export
against it. The number of sources comes from the output shape, the sample rate from the space (an ONNX does not
record one). The lossy substitutions (``prelu: relu``, ``norm``, ``clamp``, ``recover_steps``, the capacity
dimensions) need the PyTorch model and are refused at space load.

A model exported at a fixed width runs at another W only when nothing but its declared shapes names that width
(the dynamo export's ``zeros_like`` constants are freed, :func:`~harness.onnx_model._convert.free_width`); else a
trial width other than its own is a one-line error.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from harness.errors import InputError

__all__ = ["ONNX_MODEL_VERSION", "OnnxModel", "OnnxModelConfig", "OnnxModelError", "Prepared"]

#: Part of the export and original stage keys of ONNX models (bump when the conversion or a rewrite changes).
ONNX_MODEL_VERSION = 1
_EXPECTED = "an ONNX model with one mixture input [N, T], [N, 1, T] or [N, 1, 1, T] and one sources output"


class OnnxModelError(InputError):
    """A user's ONNX model cannot be used (unreadable, or not convertible to the 4-D form at a width)."""


@dataclass(frozen=True)
class OnnxModelConfig:
    """What the pipeline reads of a model's configuration (as :class:`harness.model.ConvTasNetConfig` offers it)."""

    sample_rate: int
    n_src: int
    kernel_size: int  # of the last ConvTranspose (the decoder), for the backend output's alignment
    stride: int


@dataclass(frozen=True)
class Prepared:
    """A trial's 4-D export: the ONNX proto, notes on the conversion and the rewrites' fire counts."""

    proto: Any
    notes: tuple[str, ...]
    fired: dict[str, int]


class OnnxModel:
    """A user's ONNX model at the trials' widths (conversions memoized per width).

    Args:
        path: The ``.onnx`` file (external data next to it is loaded).
        sample_rate: The rate the model was trained at (from the space).
        width: A width to read the configuration (sources, decoder kernel) at: the model's own fixed width if it
            has one, else this.

    Raises:
        OnnxModelError: the file is missing or not a loadable ONNX model, or not convertible at ``width``.
    """

    def __init__(self, path: str | os.PathLike[str], sample_rate: int, width: int) -> None:
        import onnx

        self.path = Path(path)
        if not self.path.is_file():
            raise OnnxModelError(self.path, "no such file", _EXPECTED)
        try:
            proto = onnx.load(str(self.path))
        except Exception as exc:  # any failure to parse means the file is unusable
            raise OnnxModelError(self.path, f"not loadable by onnx.load ({type(exc).__name__})", _EXPECTED) from None
        self._bytes = proto.SerializeToString()
        from harness.onnx_model._convert import describe_input

        self.rank, self.fixed_width = describe_input(self._ir())
        self._base: dict[int, Any] = {}
        base = self.base(self.fixed_width or width)
        config = _decoder(base)
        shape = [d for d in base.graph.outputs[0].shape]
        self.config = OnnxModelConfig(int(sample_rate), int(shape[1]), *config)

    def _ir(self) -> Any:
        """A fresh ``ir.Model`` of the user's file (each conversion modifies its own copy)."""
        import onnx
        import onnx_ir as ir

        return ir.from_proto(onnx.ModelProto.FromString(self._bytes))

    def base(self, width: int) -> Any:
        """The model converted to the 4-D form at ``width`` (an ``ir.Model``; memoized, do not modify)."""
        if width not in self._base:
            from harness.onnx_model._convert import ConversionError, to_4d

            try:
                self._base = {width: to_4d(self._ir(), width)}  # the last width only: a large model stays single
            except Exception as exc:
                if not isinstance(exc, ConversionError) and self.fixed_width in (None, width):
                    raise  # shape inference failing at a width the model allows: a bug here, not the user's input
                seen = f"at width {width}: {_first_line(exc)}"
                raise OnnxModelError(self.path, seen, self._width_expected()) from None
        return self._base[width][0]

    def _width_expected(self) -> str:
        if self.fixed_width is not None:
            return (f"dimensions.width {self.fixed_width} (the model's fixed input width) or an ONNX with a dynamic "
                    "time axis")
        return "a graph convertible to the 4-D form (see harness/onnx_model/_convert.py)"

    def check_widths(self, widths: list[int]) -> None:
        """Convert at each of ``widths`` (bad ones -> :class:`OnnxModelError` before any trial)."""
        for width in widths:
            self.base(int(width))
            self.original(int(width))

    def original(self, width: int) -> Any:
        """The user's graph at ``width`` (batch 1, time ``width``, constants folded; not lifted): the reference."""
        from harness.onnx_model._convert import at_width

        try:
            return at_width(self._ir(), width)
        except Exception as exc:
            raise OnnxModelError(self.path, f"at width {width}: {_first_line(exc)}", self._width_expected()) from None

    def run_original(self, mixtures: np.ndarray) -> np.ndarray:
        """The user's ONNX on ``mixtures`` ``[n, W]`` in ONNX Runtime -> float32 ``[n, n_src, 1, W]``."""
        from harness.onnx_model._graph import run

        width = int(mixtures.shape[-1])
        model = self.original(width)
        shape = [int(d) for d in model.graph.inputs[0].shape]
        out = run(model, np.asarray(mixtures, np.float32).reshape(len(mixtures), *shape[1:]))
        return out.reshape(len(mixtures), -1, 1, width).astype(np.float32, copy=False)

    def prepare(self, width: int, choices: dict[str, Any]) -> Prepared:
        """The 4-D model at ``width`` with the exact rewrites ``choices`` selects (see :func:`apply_rewrites`)."""
        import onnx_ir as ir

        from harness.onnx_model._graph import infer_shapes
        from harness.onnx_model._rewrites import apply_rewrites

        self.base(width)
        model, notes = self._base[width]
        model = ir.from_proto(ir.to_proto(model))  # a copy: the memoized base stays as converted
        fired = apply_rewrites(model, choices)
        model = infer_shapes(model)
        return Prepared(ir.to_proto(model), tuple(notes), fired)


def _decoder(model: Any) -> tuple[int, int]:
    """(kernel, stride) along time of the model's last ConvTranspose ((1, 1) without one)."""
    last = [n for n in model.graph if n.op_type == "ConvTranspose"]
    if not last:
        return 1, 1
    node = last[-1]
    kernel = node.attributes.get("kernel_shape")
    weight = node.inputs[1].const_value
    k = int(kernel.value[-1]) if kernel is not None else int(weight.shape[-1]) if weight is not None else 1
    strides = node.attributes.get("strides")
    return k, int(strides.value[-1]) if strides is not None else 1


def _first_line(exc: BaseException) -> str:
    text = (str(exc).splitlines() or [""])[0][:200]
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
