"""The Hailo Dataflow Compiler (DFC) backend: translate -> optimize -> compile -> emulate via ``hailo_sdk_client``.

This package is the only code in the harness that imports ``hailo_sdk_client``, and it does so lazily: the
import happens when a :class:`HailoBackend` is constructed (raising :class:`~harness.errors.BackendUnavailable`
with an install hint when the DFC is missing) and inside each verb. Every DFC call cites its section of
``dfc_api.md`` and the evidence label there ([C] confirmed in Hailo's or several public callers' code, [T] one
third-party report, [I] inferred).

Artifacts (all inside the verb's workdir, nothing else crosses the protocol but paths, dataclasses and arrays):

- translate: ``model.har`` (parsed float model) and ``layer_map.json`` (HN layer -> type, ONNX ``original_names``);
- optimize: ``model_script.alls`` (written *after* every override target was validated against the HN),
  ``model_quantized.har`` and ``dfc_layer_noise.json`` (the DFC's per-layer SNR from its params statistics);
- compile: ``model.hef`` and ``model_compiled.har`` (the compiled HAR, for ``hailo profiler``);
- emulate: returns ``[n, n_src, 1, W]`` float32 from ``SDK_QUANTIZED`` emulation.

Interpreter: this module is on the worker side (:data:`harness.WORKER_SIDE`): it runs in the stage worker under the
DFC environment's own Python (backend option ``python``; :mod:`._interpreter` resolves and probes it from the
harness side), so it imports only the standard library, numpy (1.26 API) and onnx (1.16 API) besides the SDK, and
runs on Python 3.10. The worker's current directory is the stage's workdir, where the DFC writes its own logs
(``hailo_sdk.client.log``, ``acceleras.log``, ``allocator.log``) and scratch folders [T] (HD).

Layouts: the exported model is 4-D NCHW with H=1 (``input`` ``[1, 1, 1, W]``). The DFC takes and returns NHWC
(dfc_api.md §3.2, §5.2 [C]), so calibration/inputs ``[n, 1, 1, W]`` become ``[n, 1, W, 1]`` and outputs
``[n, 1, W', n_src]`` become ``[n, n_src, 1, W']`` (the same conversion HD used for Conv-TasNet, §8.1 [T]).
``W'`` is the HN output width, which is *not* always W: the real DFC's decoder deconv outputs F·stride samples
(15992 for W=16000, ``real_dfc/real_hn.json``), 8 fewer than the ONNX; the pipeline aligns that to the float
reference.

Segments (:mod:`harness.segments`; the code is in :mod:`._segments`): ``translate(..., segment=)`` parses only the segment, passing its start / end
node names and ``net_input_shapes`` keyed by its input tensors (§1.4 [C] for the call shape; how the real parser
names a subgraph's inputs is not public [I]). Each segment input is matched to an HN input layer through
``original_names`` (as LUX does for a whole model [C]), else by position (``input_layer1..k`` in the segment's input
order [I]); each output layer in ``output_layers_order`` likewise to a segment output. That map is written as
``segment_io.json`` beside the HAR (and copied beside the quantized HAR); optimize then passes the dict form
``{HN input layer: NHWC}`` (§3.2 [C]; [I] for several inputs) and emulate the same dict to ``infer``, mapping the
returned list (§5.2 [C]) back to tensor names.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.metadata
import importlib.util
import json
import platform
import re
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from harness.backends._protocol import Compiled, Optimized, OverrideSet, QuantSettings, Segment, Translated
from harness.backends.hailo._layers import LayerTable, layer_map
from harness.backends.hailo._script import build_script, lever_lines
from harness.errors import BackendUnavailable, ConfigError

__all__ = ["DFC_NOISE_FILE", "INSTALL_HINT", "KNOWN_HW_ARCHS", "HailoBackend", "dfc_layer_noise", "layer_table"]

INSTALL_HINT = (
    "download the Dataflow Compiler wheel (hailo_dataflow_compiler-<version>-py3-none-linux_x86_64.whl) from the "
    "Hailo Developer Zone (https://hailo.ai/developer-zone/software-downloads/, login required) and "
    "`pip install` it into this environment; DFC 3.33 supports Python 3.10-3.12 and hailo8/hailo8l"
)

#: hw_arch values seen across DFC 3.x and 5.x (dfc_api.md §1.3) [C]; the installed DFC's own
#: ``exposed_definitions.SUPPORTED_HW_ARCHS`` [C] takes precedence when it exists.
KNOWN_HW_ARCHS = (
    "hailo8",
    "hailo8l",
    "hailo8r",
    "hailo10h",
    "hailo10h2",
    "hailo10p",
    "hailo12l",
    "hailo15h",
    "hailo15m",
    "hailo15l",
    "mars",
)

_NET_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _sdk() -> ModuleType:
    """Import ``hailo_sdk_client`` or raise :class:`BackendUnavailable` with the install hint."""
    try:
        return importlib.import_module("hailo_sdk_client")
    except ImportError as exc:
        raise BackendUnavailable(
            "backend 'hailo'",
            f"hailo_sdk_client is not importable ({type(exc).__name__}: {exc})",
            "the Hailo Dataflow Compiler (hailo_sdk_client) installed in this Python environment",
            INSTALL_HINT,
        ) from exc


def worker_facts() -> dict[str, str]:
    """The interpreter this stage ran under (recorded in the stage's info: which Python, numpy and onnx the DFC had)."""
    out = {"python": platform.python_version(), "executable": sys.executable, "numpy": np.__version__}
    try:
        out["onnx"] = importlib.metadata.version("onnx")
    except importlib.metadata.PackageNotFoundError:
        pass
    return out


def guard_apu_neg_mantissa_correction() -> bool:
    """DFC 3.33's ``ApuNegMantissaCorrection`` can crash on layers without ``neg_weights()`` such as
    ``HailoAvgPool`` (every GlobLN pool); HD replaced its ``should_correct_layer`` before ``optimize`` [T]
    (``real_dfc/README.md``, HD ``har_to_hef.py``). Done the same way, and only when those classes exist.

    Returns:
        True when the guard was installed.
    """
    try:
        apu = importlib.import_module("hailo_model_optimization.algorithms.apu_neg_mantissa_correction")
        base = importlib.import_module("hailo_model_optimization.acceleras.hailo_layers.base_hailo_none_nn_core_layer")
        cls, table, non_nn_core = apu.ApuNegMantissaCorrection, apu.ACTIVATION_CORRECTION_DICT, base.BaseHailoNonNNCoreLayer
    except (ImportError, AttributeError):
        return False

    def should_correct_layer(layer: Any) -> bool:
        return (
            not isinstance(layer, non_nn_core)
            and hasattr(layer, "neg_weights")
            and hasattr(layer, "activation_atomic_op")
            and layer.get_activation_name() in table
        )

    cls.should_correct_layer = staticmethod(should_correct_layer)
    return True


def layer_table(translated: Translated) -> LayerTable:
    """The HN layers of a translated model, with ONNX ``original_names`` when ``layer_map.json`` is present.

    For :func:`~harness.backends.hailo.explain` in the parent process, without loading the HAR (or the SDK).
    """
    path = translated.path.parent / "layer_map.json"
    if path.is_file():
        table: dict[str, dict[str, Any]] = json.loads(path.read_text())
        return table
    return list(translated.layers)


def _input_layer(layers: dict[str, Any], onnx_input: str, net_name: str) -> str:
    """The HN input layer holding ``onnx_input`` (matched through ``original_names``, as LUX does [C])."""
    inputs = [name for name, layer in layers.items() if layer.get("type") == "input_layer"]
    for name in inputs:
        if onnx_input in layers[name].get("original_names", ()):
            return name
    return inputs[0] if len(inputs) == 1 else f"{net_name}/input_layer1"  # naming seen in LUX, HD (§1.5) [C]


class HailoBackend:
    """Hailo DFC backend (see the module docstring).

    Args:
        hw_arch: Target chip (``hailo8``, ``hailo8l``, ``hailo10h`` ...; dfc_api.md §1.3).
        net_name: HN network name; HN layers are ``<net_name>/<layer>``. An identifier.
        python: The DFC environment's interpreter that runs the Hailo stages (resolved on the harness side by
            :meth:`interpreter`; inside the worker it is the running interpreter and is not used).
        translate_timeout, optimize_timeout, compile_timeout, emulate_timeout: Child-process timeouts (s) of the
            stages, overriding the space's ``stage_timeout`` (:meth:`harness.backends.BackendSpec.timeout`);
            without one, compile gets at least :data:`default_timeouts` (a real mapping ran 31 min 42 s).
        layer_noise: The layer noise analysis inside ``optimize()`` that hefsweep's per-layer table reads:
            ``enabled``/``disabled`` set ``model_optimization_config(checker_cfg, policy=...)`` (§2.4 [C]; it costs
            memory), ``default`` leaves it to the DFC (on at optimization level >= 1, §5.3 [C]).

    Raises:
        BackendUnavailable: ``hailo_sdk_client`` cannot be imported.
        ConfigError: ``hw_arch`` is not supported by the installed DFC, or ``net_name``/timeouts are invalid.
        TypeError: an unknown option (``get_backend`` turns it into a ``ConfigError``).
    """

    name = "hailo"
    #: Floors of the stage timeouts when no ``<stage>_timeout`` option is given (seconds).
    default_timeouts = {"compile": 3600.0}

    @staticmethod
    def interpreter(options: dict[str, Any]) -> str:
        """The interpreter of the Hailo stages (harness side; see :mod:`._interpreter`)."""
        from harness.backends.hailo._interpreter import resolve_python

        return resolve_python(options.get("python"))

    @staticmethod
    def describe(options: dict[str, Any]) -> dict[str, str]:
        """:meth:`versions` as the DFC's own interpreter reports it (harness side: the SDK is never imported here)."""
        from harness.backends.hailo._interpreter import probe, resolve_python

        return dict(probe(resolve_python(options.get("python")), options)["versions"])

    @staticmethod
    def family(layer: str, translated: Translated) -> str | None:
        """The role family of an HN layer for the repair loop: ``role:gln_var_pool`` for a GlobLN variance pool (so a
        fix moving along the pools covers the 49 variance pools, not every avgpool), else None (name family)."""
        from harness.backends.hailo._layers import roles_of

        roles = roles_of(layer, layer_table(translated))
        for role in ("gln_var_pool", "gln_mean_pool", "norm_rsqrt", "norm_out"):
            if role in roles:
                return f"role:{role}"
        return None

    @staticmethod
    def diagnose(failure: Any, translated: Translated) -> str | None:
        """The HN layer a classified failure is about (``ne_activation_avgpool6`` -> ``<net>/avgpool6``)."""
        from harness.backends.hailo._rules import explain

        return explain(failure, layer_table(translated)).resolved_layer

    def __init__(
        self,
        hw_arch: str = "hailo8",
        net_name: str = "convtas",
        python: str | None = None,
        translate_timeout: float | None = None,
        optimize_timeout: float | None = None,
        compile_timeout: float | None = None,
        emulate_timeout: float | None = None,
        layer_noise: str = "default",
    ) -> None:
        _sdk()
        try:
            # §1.1 [C] (HACE main.py): the installed DFC's own list of archs.
            supported = tuple(importlib.import_module("hailo_sdk_client.exposed_definitions").SUPPORTED_HW_ARCHS)
        except (ImportError, AttributeError):
            supported = KNOWN_HW_ARCHS
        self.supported_hw_archs = supported
        if hw_arch not in supported:
            raise ConfigError("backend option hw_arch", repr(hw_arch), f"one of {list(supported)}")
        if not isinstance(net_name, str) or not _NET_NAME.fullmatch(net_name):
            raise ConfigError("backend option net_name", repr(net_name), "an identifier such as 'convtas'")
        timeouts = {"translate": translate_timeout, "optimize": optimize_timeout, "compile": compile_timeout,
                    "emulate": emulate_timeout}  # fmt: skip
        for stage, value in timeouts.items():
            if value is not None and (isinstance(value, bool) or not isinstance(value, int | float) or value <= 0):
                raise ConfigError(f"backend option {stage}_timeout", repr(value), "a positive number of seconds")
        if layer_noise not in ("default", "enabled", "disabled"):
            raise ConfigError("backend option layer_noise", repr(layer_noise), "one of 'default', 'enabled', 'disabled'")
        self.hw_arch = hw_arch
        self.net_name = net_name
        self.layer_noise = layer_noise
        #: Per-stage timeouts given as options (the harness reads them from the options, see the class docstring).
        self.stage_timeouts: dict[str, float] = {k: float(v) for k, v in timeouts.items() if v is not None}

    def versions(self) -> dict[str, str]:
        """DFC version, target hw_arch and (when ``hailo_platform`` is importable) the HailoRT version."""
        out = {"hailo_dfc": str(_sdk().__version__), "hw_arch": self.hw_arch}  # §1.1 [C] __version__ (LUX)
        if importlib.util.find_spec("hailo_platform") is not None:
            try:
                out["hailort"] = importlib.metadata.version("hailort")  # the HailoRT wheel's name [I]
            except importlib.metadata.PackageNotFoundError:
                out["hailort"] = str(getattr(importlib.import_module("hailo_platform"), "__version__", "unknown"))
        return out

    def _runner(self, har: Path | None = None) -> Any:
        sdk = _sdk()
        if har is None:
            return sdk.ClientRunner(hw_arch=self.hw_arch)  # §1.2 [C]: keyword hw_arch (MZ, LUX)
        return sdk.ClientRunner(hw_arch=self.hw_arch, har=str(har))  # §1.2 [C]: har= loads a saved HAR (MZ, LUX)

    # -- translate ---------------------------------------------------------------------------------------
    def translate(self, onnx_path: Path, workdir: Path, segment: Segment | None = None) -> Translated:
        """Parse the ONNX model (or one segment of it) into a HAR; list its HN layers; write the HN -> ONNX layer map."""
        import onnx

        if segment is not None:
            from harness.backends.hailo._segments import translate_segment

            return translate_segment(self, onnx_path, workdir, segment)

        model = onnx.load(str(onnx_path), load_external_data=False)
        initializers = {t.name for t in model.graph.initializer}
        inputs = [i for i in model.graph.input if i.name not in initializers]
        if len(inputs) != 1:
            raise ValueError(f"{onnx_path}: {len(inputs)} inputs; expected exactly one")
        dims = [d.dim_value for d in inputs[0].type.tensor_type.shape.dim]
        if len(dims) != 4 or dims[:3] != [1, 1, 1] or dims[3] <= 0:
            raise ValueError(f"{onnx_path}: input shape {dims}; expected [1, 1, 1, W]")
        outputs = {o.name for o in model.graph.output}
        end_nodes = [n.name for n in model.graph.node if outputs & set(n.output)]
        workdir.mkdir(parents=True, exist_ok=True)

        runner = self._runner()
        # §1.4 [C]: start/end are ONNX names (LUX passes input names as start nodes), net_input_shapes is
        # {onnx_input: NCHW shape} (LUX, HD [1, 1, 1, 16000]).
        runner.translate_onnx_model(
            str(onnx_path),
            self.net_name,
            start_node_names=[inputs[0].name],
            end_node_names=end_nodes,
            net_input_shapes={inputs[0].name: [1, 1, 1, dims[3]]},
        )
        har = workdir / "model.har"
        runner.save_har(str(har))  # §1.5 [C]
        layers = runner.get_hn_dict()["layers"]  # §1.5, §4.2 [C]: scoped names -> dicts with original_names
        (workdir / "layer_map.json").write_text(json.dumps(layer_map(layers), indent=2))
        return Translated(
            path=har,
            input_name=_input_layer(layers, inputs[0].name, self.net_name),
            width=dims[3],
            layers=tuple(layers),
        )

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
        """Validate overrides against the HN, write and load the model script, quantize with calibration data.

        ``reuse_dir`` is not used: the DFC does not expose reusable calibration statistics publicly.

        Raises:
            OverrideTargetNotFound: an override names no HN layer (raised before anything is written).
            ValueError: the calibration array is not ``[n, 1, 1, W]``.
        """
        if isinstance(calibration, dict):
            from harness.backends.hailo._segments import optimize_segment

            return optimize_segment(self, translated, calibration, overrides, settings, workdir)
        if calibration.ndim != 4 or calibration.shape[1:3] != (1, 1) or calibration.shape[3] != translated.width:
            raise ValueError(
                f"calibration array shape {calibration.shape}; expected [n, 1, 1, {translated.width}]"
            )
        runner = self._runner(translated.path)
        layers = runner.get_hn_dict()["layers"]  # §4.2 [C]
        script = build_script(overrides, settings, layers, calibset_size=int(calibration.shape[0]),
                              layer_noise=self.layer_noise)  # fmt: skip

        workdir.mkdir(parents=True, exist_ok=True)
        alls = script.write(workdir / "model_script.alls")
        runner.load_model_script(script.text)  # §2.1 [C]: script text, loaded before optimize()
        data = np.ascontiguousarray(np.transpose(calibration, (0, 2, 3, 1)), dtype=np.float32)  # NCHW -> NHWC
        input_layer = translated.input_name
        if input_layer not in layers:
            input_layer = _input_layer(layers, "input", self.net_name)
        guarded = guard_apu_neg_mantissa_correction()
        # §3.1 [C]: positional calib_data; §3.2 [C]: dict {HN input layer: NHWC float32} (LUX, HD).
        runner.optimize({input_layer: data})
        out = workdir / "model_quantized.har"
        runner.save_har(str(out))  # §1.5 [C]
        # the DFC's own per-layer SNR, read here where the runner is (the harness process never loads the SDK)
        (workdir / DFC_NOISE_FILE).write_text(json.dumps(dfc_layer_noise(runner, layers), indent=2))
        info = {
            "hw_arch": self.hw_arch,
            "net_name": self.net_name,
            "dfc_version": str(_sdk().__version__),  # §1.1 [C]
            "calibset_size": int(calibration.shape[0]),
            "input_layer": input_layer,
            "apu_neg_mantissa_guard": guarded,
            "worker": worker_facts(),
            **script.info(),
        }
        return Optimized(path=out, script=alls, applied=script.applied, ignored=script.ignored, info=info)

    # -- compile -----------------------------------------------------------------------------------------
    def compile(self, optimized: Optimized, workdir: Path, levers: OverrideSet | None = None) -> Compiled:
        """Compile the quantized HAR to ``model.hef``, with the compiler levers of ``levers`` (else those the
        optimize script carried) appended to the runner's script first."""
        runner = self._runner(optimized.path)
        lines = list(lever_lines(levers) if levers is not None else optimized.info.get("compiler_levers") or [])
        if lines:  # §2.1 [C]: compiler-side lines are appended before compile() (MZ compile_model)
            runner.load_model_script("\n".join(lines) + "\n", append=True)
        hef = runner.compile()  # §4.1 [C]: returns the HEF as bytes
        workdir.mkdir(parents=True, exist_ok=True)
        out = workdir / "model.hef"
        out.write_bytes(hef)
        runner.save_har(str(workdir / "model_compiled.har"))  # §4.1 [C]: a compiled HAR carries the HEF
        info = {
            "hw_arch": self.hw_arch,
            "dfc_version": str(_sdk().__version__),  # §1.1 [C]
            "size_bytes": len(hef),
            "sha256": hashlib.sha256(hef).hexdigest(),
            "worker": worker_facts(),
        }
        if lines:
            info["compiler_levers"] = lines
        return Compiled(path=out, info=info)

    # -- emulate -----------------------------------------------------------------------------------------
    def emulate(self, target: Optimized, inputs: np.ndarray) -> np.ndarray:
        """Quantized emulation (``SDK_QUANTIZED``) of ``[n, 1, 1, W]`` inputs -> ``[n, n_src, 1, W']`` float32.

        ``W'`` is the HN output layer's width, which may be shorter than W (the DFC's deconv gives F·stride
        samples); any other shape is an error.
        """
        if isinstance(inputs, dict):
            from harness.backends.hailo._segments import emulate_segment

            return emulate_segment(self, target, inputs)
        if inputs.ndim != 4 or inputs.shape[1:3] != (1, 1):
            raise ValueError(f"emulation inputs shape {inputs.shape}; expected [n, 1, 1, W]")
        sdk = _sdk()
        runner = self._runner(target.path)
        width = _output_width(runner.get_hn_dict(), inputs.shape[3])
        data = np.ascontiguousarray(np.transpose(inputs, (0, 2, 3, 1)), dtype=np.float32)
        # §5.1/§5.2 [C]: infer_context(InferenceContext.SDK_QUANTIZED) + infer(ctx, NHWC array).
        with runner.infer_context(sdk.InferenceContext.SDK_QUANTIZED) as ctx:
            result = runner.infer(ctx, data)
        if isinstance(result, (list, tuple)):  # §5.2 [C]: a list in output_layers_order for multi-output models
            result = result[0]
        y = np.asarray(result, dtype=np.float32)
        if y.ndim == 3:  # NWC without the H axis, as HailoRT may return for H=1 (§8.1) [T]
            y = y[:, None]
        if y.ndim != 4 or y.shape[0] != inputs.shape[0] or y.shape[1] != 1 or y.shape[2] not in (width, inputs.shape[3]):
            expected = f"NHWC [{inputs.shape[0]}, 1, {width}, n_src] (the HN output width)"
            raise ValueError(f"emulated output shape {y.shape}; expected {expected}")
        return np.ascontiguousarray(np.transpose(y, (0, 3, 1, 2)))  # NHWC -> [n, n_src, 1, W']


def _output_width(hn: dict[str, Any], default: int) -> int:
    """The W of the HN's (first) output layer, ``output_shapes`` ``[-1, 1, W', C]`` (§4.2 [C]); ``default`` if absent."""
    layers = hn.get("layers", {})
    order = hn.get("net_params", {}).get("output_layers_order") or [
        n for n, layer in layers.items() if layer.get("type") == "output_layer"
    ]
    try:
        shape = layers[order[0]].get("output_shapes") or layers[order[0]].get("input_shapes")
        return int(shape[0][2])
    except (IndexError, KeyError, TypeError, ValueError):
        return default


#: Written next to the quantized HAR by :meth:`HailoBackend.optimize`: the DFC's per-layer SNR (or why there is none).
DFC_NOISE_FILE = "dfc_layer_noise.json"
_LAT_KEYS = (("layer_noise_analysis/snr", "advanced"), ("layer_noise_analysis/partial_snr", "simple"))


def dfc_layer_noise(runner: Any, layers: dict[str, Any]) -> dict[str, Any]:
    """The per-layer SNR the DFC recorded in the runner's params statistics (dfc_api.md §5.3).

    ``get_params_statistics()[layer]["layer_noise_analysis/snr"]`` comes from an advanced analysis
    (``analyze_noise``), ``.../partial_snr`` from the simple one ``optimize()`` runs at optimization level >= 1
    (the reader of HACE's ``high_precision_inspector.py`` [C]; it also skips input and output layers and prefers
    ``snr``). A value is an array (one per output): the worst one is kept. Never raises: a diagnostic must not
    fail an optimize that passed.

    Returns:
        ``{"available": True, "rows": [{layer, original_names, type, sqnr_db, source, index}]}`` or
        ``{"available": False, "reason": ...}``.
    """
    getter = getattr(runner, "get_params_statistics", None)
    if getter is None:
        return {"available": False, "reason": "this hailo_sdk_client's ClientRunner has no get_params_statistics()"}
    try:
        stats = getter()
        rows = []
        for index, (name, layer) in enumerate(layers.items()):
            if layer.get("type") in ("input_layer", "output_layer"):
                continue
            try:
                per = stats[name]
            except (KeyError, IndexError, TypeError):
                continue
            for key, source in _LAT_KEYS:
                value = per.get(key) if hasattr(per, "get") else None
                if value is None:
                    continue
                arr = np.asarray(value, dtype=np.float64).reshape(-1)
                if arr.size:
                    rows.append({"layer": name, "original_names": list(layer.get("original_names", [])),
                                 "type": str(layer.get("type", "")), "sqnr_db": float(arr.min()), "source": source,
                                 "index": index})  # fmt: skip
                    break
    except Exception as exc:  # noqa: BLE001 - see the docstring
        return {"available": False, "reason": f"get_params_statistics() failed: {type(exc).__name__}: {str(exc)[:200]}"}
    if not rows:
        return {
            "available": False,
            "reason": "the DFC recorded no layer_noise_analysis statistics (optimization level 0 or a disabled "
            "checker_cfg runs none); set backend option layer_noise: enabled, or run "
            "`hailo analyze-noise <har> --analyze-mode advanced --data-path <npy>`",
        }
    return {"available": True, "rows": rows}
