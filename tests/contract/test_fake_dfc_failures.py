"""The fake DFC's failures follow the user's record of the real compiler (``/work/shared/real_dfc/README.md``).

Driven through the fake ``ClientRunner`` directly, on hefsweep's own exports of the demo-size Conv-TasNet
(``assets/demo_convtasnet.pt``) and the tiny test model, in the topologies the record names: grouped decoder,
repeated-encoder concat before the mask multiply, and both rewritten away.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from support.real_dfc import REAL_DFC

ROOT = Path(__file__).resolve().parents[2]
FAKES = ROOT / "tests" / "fakes"
DEMO = ROOT / "assets" / "demo_convtasnet.pt"
REAL = REAL_DFC
NE_ALL = "model_optimization_config(negative_exponent, layers={avgpool*})\n"


@pytest.fixture
def fake_dfc(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    """The fake importable for one test (unloaded afterwards); the current directory is a scratch folder."""
    monkeypatch.syspath_prepend(str(FAKES))
    monkeypatch.chdir(tmp_path)
    import hailo_sdk_client  # noqa: F401 -- registers the hailo_model_optimization aliases

    yield
    for name, mod in list(sys.modules.items()):
        if str(getattr(mod, "__file__", "") or "").startswith(str(FAKES)):
            del sys.modules[name]


def _guard() -> None:
    """HD's guard (real_dfc README): replace should_correct_layer before optimize."""
    from hailo_model_optimization.algorithms.apu_neg_mantissa_correction import ApuNegMantissaCorrection

    ApuNegMantissaCorrection.should_correct_layer = staticmethod(lambda layer: False)


def _export(tmp: Path, width: int, checkpoint: Path | None = None, **spec) -> Path:
    import torch

    from harness.export import export_onnx
    from harness.model import ConvTasNet4D, ConvTasNetConfig, load_checkpoint
    from harness.substitutions import SubstitutionSpec, apply_substitutions

    if checkpoint is None:
        sys.path.insert(0, str(ROOT / "tests"))
        from conftest import TINY_ARGS

        torch.manual_seed(0)
        model = ConvTasNet4D(ConvTasNetConfig.from_model_args(TINY_ARGS))
    else:
        model = load_checkpoint(checkpoint)
    if spec:
        model, _ = apply_substitutions(model, SubstitutionSpec(**spec))
    path = tmp / f"m_{width}_{'_'.join(f'{k}-{v}' for k, v in sorted(spec.items()))}.onnx"
    export_onnx(model, width, path)
    return path


def _runner(path: Path, width: int, script: str = "", n: int = 2):
    from hailo_sdk_client import ClientRunner

    runner = ClientRunner(hw_arch="hailo8")
    runner.translate_onnx_model(str(path), "convtas")
    if script:
        runner.load_model_script(script)
    calib = np.random.default_rng(0).standard_normal((n, 1, width, 1)).astype(np.float32) * 0.1
    return runner, calib


# -- optimize -------------------------------------------------------------------------------------------------
def test_gln_variance_pools_fail_at_long_kernels_only(fake_dfc, tmp_path: Path) -> None:
    from hailo_model_optimization.acceleras.utils.acceleras_exceptions import NegativeSlopeExponentNonFixable

    _guard()
    long = _export(tmp_path, 16000, gln_stats="split")
    runner, calib = _runner(long, 16000)
    with pytest.raises(NegativeSlopeExponentNonFixable) as err:
        runner.optimize(calib)
    msg = str(err.value)
    assert msg.startswith(
        "Quantization failed in layer convtas/ne_activation_avgpool2 due to unsupported required slope. Desired shift "
        "is 10.0, but op has only 8 data bits. This error raises when"
    )
    assert runner.get_hn_dict()["layers"]["convtas/avgpool2"]["input"] == ["convtas/square1"]
    fixes = {
        "model_optimization_config(negative_exponent, layers=[avgpool2])": "avgpool4",
        "quantization_param(avgpool2, precision_mode=a16_w16)": "avgpool4",
        "pre_quantization_optimization(global_avgpool_reduction, layers=[avgpool2], division_factors=[4, 4])": "avgpool4",
        "pre_quantization_optimization(global_avgpool_reduction, layers=[avgpool2], division_factors=[2])": "avgpool2",
    }
    for line, first in fixes.items():
        runner, calib = _runner(long, 16000, line + "\n")
        with pytest.raises(NegativeSlopeExponentNonFixable, match=f"ne_activation_{first} ") as err:
            runner.optimize(calib)
        if "[2]" in line:  # 1999 / 2 -> a 1000-sample stage: shift 9 still exceeds 8 bits
            assert "Desired shift is 9.0" in str(err.value)
    runner, calib = _runner(long, 16000, NE_ALL)
    runner.optimize(calib)
    for width in (2048, 3200):  # latent 255 / 399: shift 7 / 8 fit in 8 data bits
        runner, calib = _runner(_export(tmp_path, width), width)
        runner.optimize(calib)
    runner, calib = _runner(_export(tmp_path, 16000, norm="cLN"), 16000)  # cLN: no time pools at all
    runner.optimize(calib)


