"""Fake ``hailo_sdk_client.runner.client_runner.ClientRunner`` (dfc_api.md §1–§5).

Call shapes follow the public callers (MZ, LUX, HACE, HD); behaviour is documented per method with the
evidence label of the fact it reproduces. See ``hailo_sdk_client/README.md`` for the whole list.
"""

from __future__ import annotations

import contextlib
import json
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from hailo_sdk_client._fake import alls, hn, quant
from hailo_sdk_client._fake.acceleras import BadInputsShape, NegativeSlopeExponentNonFixable
from hailo_sdk_client.exposed_definitions import SUPPORTED_HW_ARCHS, InferenceContext, States
from hailo_sdk_client.sdk_backend.sdk_backend_exceptions import BackendAllocatorException, BackendRuntimeException

__all__ = ["ClientRunner"]

#: Fake allocator budget: one layer's output row (H x W x C x bytes) must fit in 32 KiB. HD compiled 64-channel
#: blocks at latent width <= 256 (16 KiB rows) and failed with "Agent infeasible" at 1024 and 2000 (>= 64 KiB)
#: [T]; the threshold between them is a guess [I].
AGENT_BYTES = 32 * 1024
#: The seed's numbers for a gLN reduction: "Desired shift is 10.0, but op has only 8 data bits" (HD) [T].
DESIRED_SHIFT = 10.0
#: Calibration rows the fake's simple layer noise analysis uses (the DFC's own count is not public) [I].
LAT_ROWS = 4

_NEG_SLOPE = (
    "Quantization failed in layer {layer} due to unsupported required slope. Desired shift is {shift:.1f}, but op "
    "has only {bits} data bits. This error raises when the data or weight range are not balanced. Mostly happens "
    "when using random calibration-set/weights, the calibration-set is not normalized properly or "
    "batch-normalization was not used during training."
)


class _Context:
    def __init__(self, target: InferenceContext) -> None:
        self.target = target


