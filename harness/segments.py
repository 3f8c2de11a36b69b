"""Split HEFs: a trial cuts the exported model into K consecutive segments and deploys a chain of them.

**Plan** (:func:`plan_segments`). The candidate cuts are module boundaries of the exported Conv-TasNet, found from
the module paths the TorchScript exporter keeps in node names (``/masker/TCN.3/...``): after the encoder (before
the first ``/masker/`` node), after each TCN block (before the first ``/masker/TCN.<i>/`` node, i >= 1) and before
the decoder (after the last ``/masker/`` node: the mask multiply and the decoder form the last piece). A cut at a
position of the (topologically ordered) node list is exact whatever the grouping: the tensors that cross it are the
dynamic tensors produced before it and consumed after it, so a segment may have several inputs and outputs (between
TCN blocks: the residual stream, the skip accumulator and the encoder output ``w`` that the mask multiply needs).
K-1 cuts are chosen deterministically: for j = 1..K-1, the unused candidate nearest to j·N/K nodes (N = non-Constant
nodes; ties to the earlier one). Segment i reads the tensors consumed in it and produced before it (the model's input
or an earlier segment's output: the host-side *glue* passes a tensor from its producer to every later consumer, so
``w`` goes straight from segment 1 to the last one) and writes the tensors it produces that later segments (or the
model's output) consume. The plan is JSON (``plan.json``): per segment the start / end node names, the input / output
tensor names and their NCHW shapes (:class:`~harness.backends._protocol.Segment`).

**Calibration per segment** (:func:`capture_boundaries`): the float export runs in ONNX Runtime on the trial's real
calibration set (the ``calibrate`` stage's ``calibration.npy``, never noise) with every boundary tensor as an extra
output; segment i's calibration is its inputs from that run (``seg<i>.npz``, one array per input name; segment 1's
is the calibration set itself). The ``boundaries`` stage is content-hashed on the export, the calibration and the plan.

**Stages** (:func:`run_split`, called by :class:`~harness.pipeline.Pipeline` for ``segments > 1``): ``split`` (the
plan) and ``boundaries``, then per segment ``translate``, ``optimize`` (all segments) and ``compile`` (all segments)
through the same ``Pipeline._stage`` / isolated workers / stage cache as a whole model, keyed by the segment's plan
and its upstream keys. In the trial's ``stages`` and ``time_<stage>_s`` metrics they are ``translate.seg<i>`` ...
(MLflow-safe names); a failure's stage is ``<stage>[seg i/K]``, so the signature names the segment
(``compile[seg 2/3]:BackendAllocatorException:agent_infeasible``; :func:`harness.failures.classify` matches the rules
on the base stage). Then one ``emulate`` stage runs the chain (:class:`~harness.backends._protocol.SegmentChain`
through ``harness._stage_calls.emulate``: segment 1 on the mixtures, its outputs to the later segments ...) in place
of the single quantized model, so tiling wraps it like any per-batch emulation (each tile through the chain); output
alignment and metrics are the monolithic path's. A split trial's deployable is a bundle (:mod:`harness.bundle`).

Overrides: the trial's override set goes to every segment; an override that names nothing in a segment is left out
there (``info["optimize"][i]["absent_overrides"]``) and fails the trial (``optimize:OverrideTargetNotFound``) only
when no segment has its layers.

Limitations: the repair loop applies one override set to every segment (a fix moves every segment; the failing
segment's layer is diagnosed against that segment's translation; an optimize failure enters the repair table as
``optimize``, so the repair log shows the base stage while the trial's signature keeps the segment): no per-segment
repairs. The layer-noise stage and the compile gate ("optimize many, compile few") are not run for split trials
(every segment is compiled before emulation).
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from harness.backends._protocol import Segment
from harness.errors import ConfigError

__all__ = ["SegmentPlan", "capture_boundaries", "cut_candidates", "plan_segments", "run_float_chain", "run_split"]

PLAN_VERSION = 1
_TCN = re.compile(r"^/masker/TCN\.(\d+)/")


@dataclass(frozen=True)
class SegmentPlan:
    """Where a model is cut.

    Attributes:
        segments: The segments in chain order.
        cuts: Per cut, its candidate's label (``encoder|masker``, ``TCN.2|TCN.3``, ``masker|decoder``).
        model_input: The model's input tensor; model_output: its output tensor.
    """

    segments: tuple[Segment, ...]
    cuts: tuple[str, ...]
    model_input: str
    model_output: str

    def to_dict(self) -> dict[str, Any]:
        """The JSON form (``plan.json``)."""
        return {
            "version": PLAN_VERSION,
            "model_input": self.model_input,
            "model_output": self.model_output,
            "cuts": list(self.cuts),
            "segments": [s.to_dict() for s in self.segments],
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SegmentPlan:
        """The inverse of :meth:`to_dict`."""
        return cls(tuple(Segment.from_dict(s) for s in d["segments"]), tuple(d["cuts"]), d["model_input"],
                   d["model_output"])  # fmt: skip

    def write(self, path: Path) -> Path:
        """Write ``plan.json``."""
        path.write_text(json.dumps(self.to_dict(), indent=2))
        return path

    @classmethod
    def read(cls, path: Path) -> SegmentPlan:
        """Read ``plan.json``."""
        return cls.from_dict(json.loads(path.read_text()))


def cut_candidates(model: Any) -> list[tuple[int, str]]:
    """The module boundaries of an exported Conv-TasNet: ``(node position, label)`` in graph order (see the module
    docstring). A cut at position p puts nodes ``[p:]`` after it."""
    names = [n.name for n in model.graph.node]
    out: list[tuple[int, str]] = []
    masker = [i for i, n in enumerate(names) if n.startswith("/masker/")]
    if not masker:
        return out
    out.append((masker[0], "encoder|masker"))
    seen: dict[int, int] = {}
    for i, name in enumerate(names):
        m = _TCN.match(name)
        if m is not None:
            seen.setdefault(int(m.group(1)), i)
    for block in sorted(seen):
        if block >= 1:
            out.append((seen[block], f"TCN.{block - 1}|TCN.{block}"))
    last = masker[-1] + 1
    if last < len(names):
        out.append((last, "masker|decoder"))
    return sorted(set(out))


def plan_segments(onnx_path: Path, count: int) -> SegmentPlan:
    """Cut the exported model at ``count - 1`` of its module boundaries (see the module docstring).

    Raises:
        ConfigError: ``count`` is below 1 or above the number of candidate cuts + 1.
    """
    import onnx

    model = onnx.load(str(onnx_path))
    graph = model.graph
    inits = {t.name for t in graph.initializer}
    inputs = [i.name for i in graph.input if i.name not in inits]
    if len(inputs) != 1 or len(graph.output) != 1:
        raise ValueError(f"{onnx_path}: {len(inputs)} inputs, {len(graph.output)} outputs; expected one of each")
    nodes = list(graph.node)
    cands = cut_candidates(model)
    if count < 1 or count - 1 > len(cands):
        raise ConfigError(
            "dimension segments", str(count), f"1..{len(cands) + 1} for this model ({len(cands)} module boundaries)"
        )
    work = [i for i, n in enumerate(nodes) if n.op_type != "Constant"]
    chosen: list[tuple[int, str]] = []
    for j in range(1, count):
        target = j * len(work) / count
        free = [c for c in cands if c not in chosen]
        chosen.append(min(free, key=lambda c: (abs(sum(1 for w in work if w < c[0]) - target), c[0])))
    chosen.sort()
    bounds = [0, *[c[0] for c in chosen], len(nodes)]

    dynamic = {inputs[0]}  # tensors that depend on the model's input (constants travel with their consumers)
    for n in nodes:
        if any(t in dynamic for t in n.input):
            dynamic.update(n.output)
    producer = {o: i for i, n in enumerate(nodes) for o in n.output}
    model_output = graph.output[0].name
    shapes = _shapes(model)
    segments = []
    for k in range(count):
        lo, hi = bounds[k], bounds[k + 1]
        span = [i for i in range(lo, hi) if nodes[i].op_type != "Constant"]
        seg_in: list[str] = []
        for i in span:
            for t in nodes[i].input:
                if t in dynamic and producer.get(t, -1) < lo and t not in seg_in:
                    seg_in.append(t)
        later = {t for i in range(hi, len(nodes)) for t in nodes[i].input} | {model_output}
        seg_out = [o for i in span for o in nodes[i].output if o in later and o in dynamic]
        if k == 0:
            starts = [inputs[0]]
        else:
            starts = list(dict.fromkeys(nodes[i].name for t in seg_in for i in span if t in nodes[i].input))
        ends = list(dict.fromkeys(nodes[producer[o]].name for o in seg_out))
        segments.append(
            Segment(
                k, count, tuple(starts), tuple(ends), tuple(seg_in), tuple(seg_out),
                tuple(tuple(shapes[t]) for t in seg_in), tuple(tuple(shapes[t]) for t in seg_out),
            )  # fmt: skip
        )
    return SegmentPlan(tuple(segments), tuple(c[1] for c in chosen), inputs[0], model_output)


def _shapes(model: Any) -> dict[str, list[int]]:
    import onnx

    inferred = onnx.shape_inference.infer_shapes(model)
    out = {}
    for vi in [*inferred.graph.input, *inferred.graph.value_info, *inferred.graph.output]:
        out[vi.name] = [d.dim_value if d.HasField("dim_value") else -1 for d in vi.type.tensor_type.shape.dim]
    return out


def _session_with_outputs(onnx_path: Path, names: Sequence[str]) -> Any:
    """An ONNX Runtime session over the float export with ``names`` as extra graph outputs."""
    import onnx
    import onnxruntime as ort

    from harness.backends._ort import threads

    model = onnx.load(str(onnx_path))
    present = {o.name for o in model.graph.output}
    for t in names:
        if t not in present:
            model.graph.output.append(onnx.helper.make_tensor_value_info(t, onnx.TensorProto.FLOAT, None))
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads()
    return ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])


def capture_boundaries(onnx_path: Path, plan: SegmentPlan, calibration: np.ndarray) -> list[dict[str, np.ndarray]]:
    """Each segment's calibration: its input tensors from the float export run on ``calibration`` ``[n,1,1,W]``.

    Returns:
        Per segment, ``{input tensor: float32 [n, C, 1, F]}``.
    """
    wanted = sorted({t for s in plan.segments for t in s.inputs} - {plan.model_input})
    sess = _session_with_outputs(onnx_path, wanted)
    names = [o.name for o in sess.get_outputs()]
    rows: dict[str, list[np.ndarray]] = {t: [] for t in wanted}
    for i in range(len(calibration)):
        x = calibration[i : i + 1].astype(np.float32)
        values = dict(zip(names, sess.run(names, {plan.model_input: x}), strict=True))
        for t in wanted:
            rows[t].append(values[t])
    stacked = {t: np.concatenate(v).astype(np.float32) for t, v in rows.items()}
    stacked[plan.model_input] = calibration.astype(np.float32)
    return [{t: stacked[t] for t in s.inputs} for s in plan.segments]


def run_float_chain(onnx_path: Path, plan: SegmentPlan, inputs: np.ndarray, workdir: Path) -> np.ndarray:
    """The float segments (each extracted as the ONNX Runtime backend extracts it), chained on ``[n,1,1,W]``
    inputs: the cut is exact, so this equals the whole float model (a check of the plan and the glue)."""
    from harness.backends._ort import OrtBackend, run_segment_onnx

    backend = OrtBackend()
    values: dict[str, np.ndarray] = {plan.model_input: inputs.astype(np.float32)}
    for seg in plan.segments:
        tr = backend.translate(onnx_path, workdir / f"seg{seg.index + 1}", segment=seg)
        values.update(run_segment_onnx(tr.path, {t: values[t] for t in seg.inputs}))
    return values[plan.model_output]


# -- the split trial's stages (harness side; called by Pipeline._run for segments > 1) -------------------------------
def _plan_stage(onnx_path: Path, count: int, d: Path) -> dict[str, Any]:
    plan = plan_segments(onnx_path, count)
    plan.write(d / "plan.json")
    return {"cuts": list(plan.cuts), "n_inputs": [len(s.inputs) for s in plan.segments]}


def _boundaries_stage(onnx_path: Path, plan: SegmentPlan, calibration_npy: Path, d: Path) -> dict[str, Any]:
    per_segment = capture_boundaries(onnx_path, plan, np.load(calibration_npy))
    shapes = []
    for seg, arrays in zip(plan.segments, per_segment, strict=True):
        np.savez(d / f"seg{seg.index + 1}.npz", **arrays)
        shapes.append({t: list(a.shape) for t, a in arrays.items()})
    return {"shapes": shapes}


def _stage_name(base: str, seg: Segment) -> str:
    """The key of a segment's stage in the trial's ``stages`` (and its ``time_<key>_s`` metric: MLflow-safe)."""
    return f"{base}.seg{seg.index + 1}"


def _segment_stage(pipe: Any, base: str, seg: Segment, key: str, fn: Any, stages: dict[str, Any]) -> Any:
    """``Pipeline._stage`` under the cache's stage ``base``; recorded as ``<base>.seg<i>`` and failing as
    ``<base>[seg i/K]`` (the failure classified again under that name)."""
    from harness.failures import classify
    from harness.pipeline import _StageFailed

    try:
        entry = pipe._stage(base, key, fn, stages)
    except _StageFailed as exc:
        stages[_stage_name(base, seg)] = stages.pop(base)
        f = exc.failure
        failure = classify(f"{base}[{seg.label}]", f.exc_class, f.message)
        raise _StageFailed(failure, exc.failed_dir, exc.traceback_text) from None
    stages[_stage_name(base, seg)] = stages.pop(base)
    return entry


def run_split(
    pipe: Any,
    cfg: Any,
    onnx_path: Path,
    export_key: str,
    tiling: Any,
    calib: Any,
    orig: Any,
    orig_out: np.ndarray,
    ref_out: np.ndarray,
    ev: Any,
    stages: dict[str, Any],
    artifacts: list[tuple[Path, str]],
    info: dict[str, Any],
    explicit: Any = None,
    on_clip: Any = None,
) -> None:
    """The backend part of a split trial (see the module docstring); fills ``info["metrics"]`` like the monolithic
    path. ``onnx_path`` / ``export_key``: the export the backend stages get (at the tile width when ``tiling``, the
    trial's :class:`~harness.tiling.TilePlan`, is given: each tile then runs through the chain). Raises the
    pipeline's stage failures."""
    from harness.backends import Optimized, QuantSettings, Translated
    from harness.backends._protocol import SegmentChain
    from harness.bundle import BUNDLE_VERSION, write_bundle
    from harness.cache import file_sha256, stage_key
    from harness.pipeline import _VERSIONS, _from_meta, _metrics, _tiling_key, _tiling_metrics, _to_meta

    space = pipe.space
    split = pipe._stage(
        "split",
        stage_key("split", PLAN_VERSION, {"segments": cfg.segments}, (export_key,)),
        lambda d: _plan_stage(onnx_path, cfg.segments, d),
        stages,
    )
    plan = SegmentPlan.read(split.path / "plan.json")
    artifacts.append((split.path / "plan.json", "segments"))
    info["segments"] = {"count": len(plan.segments), "cuts": list(plan.cuts)}
    bnd = pipe._stage(
        "boundaries",
        stage_key("boundaries", 1, {}, (export_key, calib.key, split.key)),
        lambda d: _boundaries_stage(onnx_path, plan, calib.path / "calibration.npy", d),
        stages,
    )

    versions = pipe.backend_versions()
    backend_id = {"backend": space.backend, "options": space.backend_options, **versions}
    translated: list[tuple[Any, Translated]] = []
    for seg in plan.segments:
        tr = _segment_stage(
            pipe, "translate", seg,
            stage_key("translate", _VERSIONS["translate"], {**backend_id, "segment": seg.to_dict()}, (export_key,)),
            lambda d, seg=seg: _to_meta(pipe._isolated("translate", "translate", d, onnx_path, d, seg), d),
            stages,
        )  # fmt: skip
        translated.append((tr, _from_meta(Translated, tr.meta, tr.path)))

    overrides = explicit if explicit is not None else space.override_set(cfg.override_set)
    settings = QuantSettings(method=cfg.calib_method)  # type: ignore[arg-type]

    def optimize_compile(ovs: Any) -> list[tuple[Any, Optimized, Any]]:
        from harness.backends._overrides import split_levers
        from harness.pipeline import compile_params, optimize_params

        ovs, levers = split_levers(ovs)  # the compiler levers act at compile only (as in the monolithic pipeline)
        out = []
        for seg, (tr, tr_obj) in zip(plan.segments, translated, strict=True):
            calib_file = bnd.path / f"seg{seg.index + 1}.npz"
            reuse = pipe.cache.root / "reuse" / stage_key("ranges", 1, {"method": settings.method}, (tr.key, bnd.key))
            opt = _segment_stage(
                pipe, "optimize", seg,
                stage_key("optimize", _VERSIONS["optimize"], optimize_params(ovs, settings), (tr.key, bnd.key)),
                lambda d, t=tr_obj, c=calib_file, r=reuse: _to_meta(
                    pipe._isolated("optimize", "optimize", d, t, c, ovs, settings, d, r), d
                ),
                stages,
            )  # fmt: skip
            out.append((opt, _from_meta(Optimized, opt.meta, opt.path)))
        _check_absent(ovs, [o for _, o in out])
        done = []
        for seg, (opt, optimized) in zip(plan.segments, out, strict=True):
            comp = _segment_stage(
                pipe, "compile", seg, stage_key("compile", _VERSIONS["compile"], compile_params(levers), (opt.key,)),
                lambda d, o=optimized: _to_meta(pipe._isolated("compile", "compile_", d, o, d, levers), d),
                stages,
            )  # fmt: skip
            done.append((opt, optimized, comp))
        return done

    if space.repairs:
        done = _repair_segments(pipe, optimize_compile, overrides, plan, [t for _, t in translated], artifacts, info)
    else:
        done = optimize_compile(overrides)
    info["optimize"] = [
        {"segment": seg.label, "applied": list(o.applied), "ignored": list(o.ignored), **o.info}
        for seg, (_, o, _) in zip(plan.segments, done, strict=True)
    ]
    bundle = pipe._stage(
        "bundle",
        stage_key("bundle", BUNDLE_VERSION, {"plan": plan.to_dict()}, tuple(c.key for _, _, c in done)),
        lambda d: write_bundle(d, space.backend, plan, [(o, c) for _, o, c in done], info.get("tiling")),
        stages,
    )
    info["compile"] = {"file": "bundle.json", "sha256": bundle.meta["sha256"], "segments": bundle.meta["segments"],
                       "size_bytes": bundle.meta["size_bytes"]}  # fmt: skip
    artifacts.append((bundle.path / "bundle.json", "compiled"))
    for rel in bundle.meta["files"]:
        artifacts.append((bundle.path / rel, f"compiled/{Path(rel).parent.as_posix()}"))
    info["compiled"] = True

    chain = SegmentChain(tuple(plan.segments), tuple(o for _, o, _ in done), plan.model_input, plan.model_output)
    emu = pipe._stage(
        "emulate",
        stage_key("emulate", _VERSIONS["emulate"], {"eval": ev.key, "segments": len(plan.segments), **_tiling_key(tiling)},
                  (*[opt.key for opt, _, _ in done], orig.key)),
        lambda d: pipe._emulate(chain, ev, d, ref_out, on_clip, orig_out, tiling, onnx_path),
        stages,
    )  # fmt: skip
    if emu.meta.get("alignment"):
        info["emulate_alignment"] = emu.meta["alignment"]
    info["metrics"], per_clip = _metrics(np.load(emu.path / "outputs.npy"), ref_out, orig_out, ev)
    info["per_clip_si_snr_db"] = [row["si_snr_db"] for row in per_clip]
    if tiling is not None:  # as the monolithic path: the float tiling gap and tiling.json beside the bundle
        info["metrics"].update(_tiling_metrics(np.load(emu.path / "float_tiled.npy"), ref_out, ev, tiling))
        info["tiling"]["sha256"] = file_sha256(emu.path / "tiling.json")
        artifacts.append((emu.path / "tiling.json", "compiled"))
    artifacts.append((emu.path / "per_clip.json", "metrics"))
    audio = emu.path / "audio"
    if audio.is_dir():
        artifacts += [(p, "audio") for p in sorted(audio.iterdir())]


def _check_absent(overrides: Any, optimized: list[Any]) -> None:
    """An override each segment left out (it names nothing in any of them) fails the trial as a whole model's would:
    ``optimize:OverrideTargetNotFound:<pattern>``."""
    from harness.failures import classify
    from harness.pipeline import _StageFailed

    for ov in overrides.overrides:
        messages = [next((a["message"] for a in o.info.get("absent_overrides", []) if a["override"] == ov.to_dict()), None)
                    for o in optimized]  # fmt: skip
        if all(m is not None for m in messages):
            failure = classify("optimize", "OverrideTargetNotFound", str(messages[0]))
            raise _StageFailed(failure, None, f"OverrideTargetNotFound in every segment: {messages[0]}\n")


def _repair_segments(
    pipe: Any, optimize_compile: Any, overrides: Any, plan: SegmentPlan, translated: list[Any],
    artifacts: list[tuple[Path, str]], info: dict[str, Any],
) -> Any:  # fmt: skip
    """The repair loop over every segment with one override set (a fix applies to all segments); the failing
    segment's layer is diagnosed against that segment's translation."""
    import dataclasses
    import time
    import uuid

    from harness.backends import backend_class
    from harness.pipeline import _StageFailed
    from harness.repair import Attempt, run_repairs

    backend = backend_class(pipe.space.backend)
    family_of = getattr(backend, "family", None)
    failures: list[Any] = []

    def attempt(ovs: Any) -> Attempt:
        start = time.monotonic()
        try:
            return Attempt(value=optimize_compile(ovs), seconds=time.monotonic() - start)
        except _StageFailed as exc:
            failures.append(exc)
            m = re.search(r"\[seg (\d+)/\d+\]", exc.failure.stage)
            tr = translated[int(m.group(1)) - 1] if m else translated[0]
            layer = backend.diagnose(exc.failure, tr)
            family = family_of(layer, tr) if family_of is not None and layer else None
            failure = exc.failure
            if failure.stage.startswith("optimize["):  # the repair table's optimize rows are written for "optimize"
                failure = dataclasses.replace(failure, stage="optimize")
            return Attempt(failure, layer, seconds=time.monotonic() - start, family=family)

    outcome = run_repairs(attempt, overrides, max_repairs=pipe.space.repairs)
    folder = pipe.cache.root / "repairs" / uuid.uuid4().hex
    artifacts += [(p, "") for p in outcome.log.write(folder)]
    info["repair"] = {**outcome.log.tags(), "final_override_set": outcome.overrides.to_dict()}
    if not outcome.succeeded:
        raise failures[-1]
    return outcome.value
