"""The Hailo backend's segments on the fake DFC (in process): a segment with several inputs parses into one input
layer per boundary tensor, optimizes on the dict form, emulates to named outputs; the chain of quantized segments
tracks the float model about as closely as the whole quantized model does."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from harness.backends import OverrideSet, QuantSettings, get_backend
from harness.backends._ort import run_onnx
from harness.segments import capture_boundaries, plan_segments

W = 1024


def _snr_db(est: np.ndarray, ref: np.ndarray) -> float:
    ref = ref.astype(np.float64)
    return float(10 * np.log10(np.sum(ref**2) / np.sum((est.astype(np.float64) - ref) ** 2)))


@pytest.fixture(scope="module")
def cln_ps(tiny_checkpoint: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from harness.export import export_onnx
    from harness.model import load_checkpoint
    from harness.substitutions import SubstitutionSpec, apply_substitutions

    model, _ = apply_substitutions(load_checkpoint(tiny_checkpoint),
                                   SubstitutionSpec(norm="cLN", decoder="per_source", mask_mul="per_source"))  # fmt: skip
    path = tmp_path_factory.mktemp("hseg") / "cln_ps.onnx"
    export_onnx(model, W, path)
    return path


def test_segments_parse_optimize_emulate_and_chain(cln_ps: Path, tmp_path: Path, fake_dfc: None) -> None:
    from harness._stage_calls import _emulate_chain
    from harness.backends._protocol import SegmentChain
    from harness.backends.hailo._segments import SEGMENT_IO_FILE

    rng = np.random.default_rng(0)
    calib = (rng.standard_normal((6, 1, 1, W)) * 0.1).astype(np.float32)
    x = (rng.standard_normal((2, 1, 1, W)) * 0.1).astype(np.float32)
    backend = get_backend("hailo", hw_arch="hailo8")
    plan = plan_segments(cln_ps, 3)
    per_seg = capture_boundaries(cln_ps, plan, calib)
    optimized = []
    for seg, data in zip(plan.segments, per_seg, strict=True):
        tr = backend.translate(cln_ps, tmp_path / f"t{seg.index}", segment=seg)
        assert len(tr.inputs) == len(seg.inputs) and tr.inputs == tuple(f"convtas/input_layer{i + 1}" for i in range(len(seg.inputs)))
        assert set(tr.outputs) == set(seg.outputs)
        opt = backend.optimize(tr, data, OverrideSet("none"), QuantSettings(), tmp_path / f"o{seg.index}")
        assert (opt.path.parent / SEGMENT_IO_FILE).is_file()
        out = backend.emulate(opt, {t: per_seg[seg.index][t][:2] for t in seg.inputs})
        assert set(out) == set(seg.outputs)
        optimized.append(opt)
    assert max(len(s.inputs) for s in plan.segments) > 1

    chain = SegmentChain(plan.segments, tuple(optimized), plan.model_input, plan.model_output)
    chained = _emulate_chain(backend, chain, x)
    ref = run_onnx(cln_ps, x)
    whole_tr = backend.translate(cln_ps, tmp_path / "whole")
    whole = backend.emulate(backend.optimize(whole_tr, calib, OverrideSet("none"), QuantSettings(), tmp_path / "wo"), x)
    assert chained.shape == whole.shape  # the HN's deconv width, like the whole model's
    n = whole.shape[-1]
    chain_db, whole_db = _snr_db(chained, ref[..., :n]), _snr_db(whole, ref[..., :n])
    # the chain quantizes the same tensors on the same calibration (33.81 dB both when measured): within 1 dB
    assert chain_db > 10.0 and abs(chain_db - whole_db) < 1.0, (chain_db, whole_db)
