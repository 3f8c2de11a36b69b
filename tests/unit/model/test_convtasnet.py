"""ConvTasNet4D: shapes, a reshape-free ONNX graph, and float parity with asteroid's own ConvTasNet.

The parity reference is the real asteroid package (``asteroid==0.7.0``, ``asteroid-filterbanks==0.4.0`` and
``huggingface-hub<1``, all installed with ``--no-deps``). Without it the parity tests fail rather than skip.
"""

from __future__ import annotations

import collections
import dataclasses
import logging
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from support.models import tiny_config

from harness.model import (
    DEMO_CONFIG,
    PAPER_CONFIG,
    ConvTasNet4D,
    ConvTasNetConfig,
    load_checkpoint,
)

_log = logging.getLogger(__name__)

TINY = tiny_config()
# Ops that move data between axes (channel <-> time); the horizontal model must have none.
LAYOUT_OPS = {"Reshape", "Transpose", "Flatten", "Squeeze", "Unsqueeze", "DepthToSpace", "SpaceToDepth"}
LAYOUT_ATEN = {"aten::view", "aten::reshape", "aten::transpose", "aten::permute", "aten::flatten", "aten::t"}
LAYOUT_ATEN |= {"aten::squeeze", "aten::unsqueeze", "aten::unflatten"}


def _asteroid_convtasnet() -> Any:
    try:
        from asteroid.models import ConvTasNet
    except ImportError as err:  # fail, never skip: parity is the point of the 4-D port
        pytest.fail(
            f"asteroid is required for the parity tests ({err}); install with pip install --no-deps "
            "asteroid==0.7.0 asteroid-filterbanks==0.4.0 'huggingface-hub<1'"
        )
    return ConvTasNet


def _randomize(module: torch.nn.Module, seed: int) -> None:
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.add_(0.2 * torch.randn(p.shape, generator=gen))


def _export(model: torch.nn.Module, x: torch.Tensor, path: Path) -> onnx.ModelProto:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model, (x,), path, dynamo=False, opset_version=17, input_names=["input"], output_names=["output"]
        )
    return onnx.load(path)


@pytest.mark.parametrize(("n_src", "width"), [(2, 4000), (2, 4001), (3, 1003)])
def test_output_shape_matches_input_width(n_src: int, width: int) -> None:
    model = ConvTasNet4D(dataclasses.replace(TINY, n_src=n_src)).eval()
    with torch.no_grad():
        out = model(torch.randn(2, 1, 1, width))
    assert out.shape == (2, n_src, 1, width)
    assert out.dtype == torch.float32


def test_output_is_zero_padded_past_last_frame() -> None:
    # W=4003: frames cover (999 - 1) * 4 + 8 = 4000 samples; pad_x_to_y appends 3 zeros.
    model = ConvTasNet4D(TINY).eval()
    with torch.no_grad():
        out = model(torch.randn(1, 1, 1, 4003))
    assert torch.count_nonzero(out[..., 4000:]) == 0
    assert torch.count_nonzero(out[..., 3990:4000]) > 0


def test_config_resolves_asteroid_defaults() -> None:
    config = ConvTasNetConfig(n_src=2, n_filters=32, kernel_size=10, stride=None, skip_chan=None)
    assert (config.out_chan, config.in_chan, config.stride, config.skip_chan) == (32, 32, 5, 0)
    assert config.n_layers == 24
    model = ConvTasNet4D(config)
    assert not hasattr(model.masker.TCN[0], "skip_conv")
    assert model.config is config
    assert model.substitutions == ()


