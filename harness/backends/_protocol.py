"""The backend protocol: four verbs shaped by the harness, not by any SDK.

A backend turns an exported float ONNX model into a deployable artifact and emulates it:

``translate`` (ONNX -> backend's float representation) -> ``optimize`` (quantize with calibration data and an
override set) -> ``compile`` (deployable artifact: a quantized ONNX for ONNX Runtime, a HEF for Hailo) ->
``emulate`` (run the quantized model on numpy inputs).

Everything crossing this boundary is a path, a frozen dataclass or a numpy array -- never an SDK object -- so
every verb can run in a child process (see :mod:`harness.isolation`) and every result can be cached on disk.

Contract for implementers:
- Verbs write only inside the ``workdir`` they are given and return paths inside it.
- Verbs are deterministic for the same inputs (up to the SDK's own determinism).
- Failures raise; the caller classifies them (:mod:`harness.failures`). Backends never swallow errors.
- Arrays: calibration and emulation inputs are float32 ``[n, 1, 1, W]`` (NCHW, the model's "horizontal" 4-D
  form); emulation outputs are float32 ``[n, n_src, 1, W']`` with ``W'`` = W, or up to ``kernel_size - stride``
  samples fewer where the backend's decoder computes F·stride samples (the Hailo DFC: 15992 for 16000); the
  pipeline aligns those to the float reference (:func:`harness.pipeline.output_alignment`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol, runtime_checkable

import numpy as np

__all__ = [
    "Backend",
    "Compiled",
    "Optimized",
    "Override",
    "OverrideSet",
    "QuantSettings",
    "Segment",
    "SegmentChain",
    "Translated",
]

OverrideKind = Literal[
    "precision16",
    "negative_exponent",
    "activation_clipping",
    "optimization_level",
    "compression_level",
    "global_avgpool_reduction",
    "performance_param",
    "resources_param",
    "context_switch_param",
    "allocator_param",
]


@dataclass(frozen=True)
class Override:
    """One model-script override.

    Attributes:
        kind: What to change. ``precision16``: 16-bit activations on the matched layers;
            ``negative_exponent``: Hailo's negative-exponent fix on the matched layers; ``activation_clipping``:
            clip the matched layers' calibrated ranges (value = percentile, e.g. 99.99);
            ``optimization_level`` / ``compression_level``: global optimizer levels (value = level);
            ``global_avgpool_reduction``: split the matched avgpools' large kernels (Hailo's
            ``pre_quantization_optimization(global_avgpool_reduction, ...)``; value = a W division factor ``k``,
            written ``division_factors=[1, k]``).
            Compiler (allocator) levers, global, one simple value each, written as Hailo's model-zoo scripts write
            them (docs/allocator_levers.md): ``performance_param``: ``compiler_optimization_level`` (0, 1, 2 or
            ``"max"``); ``resources_param``: utilization caps in (0, 1] -- a number caps compute, control and
            memory alike, a string ``"compute=0.8,control=0.85,memory=0.8"`` caps the named ones
            (``max_<name>_utilization=``); ``context_switch_param``: ``mode`` (``enabled``, ``disabled`` or
            ``allowed``); ``allocator_param``: the allocator's ``timeout`` (seconds as an integer, or ``"25m"`` /
            ``"5h"``). ONNX Runtime has no allocator: it lists them as ignored.
        layers: Glob patterns over layer names (ONNX node or tensor names for ONNX Runtime, HN layer names for
            Hailo; for Hailo also ``type:<glob>`` over HN types and ``role:<name>`` over roles read from the HN
            graph, e.g. ``role:gln_var_pool``, see :mod:`harness.backends.hailo._layers`). Empty for global kinds.
        value: The kind's numeric or string argument, if any.
    """

    kind: OverrideKind
    layers: tuple[str, ...] = ()
    value: float | int | str | None = None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable form."""
        return {"kind": self.kind, "layers": list(self.layers), "value": self.value}