def test_apu_neg_mantissa_correction_crashes_unless_guarded(fake_dfc, tmp_path: Path) -> None:
    path = _export(tmp_path, 1024)
    runner, calib = _runner(path, 1024)
    with pytest.raises(AttributeError, match="'HailoAvgPool' object has no attribute 'neg_weights'"):
        runner.optimize(calib)
    runner, calib = _runner(_export(tmp_path, 1024, norm="cLN"), 1024)
    runner.optimize(calib)  # no avgpool, nothing to trip over

    from hailo_model_optimization.acceleras.hailo_layers.base_hailo_none_nn_core_layer import BaseHailoNonNNCoreLayer
    from hailo_model_optimization.algorithms import apu_neg_mantissa_correction as apu

    table, base = apu.ACTIVATION_CORRECTION_DICT, BaseHailoNonNNCoreLayer

    def should_correct_layer(layer) -> bool:  # the guard the backend installs (HD's har_to_hef.py)
        return (
            not isinstance(layer, base)
            and hasattr(layer, "neg_weights")
            and hasattr(layer, "activation_atomic_op")
            and layer.get_activation_name() in table
        )

    apu.ApuNegMantissaCorrection.should_correct_layer = staticmethod(should_correct_layer)
    runner, calib = _runner(path, 1024)
    runner.optimize(calib)


# -- compile ----------------------------------------------------------------------------------------------------
@pytest.mark.skipif(not DEMO.is_file(), reason="demo checkpoint not available")
def test_demo_model_compile_failures_follow_the_record(fake_dfc, tmp_path: Path, capfd) -> None:
    from hailo_sdk_client.sdk_backend.sdk_backend_exceptions import BackendAllocatorException

    _guard()
    cases = [
        ({}, 2048, "Super deconv is not supported with groups"),
        ({"decoder": "per_source"}, 2048, "Reshape is needed for layers: conv5, conv8, "),
    ]
    for spec, width, text in cases:
        runner, calib = _runner(_export(tmp_path, width, DEMO, **spec), width)
        runner.optimize(calib)
        with pytest.raises(BackendAllocatorException) as err:
            runner.compile()
        assert str(err.value).startswith(text)
        if "Reshape" in text:
            assert str(err.value).endswith(", shortcut1, concat1, ew_mult26, but adding a reshape has failed.")
    both = {"decoder": "per_source", "mask_mul": "per_source", "gln_stats": "split"}
    for width in (2048, 3200):
        runner, calib = _runner(_export(tmp_path, width, DEMO, **both), width)
        runner.optimize(calib)
        assert runner.compile().startswith(b"HEF")
    assert (tmp_path / "allocator.log").is_file() and (tmp_path / "hailo_sdk.client.log").is_file()
    assert (tmp_path / "acceleras.log").is_file()
    capfd.readouterr()
    runner, calib = _runner(_export(tmp_path, 16000, DEMO, **both), 16000, NE_ALL)
    runner.optimize(calib)
    with pytest.raises(BackendAllocatorException) as err:
        runner.compile()
    assert str(err.value) == "Compilation failed"  # the details only in the log [T]
    out = capfd.readouterr().out
    assert "[error] Mapping Failed (allocation time: 10m 11s)" in out and "errors: Agent infeasible" in out
    assert "Agent infeasible" in (tmp_path / "allocator.log").read_text()
    wide = "quantization_param({dw*}, precision_mode=a16_w16)\n"  # 16-bit on the 128-channel layers at latent 399
    runner, calib = _runner(_export(tmp_path, 3200, DEMO, **both), 3200, wide)
    runner.optimize(calib)
    with pytest.raises(BackendAllocatorException, match="^Compilation failed$"):
        runner.compile()
    assert "convtas/dw1 errors: Agent infeasible" in capfd.readouterr().out


