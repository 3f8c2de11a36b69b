"""si_snr against values worked out by hand.

Notation: e = estimate, r = reference (both zero-mean), E = ||r||^2,
alpha = (<e,r> + eps) / (E + eps), target t = alpha*r, noise n = e - t,
SI-SNR = 10 log10((||t||^2 + eps) / (||n||^2 + eps)).
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from harness.metrics import si_snr

# Zero-mean and orthogonal: <R, N> = 1 - 1 - 1 + 1 = 0, ||R||^2 = ||N||^2 = 4.
R = np.array([1.0, -1.0, 1.0, -1.0])
N = np.array([1.0, 1.0, -1.0, -1.0])


def test_torchmetrics_doc_example_by_hand() -> None:
    # r = [3, -0.5, 2, 7], mean 2.875 -> r0 = [0.125, -3.375, -0.875, 4.125]
    # e = [2.5, 0, 2, 8],  mean 3.125 -> e0 = [-0.625, -3.125, -1.125, 4.875]
    # <e0, r0> = -0.078125 + 10.546875 + 0.984375 + 20.109375 = 31.5625 = 505/16
    # ||r0||^2 = 0.015625 + 11.390625 + 0.765625 + 17.015625 = 29.1875 = 467/16
    # ||e0||^2 = 0.390625 + 9.765625 + 1.265625 + 23.765625 = 35.1875 = 563/16
    # ||t||^2 = <e0,r0>^2 / ||r0||^2 = 255025/7472;  ||n||^2 = ||e0||^2 - ||t||^2 = 7896/7472
    # SI-SNR = 10 log10(255025 / 7896) = 15.0918 dB (torchmetrics' docstring value)
    target = [3.0, -0.5, 2.0, 7.0]
    preds = [2.5, 0.0, 2.0, 8.0]
    exact = 10 * math.log10(255025 / 7896)
    assert float(si_snr(preds, target, eps=0.0)) == pytest.approx(exact, rel=1e-13)
    assert float(si_snr(preds, target)) == pytest.approx(exact, abs=1e-6)
    assert round(exact, 4) == 15.0918


@pytest.mark.parametrize(
    ("gain", "db"),
    [(1.0, 0.0), (0.1, 20.0), (0.5, 10 * math.log10(4.0)), (2.0, -10 * math.log10(4.0))],
)
def test_orthogonal_noise_with_known_energy_ratio(gain: float, db: float) -> None:
    # e = R + g*N: alpha = 1, t = R (energy 4), n = g*N (energy 4 g^2) -> 10 log10(1 / g^2)
    assert float(si_snr(R + gain * N, R, eps=0.0)) == pytest.approx(db, abs=1e-12)


def test_default_eps_value_for_orthogonal_noise() -> None:
    # alpha = (4 + eps) / (4 + eps) = 1 exactly, so t = R and n = 0.1 N
    expected = 10 * math.log10((4 + 1e-8) / (0.04 + 1e-8))
    assert float(si_snr(R + 0.1 * N, R)) == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("scale", [3.0, 0.01, 1e4])
def test_scale_invariance(scale: float) -> None:
    # e = s (R + 0.1 N): alpha = s, t = sR (4 s^2), n = 0.1 s N (0.04 s^2) -> 20 dB for every s
    assert float(si_snr(scale * (R + 0.1 * N), R, eps=0.0)) == pytest.approx(20.0, abs=1e-10)
    if scale >= 1.0:  # with eps > 0 invariance holds while the energies dwarf eps (0.04 s^2 >> 1e-8)
        assert float(si_snr(scale * (R + 0.1 * N), R)) == pytest.approx(20.0, abs=1e-5)


def test_offsets_are_removed() -> None:
    assert float(si_snr(R + 0.1 * N + 5.0, R - 3.0, eps=0.0)) == pytest.approx(20.0, abs=1e-12)


def test_perfect_estimate_is_large_and_finite() -> None:
    # alpha = (4 + eps)/(4 + eps) = 1 -> n = 0 exactly -> 10 log10((4 + eps) / eps) = 86.0206 dB
    value = float(si_snr(R, R))
    assert value == 10 * math.log10((4 + 1e-8) / 1e-8)
    assert value == pytest.approx(86.0206, abs=1e-4)


def test_negated_estimate_scores_like_a_perfect_one() -> None:
    # alpha = (eps - 4)/(4 + eps); n = -R - alpha R = -(1 + alpha) R with 1 + alpha = 2 eps/(4 + eps)
    eps = 1e-8
    alpha = (eps - 4) / (4 + eps)
    expected = 10 * math.log10((alpha**2 * 4 + eps) / ((2 * eps / (4 + eps)) ** 2 * 4 + eps))
    assert float(si_snr(-R, R)) == pytest.approx(expected, rel=1e-12)
    assert expected == pytest.approx(86.0206, abs=1e-4)


def test_silent_reference_stays_finite() -> None:
    # r = 0: alpha = eps/eps = 1, t = 0, n = e (energy 4) -> 10 log10(eps / (4 + eps))
    assert float(si_snr(R, np.zeros(4))) == pytest.approx(10 * math.log10(1e-8 / (4 + 1e-8)), rel=1e-12)


def test_batch_shapes_and_dtype() -> None:
    rng = np.random.default_rng(0)
    ref = rng.standard_normal((2, 3, 16)).astype(np.float32)
    est = ref + 0.3 * rng.standard_normal((2, 3, 16)).astype(np.float32)
    out = si_snr(est, ref)
    assert out.shape == (2, 3) and out.dtype == np.float64
    for i in range(2):
        for j in range(3):
            assert out[i, j] == si_snr(est[i, j], ref[i, j])
    one = si_snr(R, R)
    assert isinstance(one, np.ndarray) and one.shape == ()


@pytest.mark.parametrize(
    ("est", "ref"),
    [(np.zeros(4), np.zeros(5)), (np.zeros((2, 4)), np.zeros(4)), (np.zeros(0), np.zeros(0)), (1.0, 1.0)],
)
def test_bad_shapes(est: np.ndarray, ref: np.ndarray) -> None:
    with pytest.raises(ValueError):
        si_snr(est, ref)


def test_matches_torchmetrics() -> None:
    tm = pytest.importorskip("torchmetrics.functional.audio")
    import torch
    rng = np.random.default_rng(1)
    ref = rng.standard_normal((4, 2, 800)).astype(np.float32)
    est = (0.7 * ref + 0.2 * rng.standard_normal((4, 2, 800))).astype(np.float32)
    theirs = tm.scale_invariant_signal_noise_ratio(torch.from_numpy(est), torch.from_numpy(ref)).numpy()
    ours = si_snr(est, ref, eps=float(np.finfo(np.float32).eps))
    np.testing.assert_allclose(ours, theirs, atol=1e-4)


# -- relative eps (the sweep's scoring) ------------------------------------------------------------------------------
def test_relative_eps_by_hand_for_orthogonal_noise() -> None:
    # e = R + 0.1 N: <e,R> = 4, alpha = 4 / (4 (1 + eps)) = 1/(1+eps); ||e||^2 = 4.04
    eps = 1e-8
    alpha = 1 / (1 + eps)
    t2 = alpha**2 * 4
    n2 = (1 - alpha) ** 2 * 4 + 0.04
    expected = 10 * math.log10((t2 + eps * 4.04) / (n2 + eps * 4.04))
    assert float(si_snr(R + 0.1 * N, R, relative=True)) == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("scale", [1e-6, 1e-4, 1.0, 1e4])
def test_relative_eps_is_invariant_to_scaling_either_signal(scale: float) -> None:
    # the absolute eps pulls quiet signals towards 0 dB (at scale 1e-4: 20 dB -> ~6 dB); the relative one does not
    e = R + 0.1 * N
    ref_value = float(si_snr(e, R, relative=True))
    assert ref_value == pytest.approx(20.0, abs=1e-4)  # eps * ||e||^2 on the 0.04 noise energy: -4.4e-6 dB
    assert float(si_snr(scale * e, scale * R, relative=True)) == pytest.approx(ref_value, abs=1e-9)
    assert float(si_snr(scale * e, R, relative=True)) == pytest.approx(ref_value, abs=1e-9)
    assert float(si_snr(e, scale * R, relative=True)) == pytest.approx(ref_value, abs=1e-9)
    if scale == 1e-4:
        assert float(si_snr(scale * e, scale * R)) < 10.0  # the absolute eps at the same level


def test_relative_eps_perfect_silent_and_against_silence() -> None:
    cap = 10 * math.log10(1 + 1e8)  # 80.0 dB
    for x in (R, 1e-9 * R, 1e6 * (R + N)):
        assert float(si_snr(x, x, relative=True)) == pytest.approx(cap, abs=1e-6)
    assert float(si_snr(R, 0 * R, relative=True)) == pytest.approx(-cap, abs=1e-6)  # output where there is silence
    assert float(si_snr(0 * R, R, relative=True)) == 0.0  # a silent output
    assert float(si_snr(0 * R, 0 * R, relative=True)) == 0.0
