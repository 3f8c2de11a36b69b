"""Segments of a split model (:mod:`harness.segments`) through the DFC: the parts of :class:`HailoBackend`'s
translate / optimize / emulate that take one segment (see the ``Segments`` paragraph of
:mod:`harness.backends.hailo._backend`).

Worker side (:data:`harness.WORKER_SIDE`): standard library, numpy (1.26 API) and the SDK, Python 3.10.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import numpy as np

from harness.backends._protocol import Optimized, OverrideSet, QuantSettings, Segment, Translated
from harness.backends.hailo._backend import (
    DFC_NOISE_FILE,
    _sdk,
    dfc_layer_noise,
    guard_apu_neg_mantissa_correction,
    worker_facts,
)
from harness.backends.hailo._layers import layer_map
from harness.backends.hailo._script import build_script

__all__ = ["SEGMENT_IO_FILE", "emulate_segment", "optimize_segment", "segment_io", "translate_segment"]


#: Beside a segment's HAR: ``{"inputs": {input tensor: HN input layer}, "outputs": [tensor per output_layers_order]}``.
SEGMENT_IO_FILE = "segment_io.json"


def segment_io(hn: dict[str, Any], segment: Segment) -> dict[str, Any]:
    """Which HN input layer takes each segment input and which tensor each HN output (in ``output_layers_order``,
    the order ``infer`` returns them, §5.2 [C]) is: through ``original_names`` [C], else by position [I].

    Raises:
        ValueError: the HN has a different number of inputs or outputs than the segment.
    """
    layers = hn["layers"]
    in_layers = sorted((n for n, l in layers.items() if l.get("type") == "input_layer"),
                       key=lambda n: int(re.sub(r"\D", "", n.rsplit("input_layer", 1)[-1]) or 0))  # fmt: skip
    if len(in_layers) != len(segment.inputs):
        raise ValueError(f"the parsed segment has input layers {in_layers}; expected one per input {list(segment.inputs)}")
    inputs: dict[str, str] = {}
    for i, t in enumerate(segment.inputs):
        named = [n for n in in_layers if t in layers[n].get("original_names", ())]
        inputs[t] = named[0] if named else in_layers[i]
    order = hn.get("net_params", {}).get("output_layers_order") or []
    outputs: list[str] = []
    for i, producer in enumerate(order):
        names = set(layers.get(producer, {}).get("original_names", ()))
        for o in layers.get(producer, {}).get("output", ()):
            if layers.get(o, {}).get("type") == "output_layer":
                names |= set(layers[o].get("original_names", ()))
        hit = [t for t in segment.outputs if t in names or t.rsplit("_output_", 1)[0] in names]
        outputs.append(hit[0] if hit else segment.outputs[min(i, len(segment.outputs) - 1)])
    if len(outputs) != len(segment.outputs) or set(outputs) != set(segment.outputs):
        raise ValueError(f"the parsed segment's outputs {order} do not map onto {list(segment.outputs)}")
    return {"inputs": inputs, "outputs": outputs}


def translate_segment(backend: Any, onnx_path: Path, workdir: Path, segment: Segment) -> Translated:
    """One segment: start/end node names and its input shapes to the parser; the segment's I/O map."""
    workdir.mkdir(parents=True, exist_ok=True)
    runner = backend._runner()
    runner.translate_onnx_model(  # §1.4 [C] call shape; a subgraph's input naming [I]
        str(onnx_path),
        backend.net_name,
        start_node_names=list(segment.start_nodes),
        end_node_names=list(segment.end_nodes),
        net_input_shapes={t: list(shape) for t, shape in zip(segment.inputs, segment.input_shapes, strict=True)},
    )
    har = workdir / "model.har"
    runner.save_har(str(har))
    hn = runner.get_hn_dict()
    layers = hn["layers"]
    (workdir / "layer_map.json").write_text(json.dumps(layer_map(layers), indent=2))
    io = segment_io(hn, segment)
    (workdir / SEGMENT_IO_FILE).write_text(json.dumps(io, indent=2))
    return Translated(
        path=har,
        input_name=io["inputs"][segment.inputs[0]],
        width=int(segment.input_shapes[0][-1]),
        layers=tuple(layers),
        inputs=tuple(io["inputs"][t] for t in segment.inputs),
        outputs=tuple(io["outputs"]),
    )


