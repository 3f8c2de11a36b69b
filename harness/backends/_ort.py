"""The embedded default backend: ONNX Runtime static QDQ quantization.

- translate: checks the float ONNX model (ONNX checker, single input ``[1,1,1,W]``) and lists its node and
  tensor names as override targets.
- optimize: ``onnxruntime.quantization.quantize_static`` in QDQ format with per-channel weights. Calibration
  ranges are cached per (model, calibration set, method) through ``calibration_cache_path`` so that changing
  only overrides or types re-quantizes in about a second. ``entropy`` is computed with ``create_calibrator``
  and real histogram settings, because ``quantize_static`` leaves a single threshold candidate and silently
  returns MinMax ranges (FINDINGS.md, warning 3).
- compile: loads the QDQ model in an ONNX Runtime session with full graph optimizations (the step that fuses
  QDQ into QLinear kernels and would fail on an unrunnable graph) and keeps the QDQ ONNX as the artifact.
- emulate: runs the QDQ model in ONNX Runtime on the CPU.
- segments (:mod:`harness.segments`): ``translate(..., segment=)`` extracts the segment's subgraph
  (``onnx.utils.Extractor`` between its input and output tensors); optimize then calibrates on a dict of its inputs
  and emulate takes and returns dicts keyed by tensor name.

Does not import torch (it runs in isolated child processes).
"""

from __future__ import annotations

import collections
import json
import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from harness.backends._overrides import LEVER_KINDS, resolve_targets
from harness.backends._protocol import Compiled, Optimized, OverrideSet, QuantSettings, Segment, Translated

__all__ = ["OrtBackend"]

_ENTROPY_BINS = 512


class _ArrayReader:
    """``CalibrationDataReader`` over an ``[n,1,1,W]`` array (supports ``CalibStridedMinMax``)."""

    def __init__(self, input_name: str, data: np.ndarray) -> None:
        self.input_name = input_name
        self.data = data
        self.start, self.end = 0, len(data)
        self._it: Any = None

    def __len__(self) -> int:
        return len(self.data)

    def set_range(self, start_index: int, end_index: int) -> None:
        self.start, self.end = start_index, end_index
        self._it = None

    def get_next(self) -> dict[str, np.ndarray] | None:
        if self._it is None:
            self._it = iter(range(self.start, self.end))
        i = next(self._it, None)
        if i is None:
            return None
        if isinstance(self.data, _Feeds):
            return {k: v[i : i + 1].astype(np.float32) for k, v in self.data.arrays.items()}
        return {self.input_name: self.data[i : i + 1].astype(np.float32)}


class _Feeds:
    """A segment's calibration: several named arrays with one row per calibration clip."""

    def __init__(self, arrays: dict[str, np.ndarray]) -> None:
        self.arrays = arrays
        lengths = {len(v) for v in arrays.values()}
        if len(lengths) != 1:
            raise ValueError(f"calibration arrays of different lengths: { {k: v.shape for k, v in arrays.items()} }")
        self._n = lengths.pop()

    def __len__(self) -> int:
        return self._n

    def rewind(self) -> None:
        self._it = None


#: quantize_static's extra options that it passes on to the calibrator, under the calibrator's names
#: (``onnxruntime/quantization/quantize.py``, ``calib_extra_options_keys``).
_CALIB_OPTIONS = (
    ("CalibTensorRangeSymmetric", "symmetric"),
    ("CalibMovingAverage", "moving_average"),
    ("CalibMovingAverageConstant", "averaging_constant"),
    ("CalibMaxIntermediateOutputs", "max_intermediate_outputs"),
    ("CalibPercentile", "percentile"),
)


def _calibrate(model_path: Path, reader: Any, method: Any, extra: dict[str, Any], cache: Path, workdir: Path) -> None:
    """The calibration ``quantize_static`` runs itself, written as its calibration cache (``cache``).

    The same calibrator on the same model and clips, with the same arguments (the op types ``quantize_static``
    quantizes by default, its ``Calib*`` extra options), so the ranges are the same; only the calibrator's session
    differs: ONNX Runtime's default execution order on the augmented model (a ReduceMin/ReduceMax pair on every
    activation) runs the reductions last and keeps every activation alive through the whole run (paper-size
    Conv-TasNet at W=16000: 1.6 GB per run, and as much again for the second run's memory pattern), where the
    priority-based order reduces each activation right after it is produced (0.2 GB). The execution order
    changes which buffers hold the tensors, not a kernel or a value (``tests/unit/backends/test_ort_memory.py``).
    """
    import onnxruntime as ort
    from onnxruntime.quantization.calibrate import create_calibrator, save_tensors_data
    from onnxruntime.quantization.registry import QDQRegistry, QLinearOpsRegistry

    augmented = workdir / "augmented.onnx"
    calibrator = create_calibrator(
        Path(model_path),
        list(set(QLinearOpsRegistry) | set(QDQRegistry)),
        augmented_model_path=str(augmented),
        calibrate_method=method,
        extra_options={key: extra[name] for name, key in _CALIB_OPTIONS if name in extra},
    )
    try:
        calibrator.infer_session = None  # the default-order session create_calibrator made (never run)
        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL  # as CalibraterBase's session
        opts.execution_order = ort.ExecutionOrder.PRIORITY_BASED
        calibrator.infer_session = ort.InferenceSession(str(augmented), opts, providers=calibrator.execution_providers)
        calibrator.collect_data(reader)
        save_tensors_data(calibrator.compute_data(), cache)
    finally:
        calibrator.infer_session = None
        augmented.unlink(missing_ok=True)