@pytest.mark.parametrize("mask_act", ["sigmoid", "relu", "softmax", "linear"])
@pytest.mark.parametrize("skip_chan", [8, 0])
def test_onnx_graph_has_no_layout_ops(mask_act: str, skip_chan: int, tmp_path: Path) -> None:
    config = dataclasses.replace(TINY, n_src=3, mask_act=mask_act, skip_chan=skip_chan)
    model = ConvTasNet4D(config).eval()
    x = torch.randn(1, 1, 1, 801)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        traced = torch.jit.trace(model, x, check_trace=False)
    kinds = {node.kind() for node in traced.inlined_graph.nodes()}
    assert not kinds & LAYOUT_ATEN, kinds & LAYOUT_ATEN
    proto = _export(model, x, tmp_path / "model.onnx")
    onnx.checker.check_model(proto)
    ops = collections.Counter(node.op_type for node in proto.graph.node)
    assert not set(ops) & LAYOUT_OPS, ops
    assert ops["ConvTranspose"] == 1
    # encoder, bottleneck, 4 (3 without skip) per block, mask; with skips the last res_conv is dead (pruned).
    assert ops["Conv"] == (2 + 4 * config.n_layers if skip_chan else 3 + 3 * config.n_layers)
    with torch.no_grad():
        ref = model(x).numpy()
    got = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"]).run(
        None, {"input": x.numpy()}
    )[0]
    assert got.shape == ref.shape
    assert np.max(np.abs(got - ref)) < 1e-4


def test_preset_parameter_counts() -> None:
    demo = sum(p.numel() for p in ConvTasNet4D(DEMO_CONFIG).parameters())
    paper = sum(p.numel() for p in ConvTasNet4D(PAPER_CONFIG).parameters())
    # The grouped decoder holds one copy of asteroid's N x L decoder filterbank per source.
    assert demo == 324_953 + (DEMO_CONFIG.n_src - 1) * 64 * 16
    assert paper == 5_050_545 + (PAPER_CONFIG.n_src - 1) * 512 * 16


PARITY_CASES = [
    pytest.param(dict(norm_type=norm, encoder_activation=act, n_src=n_src), id=f"{norm}-{act}-src{n_src}")
    for norm in ("gLN", "cLN")
    for act in ("relu", "linear")
    for n_src in (2, 3)
] + [
    pytest.param(dict(mask_act="softmax", n_src=3), id="softmax"),
    pytest.param(dict(mask_act="relu", encoder_activation=None), id="mask-relu"),
    pytest.param(dict(mask_act="linear", norm_type="cLN"), id="mask-linear"),
    pytest.param(dict(skip_chan=0), id="no-skip"),
    pytest.param(dict(conv_kernel_size=5, n_blocks=3, stride=None), id="P5-X3-stride-default"),
]


@pytest.mark.parametrize("overrides", PARITY_CASES)
def test_float_parity_with_asteroid(overrides: dict[str, Any], tmp_path: Path) -> None:
    asteroid_cls = _asteroid_convtasnet()
    args = {**TINY.to_model_args(), **overrides}
    args.pop("fb_name")
    reference = asteroid_cls(**args)
    _randomize(reference, seed=len(str(overrides)))
    reference.eval()
    package = {
        "model_name": "ConvTasNet",
        "model_args": reference.get_model_args(),
        "state_dict": reference.state_dict(),
        # serialize() also stores versions; torch.__version__ is a TorchVersion object, as asteroid writes it.
        "infos": {"software_versions": {"torch_version": torch.__version__, "asteroid_version": "0.7.0"}},
    }
    torch.save(package, tmp_path / "asteroid.pth")
    model = load_checkpoint(tmp_path / "asteroid.pth")

    mixture = torch.randn(2, 1, 4001, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        expected = reference(mixture)
        got = model(mixture.unsqueeze(2))
    assert got.shape == (2, args["n_src"], 1, 4001)
    diff = (got[:, :, 0, :] - expected).abs().max().item()
    _log.info("asteroid parity %s: max abs diff %.3g (peak %.3g)", overrides, diff, expected.abs().max().item())
    assert diff < 1e-5
    n_ast = sum(p.numel() for p in reference.parameters())
    n_4d = sum(p.numel() for p in model.parameters())
    assert n_4d == n_ast + (args["n_src"] - 1) * TINY.n_filters * TINY.kernel_size
