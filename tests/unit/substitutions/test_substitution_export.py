"""Exported ONNX graphs per substitution variant (TorchScript exporter, opset 17): op lists, eps, ORT parity."""

from __future__ import annotations

import collections
import logging
import warnings

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from onnx import numpy_helper

from support.models import tiny_config

from harness.model import ConvTasNet4D
from harness.substitutions import SubstitutionSpec, apply_substitutions

_log = logging.getLogger(__name__)

TINY = tiny_config(encoder_activation="relu")
N_ACT = 2 * TINY.n_layers + 1  # PReLUs: two per block + mask_net
N_NORM = 2 * TINY.n_layers + 1  # norms: two per block + bottleneck
WIDTH = 1601

VARIANTS = {
    "keep": SubstitutionSpec(),
    "relu": SubstitutionSpec(prelu="relu"),
    "maxmin": SubstitutionSpec(prelu="maxmin"),
    "cLN": SubstitutionSpec(norm="cLN"),
    "affine": SubstitutionSpec(norm="affine"),
    "identity": SubstitutionSpec(norm="identity"),
    "clamp": SubstitutionSpec(clamp=2.0),
    "combined": SubstitutionSpec(prelu="maxmin", norm="cLN", clamp=2.0),
}


class Exported:
    """A variant's torch model, exported graph and op counts."""

    def __init__(self, model: ConvTasNet4D, proto: onnx.ModelProto) -> None:
        self.model = model
        self.proto = proto
        self.ops = collections.Counter(node.op_type for node in proto.graph.node)


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Exported]:
    base = ConvTasNet4D(TINY)
    gen = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for name, p in base.named_parameters():
            if name != "decoder.weight":
                p.add_(0.2 * torch.randn(p.shape, generator=gen))
    base.eval()
    x = torch.zeros(1, 1, 1, WIDTH)
    out: dict[str, Exported] = {}
    for key, spec in VARIANTS.items():
        model, _ = apply_substitutions(base, spec)
        path = tmp_path_factory.mktemp("onnx") / f"{key}.onnx"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                model, (x,), path, dynamo=False, opset_version=17, input_names=["input"], output_names=["output"]
            )
        proto = onnx.load(path)
        onnx.checker.check_model(proto)
        out[key] = Exported(model, proto)
    return out


def _reduce_mean_axes(proto: onnx.ModelProto) -> list[tuple[int, ...]]:
    axes = []
    for node in proto.graph.node:
        if node.op_type == "ReduceMean":
            (attr,) = [a for a in node.attribute if a.name == "axes"]  # an attribute up to opset 17
            axes.append(tuple(attr.ints))
    return axes


def _constants(proto: onnx.ModelProto) -> dict[str, np.ndarray]:
    values = {init.name: numpy_helper.to_array(init) for init in proto.graph.initializer}
    for node in proto.graph.node:
        if node.op_type == "Constant":
            for attr in node.attribute:
                if attr.name == "value":
                    values[node.output[0]] = numpy_helper.to_array(attr.t)
    return values


def _eps_adds(proto: onnx.ModelProto) -> int:
    """Number of Add nodes with a scalar 1e-8 operand (the norms' ``var + EPS``)."""
    consts = _constants(proto)
    count = 0
    for node in proto.graph.node:
        if node.op_type != "Add":
            continue
        for name in node.input:
            value = consts.get(name)
            if value is not None and value.size == 1 and np.isclose(float(value), 1e-8, rtol=1e-6, atol=0.0):
                count += 1
    return count


def test_keep_has_prelu_and_gln(exported: dict[str, Exported]) -> None:
    ops = exported["keep"].ops
    assert ops["PRelu"] == N_ACT
    assert ops["Max"] == 0 and ops["Min"] == 0 and ops["Clip"] == 0
    assert ops["Relu"] == 1  # the encoder activation only
    assert _reduce_mean_axes(exported["keep"].proto) == [(1, 2, 3)] * (2 * N_NORM)


def test_relu_has_no_prelu(exported: dict[str, Exported]) -> None:
    ops = exported["relu"].ops
    assert ops["PRelu"] == 0
    assert ops["Relu"] == 1 + N_ACT


def test_maxmin_has_max_min_and_no_prelu(exported: dict[str, Exported]) -> None:
    ops = exported["maxmin"].ops
    assert ops["PRelu"] == 0
    assert ops["Max"] == N_ACT and ops["Min"] == N_ACT


def test_cln_reduces_over_channels_only(exported: dict[str, Exported]) -> None:
    assert _reduce_mean_axes(exported["cLN"].proto) == [(1,)] * (2 * N_NORM)


@pytest.mark.parametrize("variant", ["keep", "cLN", "combined"])
def test_eps_survives_export(variant: str, exported: dict[str, Exported]) -> None:
    assert _eps_adds(exported[variant].proto) == N_NORM


@pytest.mark.parametrize("variant", ["affine", "identity"])
def test_statistics_free_norms_have_no_reductions(variant: str, exported: dict[str, Exported]) -> None:
    ops = exported[variant].ops
    assert ops["ReduceMean"] == 0 and ops["Sqrt"] == 0 and ops["Pow"] == 0
    assert _eps_adds(exported[variant].proto) == 0
    assert ops["PRelu"] == N_ACT


def test_clamp_adds_clip_after_every_separator_activation(exported: dict[str, Exported]) -> None:
    assert exported["clamp"].ops["Clip"] == N_ACT
    assert exported["clamp"].ops["PRelu"] == N_ACT
    combined = exported["combined"].ops
    assert combined["Clip"] == N_ACT and combined["Max"] == N_ACT and combined["PRelu"] == 0


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_no_layout_ops(variant: str, exported: dict[str, Exported]) -> None:
    assert not set(exported[variant].ops) & {"Reshape", "Transpose", "Flatten", "Squeeze", "Unsqueeze"}


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_onnxruntime_matches_torch(variant: str, exported: dict[str, Exported]) -> None:
    item = exported[variant]
    x = torch.randn(1, 1, 1, WIDTH, generator=torch.Generator().manual_seed(7))
    with torch.no_grad():
        ref = item.model(x).numpy()
    session = ort.InferenceSession(item.proto.SerializeToString(), providers=["CPUExecutionProvider"])
    got = session.run(None, {"input": x.numpy()})[0]
    diff = float(np.max(np.abs(got - ref)))
    _log.info("%s: ORT vs torch max abs diff %.3g", variant, diff)
    assert got.shape == ref.shape == (1, TINY.n_src, 1, WIDTH)
    assert diff < 1e-4
