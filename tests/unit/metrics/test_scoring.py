"""score_clip / score_clips / si_snri_clip: the sweep's per-clip scoring (true length, relative eps, best permutation)."""

from __future__ import annotations

import numpy as np
import pytest

from harness.metrics import score_clip, score_clips, si_snr, si_snri, si_snri_clip


def _clip(seed: int = 0, t: int = 1000) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    ref = rng.standard_normal((2, t)) * np.array([[1.0], [0.2]])
    est = ref + 0.05 * rng.standard_normal((2, t))
    return est, ref


def test_score_is_the_mean_relative_si_snr_after_the_best_permutation() -> None:
    est, ref = _clip()
    s = score_clip(est[::-1], ref)
    assert s.perm == (1, 0)
    expected = si_snr(est, ref, relative=True)
    np.testing.assert_allclose(s.per_source_db, expected, rtol=0, atol=1e-12)
    assert s.si_snr_db == pytest.approx(float(expected.mean()), abs=1e-12)


def test_only_the_true_length_counts() -> None:
    est, ref = _clip(t=1000)
    pad = np.random.default_rng(5).standard_normal((2, 300))
    long_est, long_ref = np.concatenate([est, pad], axis=1), np.concatenate([ref, np.zeros((2, 300))], axis=1)
    assert score_clip(long_est, long_ref, 1000) == score_clip(est, ref)
    assert score_clip(long_est, long_ref).si_snr_db < score_clip(est, ref).si_snr_db - 3.0  # the garbage would count
    with pytest.raises(ValueError, match="length"):
        score_clip(est, ref, 0)
    with pytest.raises(ValueError, match="length"):
        score_clip(est, ref, 1001)


def test_quiet_clip_scores_like_the_loud_one() -> None:
    est, ref = _clip()
    assert score_clip(1e-4 * est, 1e-4 * ref).si_snr_db == pytest.approx(score_clip(est, ref).si_snr_db, abs=1e-9)


def test_score_clips_batches_model_shaped_outputs_with_lengths() -> None:
    a, ra = _clip(1)
    b, rb = _clip(2)
    est = np.stack([a, b[::-1]])[:, :, None, :]
    ref = np.stack([ra, rb])[:, :, None, :]
    scores = score_clips(est, ref, [1000, 700])
    assert scores[0] == score_clip(a, ra) and scores[1] == score_clip(b[::-1, :700], rb[:, :700])
    assert scores[1].perm == (1, 0)
    with pytest.raises(ValueError, match="lengths"):
        score_clips(est, ref, [1000])
    with pytest.raises(ValueError, match="shape"):
        score_clips(est[:, :1], ref)


def test_si_snri_clip_trims_and_is_permutation_invariant() -> None:
    est, ref = _clip()
    mix = ref.sum(axis=0)
    got = si_snri_clip(est[::-1], ref, mix, 800)
    want = float(si_snri(est[:, :800], ref[:, :800], mix[:800], relative=True).mean())
    assert got == pytest.approx(want, abs=1e-12)
    assert si_snri_clip(np.stack([mix, mix]), ref, mix) == pytest.approx(0.0, abs=1e-12)