def _reader(input_name: str, data: np.ndarray) -> Any:
    from onnxruntime.quantization import CalibrationDataReader

    class Reader(_ArrayReader, CalibrationDataReader):  # type: ignore[misc]
        pass

    return Reader(input_name, data)


class OrtBackend:
    """ONNX Runtime static quantization backend (CPU). See the module docstring."""

    name = "ort"

    @staticmethod
    def diagnose(failure: Any, translated: Translated) -> str | None:
        """The model layer a classified failure is about (ONNX node / tensor names are used as they are)."""
        layer = failure.groups.get("layer")
        return layer if layer in translated.layers else None

    def versions(self) -> dict[str, str]:
        import onnx
        import onnxruntime

        return {"onnxruntime": onnxruntime.__version__, "onnx": onnx.__version__}

    # -- translate ---------------------------------------------------------------------------------------
    def translate(self, onnx_path: Path, workdir: Path, segment: Segment | None = None) -> Translated:
        import onnx

        if segment is not None:
            return self._translate_segment(onnx_path, workdir, segment)
        model = onnx.load(str(onnx_path))
        onnx.checker.check_model(model)
        inputs = [i for i in model.graph.input if i.name not in {t.name for t in model.graph.initializer}]
        if len(inputs) != 1:
            raise ValueError(f"{onnx_path}: {len(inputs)} inputs; expected exactly one")
        dims = [d.dim_value for d in inputs[0].type.tensor_type.shape.dim]
        if len(dims) != 4 or dims[:3] != [1, 1, 1] or dims[3] <= 0:
            raise ValueError(f"{onnx_path}: input shape {dims}; expected [1, 1, 1, W]")
        workdir.mkdir(parents=True, exist_ok=True)
        out = workdir / "translated.onnx"
        shutil.copyfile(onnx_path, out)
        names = [n.name for n in model.graph.node if n.name]
        tensors = [o for n in model.graph.node for o in n.output]
        layers = tuple(dict.fromkeys([*names, inputs[0].name, *tensors]))
        return Translated(path=out, input_name=inputs[0].name, width=dims[3], layers=layers)

    def _translate_segment(self, onnx_path: Path, workdir: Path, segment: Segment) -> Translated:
        """The segment's subgraph between its input and output tensors, as its own ONNX model."""
        import onnx
        import onnx.utils

        workdir.mkdir(parents=True, exist_ok=True)
        out = workdir / "translated.onnx"
        model = onnx.load(str(onnx_path))
        model = onnx.shape_inference.infer_shapes(model)  # onnx >= 1.17: Extractor no longer infers them
        sub = onnx.utils.Extractor(model).extract_model(list(segment.inputs), list(segment.outputs))
        onnx.checker.check_model(sub)
        onnx.save(sub, str(out))
        names = [n.name for n in sub.graph.node if n.name]
        tensors = [o for n in sub.graph.node for o in n.output]
        layers = tuple(dict.fromkeys([*names, *segment.inputs, *tensors]))
        width = int(segment.input_shapes[0][-1])
        return Translated(out, segment.inputs[0], width, layers, inputs=segment.inputs, outputs=segment.outputs)

    # -- optimize ----------------------------------------------------------------------------------------
    def optimize(
        self,
        translated: Translated,
        calibration: np.ndarray | dict[str, np.ndarray],
        overrides: OverrideSet,
        settings: QuantSettings,
        workdir: Path,
        reuse_dir: Path | None = None,
    ) -> Optimized:
        import onnx
        from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

        if isinstance(calibration, dict):
            if set(calibration) != set(translated.inputs):
                raise ValueError(f"calibration arrays for {list(calibration)}; expected {list(translated.inputs)}")
            calibration = _Feeds({t: calibration[t] for t in translated.inputs})  # type: ignore[assignment]
        elif calibration.ndim != 4 or calibration.shape[1:3] != (1, 1) or calibration.shape[3] != translated.width:
            raise ValueError(
                f"calibration array shape {calibration.shape}; expected [n, 1, 1, {translated.width}]"
            )
        workdir.mkdir(parents=True, exist_ok=True)
        model = onnx.load(str(translated.path))
        tensor_overrides, applied, ignored = self._map_overrides(model, overrides)
        method = {
            "minmax": CalibrationMethod.MinMax,
            "percentile": CalibrationMethod.Percentile,
            "entropy": CalibrationMethod.Entropy,
        }[settings.method]
        extra: dict[str, Any] = {"TensorQuantOverrides": tensor_overrides} if tensor_overrides else {}
        if settings.method == "percentile":
            extra["CalibPercentile"] = settings.percentile
        # CalibMaxIntermediateOutputs is broken in ORT 1.32 (FINDINGS warning 2): never set it.
        # Calibration ranges depend only on (model, calibration set, method): reuse them across override sets.
        cache = workdir / "ranges.json"
        shared = reuse_dir / f"ranges-{settings.method}-{settings.percentile:g}.json" if reuse_dir else None
        reused = shared is not None and shared.is_file()
        if reused:
            shutil.copyfile(shared, cache)  # type: ignore[arg-type]
        # ORT's calibrator writes "<model>-inferred.onnx" beside the model it is given, then deletes it: given the
        # translate stage's published (shared, immutable) entry, two workers quantizing the same model race on
        # that file. A link inside this build's own folder keeps the scratch file here; it is removed afterwards.
        link = workdir / "translated.onnx"
        link.unlink(missing_ok=True)
        link.symlink_to(translated.path.resolve())
        out = workdir / "quantized.onnx"
        try:
            if settings.method == "entropy" and not cache.exists():
                self._entropy_ranges(link, translated.input_name, calibration, cache, workdir)
            elif not cache.exists():  # quantize_static's own calibration, in a session of bounded memory
                _calibrate(link, _reader(translated.input_name, calibration), method, extra, cache, workdir)
            quantize_static(
                str(link),
                str(out),
                _reader(translated.input_name, calibration),
                quant_format=QuantFormat.QDQ,
                per_channel=settings.per_channel,
                activation_type=QuantType.QUInt16 if settings.activation_bits == 16 else QuantType.QUInt8,
                weight_type=QuantType.QInt16 if settings.weight_bits == 16 else QuantType.QInt8,
                calibrate_method=method,
                extra_options=extra,
                calibration_cache_path=str(cache),
            )
        finally:
            link.unlink(missing_ok=True)
        if shared is not None and not shared.exists():
            shared.parent.mkdir(parents=True, exist_ok=True)
            tmp = shared.with_name(f".{shared.name}.{os.getpid()}")
            shutil.copyfile(cache, tmp)
            os.replace(tmp, shared)
        script = workdir / "overrides.json"
        script.write_text(
            json.dumps(
                {
                    "override_set": overrides.to_dict(),
                    "settings": settings.to_dict(),
                    "tensor_quant_overrides": {k: [{"quant_type": "QUInt16"}] for k in tensor_overrides},
                },
                indent=2,
            )
        )
        qmodel = onnx.load(str(out), load_external_data=False)
        ops = collections.Counter(n.op_type for n in qmodel.graph.node)
        info = {
            "opset": max((o.version for o in qmodel.opset_import if o.domain in ("", "ai.onnx")), default=0),
            "n_quantize_linear": ops.get("QuantizeLinear", 0),
            "n_tensors_16bit": len(tensor_overrides),
            "ranges_reused": reused,
        }
        return Optimized(path=out, script=script, applied=tuple(applied), ignored=tuple(ignored), info=info)

    def _map_overrides(
        self, model: Any, overrides: OverrideSet
    ) -> tuple[dict[str, list[dict[str, Any]]], list[str], list[str]]:
        """Override set -> ORT ``TensorQuantOverrides``; unsupported kinds are reported as ignored."""
        from onnxruntime.quantization import QuantType

        node_outputs = {n.name: list(n.output) for n in model.graph.node if n.name}
        tensors = {o for outs in node_outputs.values() for o in outs}
        tensors |= {i.name for i in model.graph.input} | {o.name for o in model.graph.output}
        initializers = {t.name for t in model.graph.initializer}
        names = [*node_outputs, *sorted(tensors - set(node_outputs))]
        result: dict[str, list[dict[str, Any]]] = {}
        applied: list[str] = []
        ignored: list[str] = []
        for ov in overrides.overrides:
            if ov.kind in LEVER_KINDS:
                ignored.append(f"{ov.kind}: a compiler (allocator) lever; ONNX Runtime has no allocator (Hailo only)")
                continue
            if ov.kind != "precision16":
                ignored.append(f"{ov.kind}: not supported by the ONNX Runtime backend (Hailo only)")
                continue
            hits = resolve_targets(ov.layers or ("*",), names)
            chosen: set[str] = set()
            for matched in hits.values():
                for name in matched:
                    for t in node_outputs.get(name, [name]):
                        if t in tensors and t not in initializers:
                            chosen.add(t)
            for t in sorted(chosen):
                result[t] = [{"quant_type": QuantType.QUInt16}]
            applied.append(f"precision16 on {len(chosen)} tensors ({', '.join(ov.layers) or '*'})")
        return result, applied, ignored

    def _entropy_ranges(self, model_path: Path, input_name: str, calibration: np.ndarray, cache: Path, workdir: Path) -> None:
        """Real entropy calibration (histogram KL) written as a calibration cache for ``quantize_static``."""
        from onnxruntime.quantization import CalibrationMethod
        from onnxruntime.quantization.calibrate import create_calibrator, save_tensors_data

        calibrator = create_calibrator(
            model_path,
            augmented_model_path=str(workdir / "augmented.onnx"),
            calibrate_method=CalibrationMethod.Entropy,
            extra_options={"num_bins": _ENTROPY_BINS, "num_quantized_bins": 128},
        )
        calibrator.collect_data(_reader(input_name, calibration))
        save_tensors_data(calibrator.compute_data(), cache)
        (workdir / "augmented.onnx").unlink(missing_ok=True)

    # -- compile -----------------------------------------------------------------------------------------
    def compile(self, optimized: Optimized, workdir: Path, levers: OverrideSet | None = None) -> Compiled:
        import onnx
        import onnxruntime as ort

        workdir.mkdir(parents=True, exist_ok=True)
        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        fused = workdir / "runtime_graph.onnx"
        opts.optimized_model_filepath = str(fused)
        ort.InferenceSession(str(optimized.path), opts, providers=["CPUExecutionProvider"])
        ops = collections.Counter(n.op_type for n in onnx.load(str(fused)).graph.node)
        fused.unlink(missing_ok=True)
        out = workdir / "model.qdq.onnx"
        shutil.copyfile(optimized.path, out)
        info = {
            "runtime_ops": dict(sorted(ops.items())),
            "n_qlinear_ops": sum(v for k, v in ops.items() if k.startswith("QLinear")),
            "size_bytes": out.stat().st_size,
        }
        if levers is not None and levers.overrides:
            info["ignored"] = [f"{o.kind}: a compiler (allocator) lever; ONNX Runtime has no allocator (Hailo only)"
                               for o in levers.overrides]  # fmt: skip
        return Compiled(path=out, info=info)

    # -- emulate -----------------------------------------------------------------------------------------
    def emulate(
        self, target: Optimized, inputs: np.ndarray | dict[str, np.ndarray]
    ) -> np.ndarray | dict[str, np.ndarray]:
        if isinstance(inputs, dict):
            return run_segment_onnx(target.path, inputs)
        return run_onnx(target.path, inputs)