@dataclass(frozen=True)
class OverrideSet:
    """A named list of overrides, one value of the sweep's override-set dimension."""

    name: str
    overrides: tuple[Override, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable form."""
        return {"name": self.name, "overrides": [o.to_dict() for o in self.overrides]}


@dataclass(frozen=True)
class QuantSettings:
    """Backend-neutral quantization settings (the backend maps what it supports).

    Attributes:
        method: Calibration method: ``minmax``, ``percentile`` or ``entropy``.
        percentile: Percentile for ``percentile`` calibration.
        activation_bits: Default activation bit width (8 or 16).
        weight_bits: Weight bit width (8 or 16).
        per_channel: Per-channel weight quantization.
    """

    method: Literal["minmax", "percentile", "entropy"] = "minmax"
    percentile: float = 99.999
    activation_bits: Literal[8, 16] = 8
    weight_bits: Literal[8, 16] = 8
    per_channel: bool = True

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable form."""
        return {
            "method": self.method,
            "percentile": self.percentile,
            "activation_bits": self.activation_bits,
            "weight_bits": self.weight_bits,
            "per_channel": self.per_channel,
        }


@dataclass(frozen=True)
class Segment:
    """One segment of a split model (:mod:`harness.segments`): a consecutive piece of the exported ONNX graph.

    Attributes:
        index: 0-based position in the chain; ``count`` segments in all.
        count: How many segments the model is cut into.
        start_nodes: Where parsing starts: the graph input's name for the first segment, else the ONNX nodes that
            consume the segment's inputs (``translate_onnx_model(start_node_names=...)``).
        end_nodes: The ONNX nodes that produce the segment's outputs (``end_node_names=...``).
        inputs: ONNX tensor names the segment reads (calibration / emulation arrays are keyed by them), in order.
        outputs: ONNX tensor names the segment produces for later segments (or the model's output), in order.
        input_shapes: NCHW shape ``[1, C, 1, F]`` of each input.
        output_shapes: NCHW shape of each output.
    """

    index: int
    count: int
    start_nodes: tuple[str, ...]
    end_nodes: tuple[str, ...]
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    input_shapes: tuple[tuple[int, ...], ...]
    output_shapes: tuple[tuple[int, ...], ...]

    @property
    def label(self) -> str:
        """``seg i/K`` (1-based), as stage names and failure signatures show it."""
        return f"seg {self.index + 1}/{self.count}"

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable form."""
        return {
            "index": self.index, "count": self.count, "start_nodes": list(self.start_nodes),
            "end_nodes": list(self.end_nodes), "inputs": list(self.inputs), "outputs": list(self.outputs),
            "input_shapes": [list(s) for s in self.input_shapes], "output_shapes": [list(s) for s in self.output_shapes],
        }  # fmt: skip

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Segment:
        """The inverse of :meth:`to_dict`."""
        return cls(
            int(d["index"]), int(d["count"]), tuple(d["start_nodes"]), tuple(d["end_nodes"]), tuple(d["inputs"]),
            tuple(d["outputs"]), tuple(tuple(int(x) for x in s) for s in d["input_shapes"]),
            tuple(tuple(int(x) for x in s) for s in d["output_shapes"]),
        )  # fmt: skip


@dataclass(frozen=True)
class Translated:
    """The backend's float representation of a model.

    Attributes:
        path: The file (ONNX for ONNX Runtime, HAR for Hailo).
        input_name: Name of the single model input.
        width: The input width W.
        layers: Names a user may target with overrides (node names, tensor names or HN layers).
        inputs: For a segment (``translate(..., segment=)``): the backend's name of each of the segment's inputs, in
            :attr:`Segment.inputs` order (ONNX tensor names for ONNX Runtime, HN input layers for Hailo); empty for
            a whole model.
        outputs: For a segment: the backend's name of each output, in :attr:`Segment.outputs` order.
    """

    path: Path
    input_name: str
    width: int
    layers: tuple[str, ...] = ()
    inputs: tuple[str, ...] = ()
    outputs: tuple[str, ...] = ()


@dataclass(frozen=True)
class Optimized:
    """A quantized model.

    Attributes:
        path: The quantized model (QDQ ONNX, or quantized HAR).
        script: The model script / override description that was applied (a file), if any.
        applied: Human-readable list of overrides that took effect.
        ignored: Overrides the backend does not support, with the reason.
        info: Extra JSON-serialisable facts (e.g. tensors overridden, opset).
    """

    path: Path
    script: Path | None = None
    applied: tuple[str, ...] = ()
    ignored: tuple[str, ...] = ()
    info: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Compiled:
    """The deployable artifact (quantized ONNX or HEF) and facts about it."""

    path: Path
    info: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class SegmentChain:
    """The quantized segments of a split model, emulated one after the other (:func:`harness._stage_calls.emulate`
    takes one wherever it takes an :class:`Optimized`).

    Attributes:
        segments: The segments, in order.
        optimized: Each segment's quantized model.
        model_input: The whole model's input tensor (fed the ``[n, 1, 1, W]`` emulation inputs).
        model_output: The whole model's output tensor (returned, ``[n, n_src, 1, W']``).
    """

    segments: tuple[Segment, ...]
    optimized: tuple[Optimized, ...]
    model_input: str
    model_output: str


@runtime_checkable
class Backend(Protocol):
    """What every backend implements. See the module docstring for the contract."""

    name: str

    def versions(self) -> dict[str, str]:
        """Versions of the SDK/runtime pieces that determine results (logged as tags, part of cache keys)."""
        ...

    def translate(self, onnx_path: Path, workdir: Path, segment: Segment | None = None) -> Translated:
        """Parse the float ONNX model into the backend's representation; with ``segment``, only that piece of it
        (its inputs and outputs are the segment's boundary tensors)."""
        ...

    def optimize(
        self,
        translated: Translated,
        calibration: np.ndarray | dict[str, np.ndarray],
        overrides: OverrideSet,
        settings: QuantSettings,
        workdir: Path,
        reuse_dir: Path | None = None,
    ) -> Optimized:
        """Quantize with calibration data ``[n,1,1,W]`` and the override set; a segment's calibration is a dict of
        NCHW arrays ``[n, C, 1, F]`` keyed by its input tensor names (:attr:`Segment.inputs`).

        ``reuse_dir`` is shared by every call with the same (translated model, calibration set, method); a
        backend may keep reusable statistics there (ONNX Runtime keeps its calibration ranges) and must
        publish into it atomically.
        """
        ...

    def compile(self, optimized: Optimized, workdir: Path, levers: OverrideSet | None = None) -> Compiled:
        """Produce the deployable artifact. ``levers``: the trial's compile-side overrides (the compiler levers,
        ``harness.backends._overrides.LEVER_KINDS``), kept out of optimize by the pipeline; a backend without a
        compiler lists them as ignored in ``Compiled.info``."""
        ...

    def emulate(
        self, target: Optimized, inputs: np.ndarray | dict[str, np.ndarray]
    ) -> np.ndarray | dict[str, np.ndarray]:
        """Run the quantized model on ``[n,1,1,W]`` inputs, returning ``[n,n_src,1,W']`` (W' <= W, see above); a
        segment takes and returns dicts of NCHW arrays keyed by its input / output tensor names."""
        ...