def test_allocator_script_lines_are_accepted(fake_dfc, tmp_path: Path) -> None:
    runner, _ = _runner(_export(tmp_path, 1024), 1024)
    runner.load_model_script(
        "performance_param(compiler_optimization_level=max)\n"
        "resources_param(max_control_utilization=0.6, max_compute_utilization=0.6, max_memory_utilization=0.6)\n"
        "context_switch_param(mode=enabled)\n"
        "allocator_param(timeout=30m)\n"
        "pre_quantization_optimization(global_avgpool_reduction, layers=[avgpool2, avgpool4], division_factors=[4, 4])\n"
    )
    from hailo_sdk_client.sdk_backend.sdk_backend_exceptions import BackendScriptParserException

    with pytest.raises(BackendScriptParserException, match="Layer ne_activation_avgpool2 not found in model"):
        runner.load_model_script("model_optimization_config(negative_exponent, layers=[ne_activation_avgpool2])\n")
    with pytest.raises(BackendScriptParserException, match="Parsing failed at"):
        runner.load_model_script("pre_quantization_optimization(global_avgpool_reduction, layers=[avgpool2], division_factors=4)\n")


# -- emulation --------------------------------------------------------------------------------------------------
def test_emulation_returns_the_hn_deconv_width(fake_dfc, tmp_path: Path) -> None:
    from hailo_sdk_client import InferenceContext

    from harness.backends._ort import run_onnx

    _guard()
    for spec in ({}, {"decoder": "per_source", "mask_mul": "per_source"}):
        path = _export(tmp_path, 1024, **spec)
        runner, calib = _runner(path, 1024)
        hn = runner.get_hn_dict()
        (out,) = hn["net_params"]["output_layers_order"]
        assert hn["layers"][out]["output_shapes"][0] == [-1, 1, 1016, 2]  # F * stride = 127 * 8, not W
        with runner.infer_context(InferenceContext.SDK_NATIVE) as ctx:
            y = runner.infer(ctx, calib)
        ref = run_onnx(path, np.transpose(calib, (0, 3, 1, 2)))
        assert y.shape == (2, 1, 1016, 2) and ref.shape == (2, 2, 1, 1024)
        np.testing.assert_allclose(np.transpose(y, (0, 3, 1, 2)), ref[..., :1016], rtol=1e-4, atol=1e-5)


# -- the DFC's own interpreter ----------------------------------------------------------------------------------
@pytest.mark.skipif(not (REAL / "real_hn.json").is_file(), reason="real DFC artifacts not available")
def test_fake_runs_under_the_dfc_pins(dfc_python: Path, tmp_path: Path) -> None:
    code = (
        "import json, numpy, onnx\n"
        "assert numpy.__version__.startswith('1.26') and onnx.__version__.startswith('1.16')\n"
        "from hailo_sdk_client import ClientRunner\n"
        f"real = json.load(open('{REAL}/real_hn.json'))['layers']\n"
        f"hn, _ = ClientRunner().translate_onnx_model('{REAL}/convtas_hailo_ready.onnx', 'convtas')\n"
        "keys = ('type', 'input', 'output', 'output_shapes', 'original_names', 'params')\n"
        "same = sum(all(v.get(k) == hn['layers'].get(n, {}).get(k) for k in keys) for n, v in real.items())\n"
        "print(same, len(real))\n"
    )
    env = {"PYTHONPATH": str(FAKES), "PATH": "/usr/bin:/bin"}
    out = subprocess.run([str(dfc_python), "-c", code], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    same, n = map(int, out.stdout.split())
    assert same == n == 1179