def optimize_segment(
    backend: Any, translated: Translated, calibration: dict[str, np.ndarray], overrides: OverrideSet,
    settings: QuantSettings, workdir: Path,
) -> Optimized:  # fmt: skip
    """A segment: the dict form keyed by HN input layer (§3.2 [C]), one NHWC array per segment input."""
    io = json.loads((translated.path.parent / SEGMENT_IO_FILE).read_text())
    if set(calibration) != set(io["inputs"]):
        raise ValueError(f"calibration arrays for {sorted(calibration)}; expected {sorted(io['inputs'])}")
    runner = backend._runner(translated.path)
    layers = runner.get_hn_dict()["layers"]
    n = {int(v.shape[0]) for v in calibration.values()}
    if len(n) != 1 or any(v.ndim != 4 or v.shape[2] != 1 for v in calibration.values()):
        raise ValueError(f"calibration shapes { {k: v.shape for k, v in calibration.items()} }; expected [n, C, 1, F]")
    size = n.pop()
    script = build_script(overrides, settings, layers, calibset_size=size, layer_noise=backend.layer_noise)
    workdir.mkdir(parents=True, exist_ok=True)
    alls = script.write(workdir / "model_script.alls")
    runner.load_model_script(script.text)  # §2.1 [C]
    data = {io["inputs"][t]: np.ascontiguousarray(np.transpose(v, (0, 2, 3, 1)), dtype=np.float32)
            for t, v in calibration.items()}  # fmt: skip
    guarded = guard_apu_neg_mantissa_correction()
    runner.optimize(data)  # §3.2 [C] dict form
    out = workdir / "model_quantized.har"
    runner.save_har(str(out))
    (workdir / SEGMENT_IO_FILE).write_text(json.dumps(io, indent=2))
    (workdir / DFC_NOISE_FILE).write_text(json.dumps(dfc_layer_noise(runner, layers), indent=2))
    info = {
        "hw_arch": backend.hw_arch, "net_name": backend.net_name, "dfc_version": str(_sdk().__version__),
        "calibset_size": size, "input_layers": io["inputs"], "apu_neg_mantissa_guard": guarded,
        "worker": worker_facts(), **script.info(),
    }  # fmt: skip
    return Optimized(path=out, script=alls, applied=script.applied, ignored=script.ignored, info=info)


def emulate_segment(backend: Any, target: Optimized, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """A segment: ``{input tensor: [n, C, 1, F]}`` -> ``{output tensor: [n, C', 1, F']}`` (§5.1/§5.2 [C])."""
    io = json.loads((target.path.parent / SEGMENT_IO_FILE).read_text())
    if set(inputs) != set(io["inputs"]):
        raise ValueError(f"emulation inputs {sorted(inputs)}; expected {sorted(io['inputs'])}")
    sdk = _sdk()
    runner = backend._runner(target.path)
    data = {io["inputs"][t]: np.ascontiguousarray(np.transpose(v, (0, 2, 3, 1)), dtype=np.float32)
            for t, v in inputs.items()}  # fmt: skip
    with runner.infer_context(sdk.InferenceContext.SDK_QUANTIZED) as ctx:
        result = runner.infer(ctx, data)
    results = list(result) if isinstance(result, (list, tuple)) else [result]
    if len(results) != len(io["outputs"]):
        raise ValueError(f"emulation returned {len(results)} outputs; expected {len(io['outputs'])} ({io['outputs']})")
    out = {}
    for name, y in zip(io["outputs"], results, strict=True):
        y = np.asarray(y, dtype=np.float32)
        if y.ndim == 3:  # NWC without the H axis (§8.1) [T]
            y = y[:, None]
        if y.ndim != 4 or y.shape[0] != len(next(iter(inputs.values()))) or y.shape[1] != 1:
            raise ValueError(f"emulated output {name} shape {y.shape}; expected NHWC [n, 1, W, C]")
        out[name] = np.ascontiguousarray(np.transpose(y, (0, 3, 1, 2)))
    return out
