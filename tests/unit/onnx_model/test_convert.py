"""3-D -> 4-D conversion of a user's ONNX (harness.onnx_model._convert), compared numerically with the user's ONNX
in ONNX Runtime: an asteroid export (fixed and dynamic time axis, [1, 1, T] and [1, T] inputs), the real export's
structure with synthetic weights, and the one-line refusals."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnx_ir as ir
import pytest
from onnx import helper
from support.onnx_models import REAL_ONNX, asteroid_onnx, real_structure_onnx

from harness.metrics import si_snr
from harness.onnx_model import OnnxModel, OnnxModelError
from harness.onnx_model._convert import ConversionError, at_width, free_width, to_4d
from harness.onnx_model._graph import infer_shapes, run


@pytest.fixture(scope="module")
def exports(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("onnx")
    return {
        "fixed": asteroid_onnx(root / "fixed.onnx", width=4000),
        "dynamic2d": asteroid_onnx(root / "dyn2d.onnx", width=4000, dynamic=True, rank=2),
    }


def _mixtures(width: int, n: int = 2) -> np.ndarray:
    return np.random.default_rng(1).standard_normal((n, width)).astype(np.float32) * 0.1


def _compare(path: Path, width: int) -> tuple[ir.Model, float, float]:
    """(converted model, max abs error, worst SI-SNR) of the 4-D conversion against the user's ONNX at ``width``."""
    model, _ = to_4d(ir.load(str(path)), width)
    x = _mixtures(width)
    got = run(model, x[:, None, None, :])
    original = at_width(ir.load(str(path)), width)
    shape = [int(d) for d in original.graph.inputs[0].shape]
    ref = run(original, x.reshape(len(x), *shape[1:])).reshape(got.shape)
    return model, float(np.max(np.abs(got - ref))), float(np.min(si_snr(got[:, :, 0], ref[:, :, 0])))


def test_asteroid_fixed_export_becomes_4d_and_matches(exports: dict[str, Path]) -> None:
    model, err, snr = _compare(exports["fixed"], 4000)
    assert [int(d) for d in model.graph.inputs[0].shape] == [1, 1, 1, 4000]
    assert [int(d) for d in model.graph.outputs[0].shape] == [1, 2, 1, 4000]
    convs = [n for n in model.graph if n.op_type in ("Conv", "ConvTranspose")]
    assert len(convs) == 51 and all(n.inputs[1].const_value.numpy().ndim == 4 for n in convs)
    assert all(list(n.attributes["kernel_shape"].value)[0] == 1 for n in convs)
    ops = [n.op_type for n in model.graph]
    assert not {"Transpose", "Reshape", "Pad"} & set(ops)  # norm gains channels-last, the 5-D head, the output pad
    decoder = [n for n in model.graph if n.op_type == "ConvTranspose"]
    assert len(decoder) == 1 and decoder[0].attributes["group"].value == 2  # the real export's grouped decoder
    assert err < 1e-4 and snr > 70.0  # float32 rounding only (measured: 6e-6, ~80 dB)


@pytest.mark.parametrize("width", [3200, 5000])
def test_asteroid_dynamic_2d_export_at_other_widths(exports: dict[str, Path], width: int) -> None:
    model, err, snr = _compare(exports["dynamic2d"], width)
    assert [int(d) for d in model.graph.inputs[0].shape] == [1, 1, 1, width]
    assert not {"Shape", "If", "Gather", "ConstantOfShape"} & {n.op_type for n in model.graph}  # folded at this W
    assert err < 1e-4 and snr > 70.0


def test_fixed_width_3d_export_at_another_width_is_refused(exports: dict[str, Path]) -> None:
    model = OnnxModel(exports["fixed"], 16000, 4000)
    assert model.fixed_width == 4000 and model.config.n_src == 2 and (model.config.kernel_size, model.config.stride) == (16, 8)
    with pytest.raises(OnnxModelError, match=r"at width 3200: .*; expected dimensions.width 4000 \(the model's fixed"):
        model.check_widths([3200])


def test_unliftable_op_names_the_node(tmp_path: Path) -> None:
    x = helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1, 1, 8])
    y = helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1, 1, 8])
    w = onnx.numpy_helper.from_array(np.eye(8, dtype=np.float32), "w")
    graph = helper.make_graph([helper.make_node("MatMul", ["x", "w"], ["y"], name="time_matmul")], "g", [x], [y], [w])
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    with pytest.raises(ConversionError, match=r"node 'time_matmul' \(MatMul\) on a 3-D tensor cannot be lifted"):
        to_4d(ir.from_proto(proto), 8)
    path = tmp_path / "mm.onnx"
    onnx.save(proto, str(path))
    with pytest.raises(OnnxModelError, match=r"mm.onnx: at width 8: ConversionError: node 'time_matmul'"):
        OnnxModel(path, 16000, 8)


def test_not_an_onnx_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not a model")
    with pytest.raises(OnnxModelError, match=r"bad.onnx: not loadable by onnx.load"):
        OnnxModel(bad, 16000, 4000)


@pytest.mark.skipif(not REAL_ONNX.is_file(), reason="../shared/real_dfc/convtas_hailo_ready.onnx not present")
def test_real_structure_is_used_as_is_and_freed_of_its_width(tmp_path: Path) -> None:
    path = real_structure_onnx(tmp_path / "real.onnx")
    native = infer_shapes(ir.load(str(path)))
    n_zeros = sum(1 for n in native.graph if n.op_type == "Expand") + sum(
        1 for name in native.graph.initializers if name.startswith("zeros_like")
    )
    assert free_width(native) == n_zeros == 3  # one Expand (shared by 96 Max/Min) and two zero initializers, [1, C, 1, 1999]
    model, err, _ = _compare(path, 16000)  # at its own width: against the user's graph untouched
    ops = [n.op_type for n in model.graph]
    assert err == 0.0 and len(ops) == 837 - 1 - 1  # the Expand and the output's height Squeeze gone
    assert [int(d) for d in model.graph.outputs[0].shape] == [1, 2, 1, 16000]
    freed = OnnxModel(path, 16000, 3200)  # another width (the real-time chunk): the graph no longer pins 16000
    out = freed.run_original(_mixtures(3200, 1))
    assert freed.fixed_width == 16000 and out.shape == (1, 2, 1, 3200) and np.all(np.isfinite(out))


def test_asteroid_onnx_original_equals_the_checkpoint_path(exports: dict[str, Path]) -> None:
    """The same checkpoint two ways: the user's asteroid ONNX in ORT (the ONNX model's original) and the harness's
    own 4-D torch model of the demo checkpoint (the checkpoint's original) agree."""
    from support.onnx_models import DEMO_CHECKPOINT

    from harness.model import load_checkpoint, separate

    x = _mixtures(4000, 3)
    via_onnx = OnnxModel(exports["fixed"], 16000, 4000).run_original(x)
    via_torch = separate(load_checkpoint(DEMO_CHECKPOINT), x)
    assert via_onnx.shape == via_torch.shape == (3, 2, 1, 4000)
    assert float(np.min(si_snr(via_onnx[:, :, 0], via_torch[:, :, 0]))) > 60.0