class ClientRunner:
    """The fake runner. State lives in memory and in HAR files (zip archives written by :meth:`save_har`)."""

    def __init__(self, hw_arch: str | None = None, har: str | Path | None = None) -> None:
        if hw_arch is not None and hw_arch not in SUPPORTED_HW_ARCHS:
            raise ValueError(f"Unsupported hw_arch {hw_arch}; supported: {', '.join(SUPPORTED_HW_ARCHS)}")
        self.hw_arch = hw_arch or "hailo8"
        self.state = States.UNINITIALIZED
        self._onnx: bytes = b""
        self._hn: dict[str, Any] = {}
        self._fake: dict[str, Any] = {}
        self._script = ""
        self._hef: bytes | None = None
        if har is not None:
            self.load_har(har)

    # -- translate (§1.4) ---------------------------------------------------------------------------------
    def translate_onnx_model(
        self,
        model: str | Path | None = None,
        net_name: str | None = None,
        start_node_names: list[str] | None = None,
        end_node_names: list[str] | str | None = None,
        net_input_shapes: dict[str, list[int]] | None = None,
        **_: Any,
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        proto = onnx.load(str(model))
        name = net_name or Path(str(model)).stem
        result = hn.translate(proto, name, start_node_names, end_node_names, net_input_shapes)
        self._onnx = proto.SerializeToString()
        self._hn = result.hn
        self._fake = {"tensors": result.tensors, "global_pools": result.global_pools}
        self._script = ""
        self.state = States.HAILO_MODEL
        return self._hn, {}

    # -- HAR I/O (§1.5) -------------------------------------------------------------------------------------
    def save_har(self, path: str | Path) -> None:
        meta = {"state": self.state.value, "hw_arch": self.hw_arch, "script": self._script, "fake": self._fake}
        with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
            z.writestr("hn.json", json.dumps(self._hn))
            z.writestr("model.onnx", self._onnx)
            z.writestr("state.json", json.dumps(meta))
            if self._hef is not None:
                z.writestr("model.hef", self._hef)

    def load_har(self, har: str | Path) -> None:
        with zipfile.ZipFile(har) as z:
            self._hn = json.loads(z.read("hn.json"))
            self._onnx = z.read("model.onnx")
            meta = json.loads(z.read("state.json"))
            self._hef = z.read("model.hef") if "model.hef" in z.namelist() else None
        self.state = States(meta["state"])
        self._script = meta["script"]
        self._fake = meta["fake"]

    def get_hn_dict(self) -> dict[str, Any]:
        return json.loads(json.dumps(self._hn))

    get_hn = get_hn_dict

    def get_params(self) -> dict[str, np.ndarray]:
        return {}

    @property
    def model_script(self) -> str:
        return self._script

    # -- model script (§2.1) ---------------------------------------------------------------------------------
    def load_model_script(self, script: str | Path, append: bool = False) -> None:
        text = script
        if isinstance(script, Path) or (isinstance(script, str) and "(" not in script and Path(script).is_file()):
            text = Path(script).read_text()
        assert isinstance(text, str)
        net = self._hn["name"]
        merged = ((self._script if append else "").rstrip("\n") + "\n" + text).strip() + "\n"
        alls.parse_script(merged, net, list(self._hn["layers"]))  # raises before anything changes
        self._script = merged

    def _config(self) -> alls.ScriptConfig:
        return alls.parse_script(self._script, self._hn["name"], list(self._hn["layers"]))

    def _input_layer(self) -> str:
        return next(n for n, layer in self._hn["layers"].items() if layer["type"] == "input_layer")

    def _to_nchw(self, data: Any) -> np.ndarray:
        """NHWC data (array, {input layer: array} or .npy path) -> NCHW rows; checks the per-sample shape."""
        name = self._input_layer()
        if isinstance(data, str | Path):
            data = np.load(data)
        if isinstance(data, dict):
            if set(data) != {name}:
                raise BadInputsShape(f"Expected data for input layers ['{name}'], got {sorted(data)}")
            data = data[name]
        arr = np.asarray(data, dtype=np.float32)
        expected = tuple(self._hn["layers"][name]["output_shapes"][0][1:])
        if arr.ndim != 4 or tuple(arr.shape[1:]) != expected:
            shape = tuple(arr.shape[1:]) if arr.ndim > 1 else tuple(arr.shape)
            raise BadInputsShape(f"Data shape {shape} for layer {name} doesn't match network's input shape {expected}")
        return np.transpose(arr, (0, 3, 1, 2))

    # -- optimize (§3) -------------------------------------------------------------------------------------
    def optimize(self, calib_data: Any, data_type: Any = None, **_: Any) -> None:
        if self.state is not States.HAILO_MODEL:
            raise BackendRuntimeException(f"optimize() needs a parsed model; runner state is {self.state.value}")
        calib = self._to_nchw(calib_data)
        cfg = self._config()
        for pool in self._fake["global_pools"]:
            bits = cfg.bits.get(pool, 8)
            if pool not in cfg.negative_exponent and DESIRED_SHIFT > bits:
                net, layer = pool.split("/", 1)
                raise NegativeSlopeExponentNonFixable(
                    _NEG_SLOPE.format(layer=f"{net}/ne_activation_{layer}", shift=DESIRED_SHIFT, bits=bits)
                )
        calib = calib[: cfg.calibset_size]
        model = onnx.load_from_string(self._onnx)
        tensors = self._fake["tensors"]
        internal = {k: v for k, v in tensors.items() if self._hn["layers"][k]["type"] != "output_layer"}
        input_name = self._hn["layers"][self._input_layer()]["original_names"][0]
        ranges = quant.collect_ranges(model, internal, input_name, calib, cfg.clipping)
        bits = {}
        for layer in internal:
            outs = self._hn["layers"][layer]["output"]
            out_bits = [cfg.bits.get(o, 8) for o in outs if self._hn["layers"][o]["type"] == "output_layer"]
            bits[layer] = max([cfg.bits.get(layer, 8), *out_bits])
        self._fake["ranges"] = {k: [lo, hi, bits[k]] for k, (lo, hi) in ranges.items()}
        self._fake["calibset_size"] = int(len(calib))
        # the simple layer noise analysis: optimize(level >= 1) runs it by default (dfc_api.md 5.3 [C]) and
        # checker_cfg's policy turns it on or off (§2.4 [C]); its numbers here: every layer quantized, SNR of
        # each layer's output vs float on a few calibration rows [I]
        self._fake.pop("partial_snr", None)
        if cfg.checker == "enabled" or (cfg.checker is None and cfg.optimization_level >= 1):
            plan = {tensors[k]: (lo, hi, bits[k]) for k, (lo, hi) in ranges.items()}
            self._fake["partial_snr"] = quant.layer_snr(model, plan, internal, input_name, calib[:LAT_ROWS])
        self.state = States.QUANTIZED_MODEL

    def get_params_statistics(self) -> dict[str, dict[str, np.ndarray]]:
        """Per HN layer, its statistics; ``layer_noise_analysis/partial_snr`` once optimized (dfc_api.md 5.3: the
        layout and key read by HACE's high_precision_inspector.py [C]; the values are the fake's [I])."""
        snr = self._fake.get("partial_snr", {})
        return {
            name: ({"layer_noise_analysis/partial_snr": np.array([snr[name]], dtype=np.float32)} if name in snr else {})
            for name in self._hn.get("layers", {})
        }

    # -- compile (§4.1) ------------------------------------------------------------------------------------
    def compile(self) -> bytes:
        if self.state is not States.QUANTIZED_MODEL:
            raise BackendRuntimeException(
                "Model requires quantized weights in order to run on HW, but none were given. Did you forget to quantize?"
            )
        infeasible = []
        for name, layer in self._hn["layers"].items():
            if layer["type"] in ("input_layer", "output_layer"):
                continue
            _, h, w, c = layer["output_shapes"][0]
            nbytes = h * w * c * self._fake["ranges"][name][2] // 8
            if nbytes > AGENT_BYTES:
                infeasible.append(name.split("/", 1)[1])
        if infeasible:
            raise BackendAllocatorException(
                "Compilation failed: No successful assignment found.\n"
                + "\n".join(f"{n} errors: Agent infeasible" for n in infeasible[:8])
            )
        header = {"net": self._hn["name"], "hw_arch": self.hw_arch, "layers": len(self._hn["layers"]), "fake": True}
        self._hef = b"HEF\x00FAKE" + json.dumps(header).encode()
        self.state = States.COMPILED_MODEL
        return self._hef

    # -- emulation (§5) ------------------------------------------------------------------------------------
    @contextlib.contextmanager
    def infer_context(self, target: InferenceContext, **_: Any) -> Iterator[_Context]:
        if target in (InferenceContext.SDK_HAILO_HW, InferenceContext.SDK_BIT_EXACT):
            raise NotImplementedError(f"the fake DFC cannot emulate {target.name}")
        if target is InferenceContext.SDK_QUANTIZED and self.state not in (States.QUANTIZED_MODEL, States.COMPILED_MODEL):
            raise BackendRuntimeException(f"{target.name} needs a quantized model; runner state is {self.state.value}")
        yield _Context(target)

    def infer(
        self, context: _Context, dataset: Any, batch_size: int | None = None, data_count: int | None = None
    ) -> np.ndarray | list[np.ndarray]:
        x = self._to_nchw(dataset)
        if data_count is not None:
            x = x[:data_count]
        model = onnx.load_from_string(self._onnx)
        input_name = self._hn["layers"][self._input_layer()]["original_names"][0]
        if context.target is InferenceContext.SDK_QUANTIZED:
            plan = {self._fake["tensors"][k]: tuple(v) for k, v in self._fake["ranges"].items()}
            model = quant.fake_quant(model, plan, input_name)  # type: ignore[arg-type]
        y = quant.run(model, input_name, x)
        return np.transpose(y, (0, 2, 3, 1)).astype(np.float32)  # NCHW -> NHWC, dequantized float (§5.2) [C]
