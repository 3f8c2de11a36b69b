"""harness/layer_noise.py's memory bound: tensors are exposed in chunks of bounded bytes; the numbers do not move."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from harness.layer_noise import _chunks, _plan, _tensor_info, layer_noise

W = 2048


def test_chunks_bound_count_and_bytes() -> None:
    assert _chunks([], 4, 100) == []
    assert _chunks([10] * 10, 4, 10**9) == [(0, 4), (4, 8), (8, 10)]  # count bound
    assert _chunks([10] * 10, 100, 30) == [(0, 3), (3, 6), (6, 9), (9, 10)]  # byte bound: 30 fits, 40 does not
    assert _chunks([10, 50, 10, 10], 100, 30) == [(0, 1), (1, 2), (2, 4)]  # a tensor above the bound goes alone
    assert _chunks([10, None, 1, 1], 100, 12) == [(0, 1), (1, 4)]  # unknown: as large as the largest known (10)
    assert _chunks([None] * 3, 2, 5) == [(0, 2), (2, 3)]  # nothing known: 0 each, only the count bounds
    assert _chunks([5], 0, 0) == [(0, 1)]  # never an empty group


@pytest.fixture(scope="module")
def models(tiny_checkpoint: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    from harness.audio import synth_mixture
    from harness.backends import OverrideSet, QuantSettings, get_backend
    from harness.export import export_onnx
    from harness.model import load_checkpoint

    d = tmp_path_factory.mktemp("noise-mem")
    float_onnx = d / "model.onnx"
    export_onnx(load_checkpoint(tiny_checkpoint), W, float_onnx)
    rng = np.random.default_rng(3)
    calib = np.stack([synth_mixture(rng, W, 16000)[0] for _ in range(4)])[:, None, None, :].astype(np.float32)
    be = get_backend("ort")
    q8 = be.optimize(be.translate(float_onnx, d / "t"), calib, OverrideSet("none"), QuantSettings(), d / "o").path
    return {"float": float_onnx, "q8": q8, "inputs": calib[:2]}


def test_sizes_come_from_the_inferred_shapes(models: dict[str, object]) -> None:
    import onnx

    fm = onnx.load(str(models["float"]))
    types, counts = _tensor_info(fm)
    assert counts["input"] == W and types["input"] == 1
    sizes: dict[str, int] = {}
    plan, _, _ = _plan(fm, onnx.load(str(models["q8"])), sizes)
    assert sizes == counts
    assert all(t in counts for t, *_ in plan)  # a static export: every compared tensor's size is known


def test_a_byte_bound_does_not_change_a_number(models: dict[str, object]) -> None:
    args = (models["float"], models["q8"], models["inputs"])
    whole = layer_noise(*args, chunk=10**6, chunk_bytes=2**62)  # type: ignore[arg-type] # one session: as before
    small = layer_noise(*args, chunk_bytes=64 * 1024)  # type: ignore[arg-type] # many sessions of <= 64 KiB of outputs
    assert [(r.tensor, r.sqnr_db, r.bits) for r in small] == [(r.tensor, r.sqnr_db, r.bits) for r in whole]  # exact
    assert len(whole) > 50
