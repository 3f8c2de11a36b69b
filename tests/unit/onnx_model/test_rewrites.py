"""The exact ONNX pattern rewrites (harness.onnx_model._rewrites): how often each fires on an asteroid 3-D export
converted to 4-D and on the real export's structure, the graph they leave, and outputs equal to the unrewritten
model's in ONNX Runtime."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx_ir as ir
import pytest
from support.onnx_models import REAL_ONNX, asteroid_onnx, real_structure_onnx

from harness.onnx_model._convert import to_4d
from harness.onnx_model._graph import infer_shapes, run
from harness.onnx_model._rewrites import apply_rewrites

_ALL = {"prelu": "maxmin", "gln_stats": "split", "mask_mul": "per_source", "decoder": "per_source"}


@pytest.fixture(scope="module")
def asteroid(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return asteroid_onnx(tmp_path_factory.mktemp("ast") / "a.onnx", width=4000)


@pytest.fixture(scope="module")
def real(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if not REAL_ONNX.is_file():
        pytest.skip("../shared/real_dfc/convtas_hailo_ready.onnx not present")
    return real_structure_onnx(tmp_path_factory.mktemp("real") / "r.onnx")


def _rewritten(path: Path, width: int, choices: dict[str, str]) -> tuple[ir.Model, dict[str, int], float]:
    """(rewritten model, fire counts, max abs difference to the unrewritten 4-D model on two random clips)."""
    base, _ = to_4d(ir.load(str(path)), width)
    model, _ = to_4d(ir.load(str(path)), width)
    fired = apply_rewrites(model, choices)
    model = infer_shapes(model)
    x = np.random.default_rng(2).standard_normal((2, 1, 1, width)).astype(np.float32) * 0.1
    ref, got = run(base, x), run(model, x)
    assert got.shape == ref.shape == (2, 2, 1, width)
    return model, fired, float(np.max(np.abs(got - ref)))


def test_prelu_maxmin_on_asteroid(asteroid: Path) -> None:
    model, fired, err = _rewritten(asteroid, 4000, {"prelu": "maxmin"})
    ops = [n.op_type for n in model.graph]
    assert fired == {"prelu=maxmin": 25} and "PRelu" not in ops and ops.count("Max") == ops.count("Min") == 25
    slopes = [n.inputs[0].const_value.numpy() for n in model.graph if n.op_type == "Mul" and n.inputs[0].const_value is not None
              and n.inputs[1].producer() is not None and n.inputs[1].producer().op_type == "Min"]  # fmt: skip
    assert len(slopes) == 25 and all(s.shape == (1, 1, 1, 1) for s in slopes)  # asteroid's slope is one value
    assert err < 1e-6


def test_gln_split_on_asteroid(asteroid: Path) -> None:
    model, fired, err = _rewritten(asteroid, 4000, {"gln_stats": "split"})
    means = [n for n in model.graph if n.op_type == "ReduceMean"]
    assert fired == {"gln_stats=split": 50} and len(means) == 100
    assert all(len(n.attributes["axes"].value) == 1 for n in means)  # opset 17: axes as an attribute
    assert err < 1e-4  # the same mean, another summation order


def test_all_rewrites_fire_on_asteroid(asteroid: Path) -> None:
    # the conversion wrote asteroid's sources-as-batch head as the real export's grouped decoder: the topology
    # rewrites find the same pattern there
    model, fired, err = _rewritten(asteroid, 4000, _ALL)
    assert fired == {"prelu=maxmin": 25, "gln_stats=split": 50, "mask_mul=per_source": 1, "decoder=per_source": 1}
    ops = [n.op_type for n in model.graph]
    assert ops.count("ConvTranspose") == 2 and ops.count("Sigmoid") == 2 and ops.count("Concat") == 1
    assert not {"Reshape", "Split", "PRelu", "Transpose"} & set(ops)
    assert err < 1e-4


def test_real_structure_fires_the_topology_rewrites_only(real: Path) -> None:
    model, fired, err = _rewritten(real, 3200, _ALL)
    assert fired == {"prelu=maxmin": 0, "gln_stats=split": 0, "mask_mul=per_source": 1, "decoder=per_source": 1}
    ops = [n.op_type for n in model.graph]
    decoders = [n for n in model.graph if n.op_type == "ConvTranspose"]
    assert len(decoders) == 2 and all("group" not in n.attributes for n in decoders)
    assert "Split" not in ops  # the decoders read the per-source masked encodings directly
    assert ops.count("Relu") == 2 and ops.count("Concat") == 1  # mask conv split per source; one output concat
    assert err < 1e-5


def test_decoder_alone_splits_its_input(real: Path) -> None:
    model, fired, err = _rewritten(real, 3200, {"decoder": "per_source"})
    assert fired == {"decoder=per_source": 1} and [n.op_type for n in model.graph].count("Split") == 1
    assert err < 1e-5
