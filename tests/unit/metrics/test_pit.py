"""best_permutation / si_snri: swapped sources are recovered, the mixture itself improves nothing."""

from __future__ import annotations

import numpy as np
import pytest

from harness.metrics import best_permutation, si_snr, si_snri


def _refs(n_src: int, t: int = 256, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n_src, t))


def test_swapped_pair_is_recovered() -> None:
    ref = _refs(2)
    est = ref[::-1] + 0.05 * _refs(2, seed=1)
    assert best_permutation(est, ref) == (1, 0)
    mix = ref.sum(axis=0)
    expected = si_snr(est[[1, 0]], ref) - si_snr(np.stack([mix, mix]), ref)
    np.testing.assert_array_equal(si_snri(est, ref, mix), expected)


@pytest.mark.parametrize("order", [(2, 0, 1), (1, 2, 0), (0, 1, 2), (2, 1, 0)])
def test_three_sources_in_any_order(order: tuple[int, int, int]) -> None:
    ref = _refs(3)
    est = np.empty_like(ref)
    est[list(order)] = 2.0 * ref  # estimate order[i] holds reference i, scaled
    assert best_permutation(est, ref) == order


def test_identity_kept_on_ties() -> None:
    ref = _refs(3)
    same = np.repeat(ref[:1], 3, axis=0)
    assert best_permutation(same, ref) == (0, 1, 2)
    assert best_permutation(ref, ref) == (0, 1, 2)


def test_si_snri_of_the_mixture_itself_is_zero() -> None:
    ref = _refs(2)
    mix = ref.sum(axis=0)
    out = si_snri(np.stack([mix, mix]), ref, mix)
    assert out.shape == (2,)
    np.testing.assert_array_equal(out, [0.0, 0.0])


def test_si_snri_of_perfect_swapped_estimates() -> None:
    ref = _refs(2)
    mix = ref.sum(axis=0)
    out = si_snri(ref[::-1].copy(), ref, mix)
    expected = si_snr(ref, ref) - si_snr(np.stack([mix, mix]), ref)
    np.testing.assert_allclose(out, expected, rtol=0, atol=1e-12)
    assert np.all(out > 50)


def test_si_snri_by_hand_with_orthogonal_sources() -> None:
    # r1 = [1,-1,1,-1], r2 = [1,1,-1,-1] (zero-mean, orthogonal, energy 4 each); mix = r1 + r2.
    # mixture vs r1: alpha = 1, t = r1, n = r2 -> 0 dB (same for r2).
    # estimates: [r2 + 0.1 r1, r1 + 0.1 r2] -> best perm (1, 0), each at 20 dB -> improvement 20 dB.
    r = np.array([[1.0, -1.0, 1.0, -1.0], [1.0, 1.0, -1.0, -1.0]])
    est = np.stack([r[1] + 0.1 * r[0], r[0] + 0.1 * r[1]])
    assert best_permutation(est, r) == (1, 0)
    np.testing.assert_allclose(si_snri(est, r, r.sum(0)), [20.0, 20.0], atol=1e-6)


@pytest.mark.parametrize(
    ("est_shape", "ref_shape", "mix_shape"),
    [((2, 8), (2, 9), (9,)), ((2, 8), (2, 8), (9,)), ((8,), (8,), (8,)), ((3, 8), (2, 8), (8,))],
)
def test_shape_errors(est_shape: tuple[int, ...], ref_shape: tuple[int, ...], mix_shape: tuple[int, ...]) -> None:
    with pytest.raises(ValueError):
        si_snri(np.ones(est_shape), np.ones(ref_shape), np.ones(mix_shape))


def test_relative_eps_is_passed_through() -> None:
    ref = _refs(2) * 1e-5  # quiet: the absolute eps would dominate the energies
    est = ref[::-1] + 1e-7 * _refs(2, seed=1)
    assert best_permutation(est, ref, relative=True) == (1, 0)
    mix = ref.sum(axis=0)
    expected = si_snr(est[[1, 0]], ref, relative=True) - si_snr(np.stack([mix, mix]), ref, relative=True)
    np.testing.assert_array_equal(si_snri(est, ref, mix, relative=True), expected)
    np.testing.assert_allclose(si_snri(est * 1e5, ref * 1e5, mix * 1e5, relative=True), expected, atol=1e-9)