def threads() -> int:
    """Threads per ONNX Runtime session: ``HEFSWEEP_THREADS`` (0 = ONNX Runtime's default, one per core).

    Set it to 1 when several workers share a machine. (``quantize_static``'s internal calibration session
    does not take session options and keeps ONNX Runtime's default.)
    """
    try:
        return max(int(os.environ.get("HEFSWEEP_THREADS", "0")), 0)
    except ValueError:
        return 0


def run_onnx(path: Path, inputs: np.ndarray) -> np.ndarray:
    """Run an ONNX model with a single ``[1,1,1,W]`` input over ``[n,1,1,W]`` inputs, one row at a time.

    Returns:
        float32 ``[n, n_src, 1, W]``.
    """
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads()
    sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name
    outs = [sess.run(None, {name: inputs[i : i + 1].astype(np.float32)})[0] for i in range(len(inputs))]
    return np.concatenate(outs, axis=0).astype(np.float32)


def run_segment_onnx(path: Path, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Run a segment's ONNX model (several named inputs, batch 1) over rows of ``feeds``; every output by name."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads()
    sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    names = [o.name for o in sess.get_outputs()]
    n = len(next(iter(feeds.values())))
    rows = [sess.run(names, {k: v[i : i + 1].astype(np.float32) for k, v in feeds.items()}) for i in range(n)]
    return {name: np.concatenate([r[j] for r in rows]).astype(np.float32) for j, name in enumerate(names)}
