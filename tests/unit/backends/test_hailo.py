"""The Hailo backend: failure classification (dfc_api.md §6 texts) and the backend driven through the fake DFC."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

from harness.backends import Override, OverrideSet, OverrideTargetNotFound, QuantSettings, get_backend
from harness.backends._ort import run_onnx
from harness.backends.hailo import explain, layer_table
from harness.errors import BackendUnavailable, ConfigError
from harness.failures import classify
from harness.metrics import si_snr

FAKES = Path(__file__).resolve().parents[2] / "fakes"
W = 1024
#: The fake's GlobLN shift is floor(log2(latent width)) (real_dfc: 1999 -> 10.0 > 8 bits); W = 1024 (latent 127)
#: quantizes fine, so the seed failure needs the real 1 s input.
W_LONG = 16000
NONE = OverrideSet("none")


def _export(tiny_checkpoint: Path, path: Path, width: int, norm: str | None = None, per_source: bool = False) -> Path:
    """``per_source``: per-source decoder and mask multiply, which the fake (like the real DFC) needs to compile."""
    from harness.export import export_onnx
    from harness.model import load_checkpoint
    from harness.substitutions import SubstitutionSpec, apply_substitutions

    model = load_checkpoint(tiny_checkpoint)
    topo = {"decoder": "per_source", "mask_mul": "per_source"} if per_source else {}
    if norm or topo:
        model, _ = apply_substitutions(model, SubstitutionSpec(norm=norm, **topo))  # type: ignore[arg-type]
    export_onnx(model, width, path)
    return path


@pytest.fixture(scope="module")
def models(tiny_checkpoint: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("hailo_onnx")
    return {
        "gLN": _export(tiny_checkpoint, d / "gln.onnx", W),
        "cLN": _export(tiny_checkpoint, d / "cln.onnx", W, "cLN"),
        "gLN_long": _export(tiny_checkpoint, d / "gln_long.onnx", W_LONG, per_source=True),
        "cLN_ps": _export(tiny_checkpoint, d / "cln_ps.onnx", W, "cLN", per_source=True),
    }


@pytest.fixture(scope="module")
def signals() -> tuple[np.ndarray, np.ndarray]:
    from harness.audio import synth_mixture

    rng = np.random.default_rng(1)
    calib = np.stack([synth_mixture(rng, W, 16000)[0] for _ in range(8)])[:, None, None, :]
    evals = np.stack([synth_mixture(rng, W, 16000)[0] for _ in range(3)])[:, None, None, :]
    return calib.astype(np.float32), evals.astype(np.float32)


@pytest.fixture(scope="module")
def long_calib() -> np.ndarray:
    from harness.audio import synth_mixture

    rng = np.random.default_rng(2)
    return np.stack([synth_mixture(rng, W_LONG, 16000)[0] for _ in range(4)])[:, None, None, :].astype(np.float32)


def _failure(stage: str, exc: BaseException):
    return classify(stage, type(exc).__name__, str(exc))


# -- classification of every failure quoted in dfc_api.md §6 / §8 ----------------------------------------------
NEG_SLOPE_TAIL = (
    " This error raises when the data or weight range are not balanced. Mostly happens when using random "
    "calibration-set/weights, the calibration-set is not normalized properly or batch-normalization was not used "
    "during training."
)
CASES = [
    (
        "optimize", "NegativeSlopeExponentNonFixable",
        "Quantization failed in layer EfficientNetV2_224_224/ne_activation_fc50 due to unsupported required slope. "
        "Desired shift is 11.0, but op has only 8 data bits." + NEG_SLOPE_TAIL,
        "optimize:NegativeSlopeExponentNonFixable:EfficientNetV2_224_224/ne_activation_fc50",
        {"desired_shift": 11.0, "data_bits": 8.0},
    ),
    (
        "optimize", "NegativeSlopeExponentNonFixable",
        "Quantization failed in layer model/ew_mult1 due to unsupported required slope. Desired shift is 40.0, but "
        "op has only 8 data bits.",
        "optimize:NegativeSlopeExponentNonFixable:model/ew_mult1",
        {"desired_shift": 40.0, "data_bits": 8.0},
    ),
    (
        "optimize", "NegativeSlopeExponentNonFixable",
        "Quantization failed in layer yolo/ne_activation_mul_and_add78 due to unsupported required slope. desired "
        "shift is 8.0, but op has only 8 data bits",
        "optimize:NegativeSlopeExponentNonFixable:yolo/ne_activation_mul_and_add78",
        {"desired_shift": 8.0, "data_bits": 8.0},
    ),
    (
        "optimize", "Exception",
        "layer model/matmul3 does not support shift delta. To overcome this issue you should force larger range at "
        "the inputs of the layer using command quantization_param([layer_name], force_range_in=[…], "
        "force_range_index=index)",
        "optimize:Exception:shift_delta:model/matmul3", {},
    ),
    (
        "optimize", "AccelerasUnsupportedError",
        "Unsupported layers for the provided optimization target: vit/conv1, vit/fc3",
        "optimize:AccelerasUnsupportedError:unsupported_layers", {},
    ),
    (
        "optimize", "AccelerasUnsupportedError",
        "vit/matmul_op: Matmul without transpose input and with negative range is not supported",
        "optimize:AccelerasUnsupportedError:matmul_negative_range", {},
    ),
    (
        "optimize", "AccelerasResourceError",
        "GPU memory has been exhausted. Please try to use Quantization-Aware Fine-Tuning with lower batch size or "
        "run on CPU.",
        "optimize:AccelerasResourceError:gpu_memory", {},
    ),
    (
        "optimize", "BadInputsShape",
        "Data shape (5, 1) for layer bilstm_model/input_layer1 doesn't match network's input shape (1, 5, 1)",
        "optimize:BadInputsShape:bilstm_model/input_layer1", {},
    ),
    (
        "translate", "ParsingWithRecommendationException",
        "Parsing failed. The errors found in the graph are: UnsupportedOperationError in op /model.23/GatherElements: "
        "GatherElements operation is unsupported",
        "translate:ParsingWithRecommendationException:unsupported_op:GatherElements", {},
    ),
    (
        "translate", "ParsingWithRecommendationException",
        "Parsing failed. The errors found in the graph are: UnsupportedShuffleLayerError in op /Reshape: Failed to "
        "determine type of layer to create in node /Reshape (RESHAPE)",
        "translate:ParsingWithRecommendationException:UnsupportedShuffleLayerError", {},
    ),
    (
        "translate", "ParsingWithRecommendationException",
        "Parsing failed. The errors found in the graph are: UnsupportedConv3DError in op /conv/Conv: 3D conv",
        "translate:ParsingWithRecommendationException:UnsupportedConv3DError", {},
    ),
    (
        "translate", "UnsupportedModelError",
        "1D form is not supported in layer Identity_1 of type ConcatLayer",
        "translate:UnsupportedModelError:1d_form:Identity_1", {},
    ),
    (
        "translate", "UnsupportedModelError",
        "ew mult layer net/ew_mult1 expects 2 inputs but found 1",
        "translate:UnsupportedModelError:inputs:net/ew_mult1", {},
    ),
    ("translate", "MisspellNodeError", "Unable to find end node /x in the model", "translate:MisspellNodeError:node_name", {}),
    (
        "optimize", "BackendScriptParserException",
        "Layer convtas/ne_activation_avgpool6 not found in model",
        "optimize:BackendScriptParserException:convtas/ne_activation_avgpool6", {},
    ),
    (
        "optimize", "BackendScriptParserException",
        "Parsing failed at:\n>!<normalization([0.0], [1.0])",
        "optimize:BackendScriptParserException:script_syntax", {},
    ),
    (
        "compile", "AllocatorScriptParserException",
        "Error in the last layers of the model, expected conv but found concat layer.",
        "compile:AllocatorScriptParserException:last_layers:concat", {},
    ),
    (
        "compile", "BackendRuntimeException",
        "Model requires quantized weights in order to run on HW, but none were given. Did you forget to quantize?",
        "compile:BackendRuntimeException:not_quantized", {},
    ),
    (
        "compile", "BackendAllocatorException",
        "Compilation failed:\ndw66 errors: Agent infeasible\nconv68 errors: Agent infeasible\n"
        "auto_spatial_reshape_from_dw66_to_conv69_1 errors: Agent infeasible\n"
        "Mapping Failed (Timeout, allocation time: 31m 42s)",
        "compile:BackendAllocatorException:agent_infeasible", {},
    ),
    (
        "compile", "BackendAllocatorException", "Mapping Failed (Timeout, allocation time: 31m 42s)",
        "compile:BackendAllocatorException:mapping_timeout", {},
    ),
    (
        "compile", "BackendAllocatorException",
        "Reshape is needed for layers: conv2, conv3, but adding a reshape has failed.",
        "compile:BackendAllocatorException:reshape_needed", {},
    ),
    ("compile", "BackendAllocatorException", "No valid partition found", "compile:BackendAllocatorException:no_valid_partition", {}),
    ("compile", "BackendAllocatorException", "Memory units capacity exceeded", "compile:BackendAllocatorException:memory_capacity", {}),
    (
        "compile", "BackendAllocatorException", "Super deconv is not supported with groups",
        "compile:BackendAllocatorException:grouped_deconv", {},
    ),
    (
        "compile", "BackendException", "Unsupported dimensions … [-1, 1, 1999, 262144]",
        "compile:BackendException:unsupported_dimensions", {"last_dim": 262144.0},
    ),
]


@pytest.mark.parametrize(("stage", "exc", "message", "signature", "numbers"), CASES)
def test_every_documented_failure_is_classified(stage, exc, message, signature, numbers) -> None:
    f = classify(stage, exc, message)
    assert f.known and f.signature == signature
    for key, value in numbers.items():
        assert f.numbers[key] == value


def test_harness_signatures_keep_their_rules() -> None:
    own = classify("optimize", "OverrideTargetNotFound", "Layer 'mask/*' not found in model: no layer matches")
    assert own.signature == "optimize:OverrideTargetNotFound:mask/*" and "override" in own.meaning
    assert classify("export", "RuntimeError", "UnsupportedOperatorError: aten::foo").signature == "export:RuntimeError:unsupported_op"
    assert classify("compile", "WeirdError", "odd").signature == "compile:WeirdError:unclassified"


def test_explain_resolves_the_layer_and_computes_the_violation() -> None:
    hn = {
        "convtas/avgpool6": {"type": "avgpool", "original_names": ["/masker/TCN.1/shared_block/shared_block.2/ReduceMean"]},
        "convtas/dw66": {"type": "dw", "original_names": ["/x/Conv"]},
        "convtas/conv68": {"type": "conv", "original_names": ["/y/Conv"]},
    }
    msg = CASES[0][2].replace("EfficientNetV2_224_224/ne_activation_fc50", "convtas/ne_activation_avgpool6")
    f = classify("optimize", "NegativeSlopeExponentNonFixable", msg.replace("11.0", "10.0"))
    d = explain(f, hn)
    assert d.layer == "convtas/ne_activation_avgpool6" and d.resolved_layer == "convtas/avgpool6"
    assert d.violation == 2.0 and d.onnx_nodes == ("/masker/TCN.1/shared_block/shared_block.2/ReduceMean",)
    alloc = explain(classify("compile", "BackendAllocatorException", CASES[18][2]), hn)
    assert alloc.layers[:2] == ("dw66", "conv68") and alloc.resolved_layer == "convtas/dw66" and alloc.violation is None
    reshape = explain(classify("compile", "BackendAllocatorException", CASES[20][2]), list(hn))
    assert reshape.layers == ("conv2", "conv3") and reshape.resolved_layer is None and reshape.nearest
    assert json.dumps(d.to_dict())


# -- construction ------------------------------------------------------------------------------------------------
def test_unavailable_without_the_sdk(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "hailo_sdk_client", None)  # makes the import fail even if installed
    with pytest.raises(BackendUnavailable) as err:
        get_backend("hailo")
    assert "hailo_sdk_client" in str(err.value) and "Developer Zone" in str(err.value)


def test_options_are_validated(fake_dfc) -> None:
    be = get_backend("hailo", hw_arch="hailo8l", net_name="sep", compile_timeout=3600)
    assert be.hw_arch == "hailo8l" and be.stage_timeouts == {"compile": 3600.0}
    assert be.versions() == {"hailo_dfc": "3.33.0", "hw_arch": "hailo8l"}
    for bad in ({"hw_arch": "hailo99"}, {"net_name": "a/b"}, {"optimize_timeout": -1}, {"no_such_option": 1}):
        with pytest.raises(ConfigError):
            get_backend("hailo", **bad)


# -- the backend through the fake ---------------------------------------------------------------------------------
def test_translate_writes_har_layers_and_layer_map(fake_dfc, models, tmp_path: Path) -> None:
    be = get_backend("hailo")
    tr = be.translate(models["gLN"], tmp_path / "t")
    assert tr.path == tmp_path / "t" / "model.har" and tr.path.is_file()
    assert tr.input_name == "convtas/input_layer1" and tr.input_name in tr.layers and tr.width == W
    pools = [n for n in tr.layers if "/avgpool" in n]
    assert len(pools) == 10  # 5 gLNs x (mean, variance) ReduceMeans over [1, 2, 3], each avgpool + reduce_mean
    lmap = json.loads((tmp_path / "t" / "layer_map.json").read_text())
    pool = lmap["convtas/avgpool1"]
    assert pool["type"] == "avgpool" and pool["original_names"] == ["/masker/bottleneck/bottleneck.0/ReduceMean"]
    assert pool["output"] == ["convtas/reduce_mean1"] and pool["output_shapes"] == [[-1, 1, 1, 16]]  # edges for roles
    assert lmap["convtas/reduce_mean1"]["original_names"] == ["/masker/bottleneck/bottleneck.0/ReduceMean"]
    assert not [n for n in tr.layers if "ew_div" in n]  # the real HN has none: Div is inv_sqrt + ew_mult
    assert layer_table(tr) == lmap
    cln = be.translate(models["cLN"], tmp_path / "c")
    assert not [n for n in cln.layers if "/avgpool" in n] and any("/reduce_mean" in n for n in cln.layers)


def test_gln_seed_failure_resolves_and_moves_along_the_avgpools(fake_dfc, models, long_calib, tmp_path: Path) -> None:
    be = get_backend("hailo")
    tr = be.translate(models["gLN_long"], tmp_path / "t")
    calib = long_calib
    with pytest.raises(Exception) as err:
        be.optimize(tr, calib, NONE, QuantSettings(), tmp_path / "o1")
    f = _failure("optimize", err.value)
    # the first gLN's variance pool (fed by square1, as the real HN's avgpool6 by square3) is the first unfixed one
    assert f.signature == "optimize:NegativeSlopeExponentNonFixable:convtas/ne_activation_avgpool2"
    d = explain(f, layer_table(tr))
    assert d.resolved_layer == "convtas/avgpool2" and d.violation == 2.0  # shift 10 (kernel 1999) vs 8 bits
    block = "/masker/bottleneck/bottleneck.0"
    assert d.onnx_nodes == (f"{block}/ReduceMean_1",)
    assert (tmp_path / "o1" / "model_script.alls").read_text().startswith("model_optimization_config(calibration")

    one = OverrideSet("ne1", (Override("negative_exponent", (d.resolved_layer,)),))
    with pytest.raises(Exception) as err2:
        be.optimize(tr, calib, one, QuantSettings(), tmp_path / "o2")
    assert _failure("optimize", err2.value).signature.endswith(":convtas/ne_activation_avgpool4")  # one layer at a time

    fam = OverrideSet("ne_all", (Override("negative_exponent", ("convtas/avgpool*",)),))
    opt = be.optimize(tr, calib, fam, QuantSettings(), tmp_path / "o3")
    assert opt.path.name == "model_quantized.har" and opt.script is not None
    assert "model_optimization_config(negative_exponent, layers=[convtas/avgpool1, convtas/avgpool2, " in opt.script.read_text()
    assert opt.info["negative_exponent_layers"] == [n for n in tr.layers if "/avgpool" in n]
    assert opt.info["calibset_size"] == 4


def test_short_kernels_quantize_and_the_cln_has_no_pools(fake_dfc, models, signals, tmp_path: Path) -> None:
    """W = 1024 -> latent 127: shift 6 fits 8 bits, so the gLN passes optimize (and meets the grouped deconv)."""
    be = get_backend("hailo")
    opt = be.optimize(be.translate(models["gLN"], tmp_path / "t"), signals[0], NONE, QuantSettings(), tmp_path / "o")
    with pytest.raises(Exception) as err:
        be.compile(opt, tmp_path / "c")
    assert "Super deconv is not supported with groups" in str(err.value)


def test_sixteen_bit_fixes_too_and_emulation_tracks_the_float_model(fake_dfc, models, signals, tmp_path: Path) -> None:
    be = get_backend("hailo")
    tr = be.translate(models["gLN"], tmp_path / "t")
    calib, evals = signals
    ref = run_onnx(models["gLN"], evals)
    snr, on_calib = {}, {}
    for name, ovs in {
        "8bit": OverrideSet("ne", (Override("negative_exponent", ("avgpool*",)),)),
        "16bit": OverrideSet("p16", (Override("precision16", ("*",)),)),  # 16 data bits also satisfy the shift
    }.items():
        opt = be.optimize(tr, calib, ovs, QuantSettings(), tmp_path / name)
        out = be.emulate(opt, evals)
        hn_w = W - 8  # the HN deconv gives F * stride = 127 * 8 samples, 8 fewer than the ONNX (real_dfc) [T]
        assert ref.shape == (3, 2, 1, W) and out.shape == (3, 2, 1, hn_w) and out.dtype == np.float32 and np.isfinite(out).all()
        snr[name] = float(si_snr(out[:, :, 0], ref[:, :, 0, :hn_w]).mean())
        ref_calib = run_onnx(models["gLN"], calib[:3])[:, :, 0, :hn_w]
        on_calib[name] = float(si_snr(be.emulate(opt, calib[:3])[:, :, 0], ref_calib).mean())
    assert 10.0 < snr["8bit"] < 40.0  # every activation 8-bit, min/max ranges from 8 clips
    assert snr["16bit"] > snr["8bit"] + 2.0  # unseen clips also exceed calibrated ranges: clipping limits 16-bit
    assert on_calib["16bit"] > on_calib["8bit"] + 20.0


def test_cln_passes_optimize_and_compiles_a_hef(fake_dfc, models, signals, tmp_path: Path) -> None:
    be = get_backend("hailo")
    tr = be.translate(models["cLN_ps"], tmp_path / "t")  # per-source decoder + mask multiply: nothing blocks
    opt = be.optimize(tr, signals[0], NONE, QuantSettings(), tmp_path / "o")
    comp = be.compile(opt, tmp_path / "c")
    assert comp.path == tmp_path / "c" / "model.hef" and comp.path.read_bytes().startswith(b"HEF")
    assert comp.info["size_bytes"] == comp.path.stat().st_size and (tmp_path / "c" / "model_compiled.har").is_file()


def test_optimize_records_the_dfc_layer_noise(fake_dfc, models, signals, tmp_path: Path) -> None:
    """dfc_layer_noise.json next to the quantized HAR: the runner's layer_noise_analysis statistics per HN layer
    (I/O layers skipped, as HACE's reader does); all-16-bit layers are cleaner than 8-bit ones, layer by layer."""
    from harness.layer_noise import hailo_noise_report

    be = get_backend("hailo")
    tr = be.translate(models["cLN"], tmp_path / "t")
    docs = {}
    for name, ovs in {"8bit": NONE, "16bit": OverrideSet("p16", (Override("precision16", ("*",)),))}.items():
        opt = be.optimize(tr, signals[0], ovs, QuantSettings(), tmp_path / name)
        docs[name] = json.loads((opt.path.parent / "dfc_layer_noise.json").read_text())
    hn = json.loads((tmp_path / "t" / "layer_map.json").read_text())
    inner = {k for k, v in hn.items() if v["type"] not in ("input_layer", "output_layer")}
    for doc in docs.values():
        assert doc["available"] and {r["layer"] for r in doc["rows"]} == inner
        assert {r["source"] for r in doc["rows"]} == {"simple"}  # optimize's own analysis: partial_snr
    snr = {k: {r["layer"]: r["sqnr_db"] for r in d["rows"]} for k, d in docs.items()}
    finite = [k for k in inner if np.isfinite(snr["8bit"][k]) and np.isfinite(snr["16bit"][k])]
    gain = [snr["16bit"][k] - snr["8bit"][k] for k in finite]  # errors accumulate: far from the ideal +48 dB
    assert len(finite) == len(inner) and min(gain) > 6.0 and float(np.median(gain)) > 12.0, sorted(gain)[:5]
    rep = hailo_noise_report(tmp_path / "8bit" / "model_quantized.har")
    assert rep.available and rep.backend == "hailo" and len(rep.rows) == len(inner)
    assert rep.rows[0].sqnr_db == min(snr["8bit"].values())  # worst first


def test_layer_noise_option_drives_the_dfc_checker(fake_dfc, models, signals, tmp_path: Path) -> None:
    """backend option layer_noise writes checker_cfg's policy; at optimization level 0 the DFC runs no analysis
    unless it is enabled (dfc_api.md 2.4, 5.3)."""
    level0 = OverrideSet("l0", (Override("optimization_level", (), 0),))
    cases = {
        "default": ("default", NONE, True, None),
        "disabled": ("disabled", NONE, False, "model_optimization_config(checker_cfg, policy=disabled)"),
        "level0": ("default", level0, False, None),
        "level0_enabled": ("enabled", level0, True, "model_optimization_config(checker_cfg, policy=enabled)"),
    }
    for name, (policy, ovs, available, line) in cases.items():
        be = get_backend("hailo", layer_noise=policy)
        tr = be.translate(models["cLN"], tmp_path / name / "t")
        opt = be.optimize(tr, signals[0], ovs, QuantSettings(), tmp_path / name / "o")
        doc = json.loads((opt.path.parent / "dfc_layer_noise.json").read_text())
        assert doc["available"] is available, (name, doc)
        script = opt.script.read_text()
        assert (line in script) if line else ("checker_cfg" not in script), (name, script)
        if not available:
            assert "layer_noise: enabled" in doc["reason"]
    with pytest.raises(ConfigError, match="layer_noise"):
        get_backend("hailo", layer_noise="on")


def test_dfc_layer_noise_without_statistics_says_why() -> None:
    from harness.backends.hailo import dfc_layer_noise

    layers = {"net/input_layer1": {"type": "input_layer"}, "net/conv1": {"type": "conv", "original_names": ["/c"]}}

    class Old:  # a DFC without get_params_statistics
        pass

    class Level0:  # optimize at level 0 recorded nothing
        def get_params_statistics(self) -> dict:
            return {"net/conv1": {}}

    class Broken:
        def get_params_statistics(self) -> dict:
            raise RuntimeError("no statistics in this state")

    class Advanced:  # an analyze_noise run: 'snr' preferred over 'partial_snr', the worst output kept
        def get_params_statistics(self) -> dict:
            return {"net/conv1": {"layer_noise_analysis/partial_snr": np.array([30.0]),
                                  "layer_noise_analysis/snr": np.array([12.5, 9.0])}}  # fmt: skip

    assert "no get_params_statistics" in dfc_layer_noise(Old(), layers)["reason"]
    assert "optimization level 0" in dfc_layer_noise(Level0(), layers)["reason"]
    assert "RuntimeError: no statistics" in dfc_layer_noise(Broken(), layers)["reason"]
    assert dfc_layer_noise(Advanced(), layers) == {"available": True, "rows": [
        {"layer": "net/conv1", "original_names": ["/c"], "type": "conv", "sqnr_db": 9.0, "source": "advanced", "index": 1}
    ]}  # fmt: skip


def test_wide_sixteen_bit_model_is_agent_infeasible(fake_dfc, tiny_checkpoint, tmp_path: Path, capfd) -> None:
    wide = 16000  # latent 1999 x 32 channels: 62.5 KiB rows at 8 bits fit the fake's 64 KiB budget, 125 at 16 not
    onnx_path = _export(tiny_checkpoint, tmp_path / "wide.onnx", wide, "cLN", per_source=True)
    be = get_backend("hailo")
    tr = be.translate(onnx_path, tmp_path / "t")
    calib = np.random.default_rng(0).standard_normal((2, 1, 1, wide)).astype(np.float32) * 0.1
    opt = be.optimize(tr, calib, OverrideSet("p16", (Override("precision16", ("*",)),)), QuantSettings(), tmp_path / "o")
    capfd.readouterr()
    with pytest.raises(Exception) as err:
        be.compile(opt, tmp_path / "c")
    # as the real allocator often does: a bare "Compilation failed", the details only in the DFC's log [T]
    assert str(err.value) == "Compilation failed"
    log = capfd.readouterr().out
    assert "[error] Mapping Failed" in log and "convtas/conv3_dc errors: Agent infeasible" in log
    f = classify("compile", type(err.value).__name__, log)  # what the stage log gives the classifier
    assert f.signature == "compile:BackendAllocatorException:agent_infeasible"
    d = explain(f, layer_table(tr))
    assert d.layers[0].endswith("conv3_dc"), d.layers  # first 32-channel layer, with the allocator suffix
    assert d.resolved_layer == "convtas/conv3"
    assert not (tmp_path / "c" / "model.hef").exists()
    ok = be.optimize(tr, calib, NONE, QuantSettings(), tmp_path / "o8")
    assert be.compile(ok, tmp_path / "c8").path.is_file()


def test_unknown_override_is_rejected_before_anything_is_written(fake_dfc, models, signals, tmp_path: Path) -> None:
    be = get_backend("hailo")
    tr = be.translate(models["gLN"], tmp_path / "t")
    bad = OverrideSet("hd_bug", (Override("negative_exponent", ("convtas/ne_activation_avgpool6",)),))
    with pytest.raises(OverrideTargetNotFound) as err:
        be.optimize(tr, signals[0], bad, QuantSettings(), tmp_path / "o")
    assert err.value.candidates[0] == "convtas/avgpool6"
    assert not (tmp_path / "o").exists()
    assert classify("optimize", "OverrideTargetNotFound", str(err.value)).signature == (
        "optimize:OverrideTargetNotFound:convtas/ne_activation_avgpool6"
    )


def test_fake_dfc_reproduces_parser_shape_and_state_errors(fake_dfc, models, signals, tmp_path: Path) -> None:
    from hailo_sdk_client import ClientRunner

    be = get_backend("hailo")
    tr = be.translate(models["gLN"], tmp_path / "t")
    runner = ClientRunner(hw_arch="hailo8", har=str(tr.path))
    with pytest.raises(Exception) as err:  # the hand loop's bug: an optimizer-invented name in a script
        runner.load_model_script("model_optimization_config(negative_exponent, layers=[convtas/ne_activation_avgpool2], rank=0)\n")
    assert _failure("optimize", err.value).signature == "optimize:BackendScriptParserException:convtas/ne_activation_avgpool2"
    with pytest.raises(Exception) as err:
        runner.load_model_script("quantization_param(conv1 precision_mode=a16_w16)\n")
    assert _failure("optimize", err.value).signature == "optimize:BackendScriptParserException:script_syntax"
    with pytest.raises(Exception) as err:
        runner.optimize(signals[0])  # NCHW instead of NHWC
    f = _failure("optimize", err.value)
    assert f.signature == "optimize:BadInputsShape:convtas/input_layer1" and f.groups["expected_shape"] == f"1, {W}, 1"
    with pytest.raises(Exception) as err:
        runner.compile()
    assert _failure("compile", err.value).signature == "compile:BackendRuntimeException:not_quantized"
    from hailo_model_optimization.acceleras.utils.acceleras_exceptions import NegativeSlopeExponentNonFixable

    assert NegativeSlopeExponentNonFixable.__name__ == "NegativeSlopeExponentNonFixable"


def test_repair_loop_reaches_a_hef_through_the_fake(fake_dfc, models, long_calib, tmp_path: Path) -> None:
    """The issue's loop: classify, resolve, fix, retry -- the signature changes and a HEF comes out."""
    from harness.repair import Attempt, run_repairs

    be = get_backend("hailo")
    tr = be.translate(models["gLN_long"], tmp_path / "t")
    scripts: list[str] = []

    def attempt(ovs: OverrideSet) -> Attempt:
        d = tmp_path / f"try{len(scripts)}"
        stage = "optimize"
        try:
            opt = be.optimize(tr, long_calib, ovs, QuantSettings(), d / "o")
            scripts.append((d / "o" / "model_script.alls").read_text())
            stage = "compile"
            return Attempt(value=be.compile(opt, d / "c"))
        except Exception as exc:  # the pipeline gets these from its child processes as (class name, message)
            f = _failure(stage, exc)
            if not f.known:
                raise
            return Attempt(f, explain(f, layer_table(tr)).resolved_layer)

    out = run_repairs(attempt, NONE, max_repairs=4)
    assert out.succeeded and out.value.path.read_bytes().startswith(b"HEF")
    assert out.log.signatures == [
        "optimize:NegativeSlopeExponentNonFixable:convtas/ne_activation_avgpool2",
        "optimize:NegativeSlopeExponentNonFixable:convtas/ne_activation_avgpool4",
    ]
    assert [e["fix"] for e in out.log.entries] == [
        "negative_exponent:convtas/avgpool2",
        "negative_exponent:convtas/avgpool*",
        None,
    ]
    assert "ne_activation" not in "".join(scripts)  # no invented name ever reached load_model_script
    paths = out.log.write(tmp_path / "trial")
    assert json.loads(paths[1].read_text())["signature_changed"] is True
