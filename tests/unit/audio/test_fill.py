"""fit_length: exact arrays for every policy on tiny inputs."""

from __future__ import annotations

import numpy as np
import pytest

from harness.audio import FILL_POLICIES, FillPolicyError, fit_length


def _arange(n: int) -> np.ndarray:
    return np.arange(1, n + 1, dtype=np.float32)  # [1, 2, ..., n]


@pytest.mark.parametrize("policy", FILL_POLICIES)
def test_equal_length_is_returned_unchanged(policy: str) -> None:
    x = _arange(4)
    assert fit_length(x, 4, policy) is x


@pytest.mark.parametrize("policy", FILL_POLICIES)
def test_longer_is_centre_cropped_for_every_policy(policy: str) -> None:
    # 7 -> 4: excess 3, start = 3 // 2 = 1 (one sample dropped at the start, two at the end)
    np.testing.assert_array_equal(fit_length(_arange(7), 4, policy), [2, 3, 4, 5])
    # 6 -> 4: excess 2, start 1
    np.testing.assert_array_equal(fit_length(_arange(6), 4, policy), [2, 3, 4, 5])
    # 5 -> 1: the middle sample
    np.testing.assert_array_equal(fit_length(_arange(5), 1, policy), [3])


def test_crop_returns_a_copy() -> None:
    x = _arange(6)
    y = fit_length(x, 4, "crop")
    y[0] = 99
    assert x[1] == 2


def test_pad_appends_zeros_at_the_end() -> None:
    y = fit_length(_arange(3), 5, "pad")
    np.testing.assert_array_equal(y, [1, 2, 3, 0, 0])
    assert y.dtype == np.float32


def test_repeat_tiles_and_truncates() -> None:
    np.testing.assert_array_equal(fit_length(_arange(3), 7, "repeat"), [1, 2, 3, 1, 2, 3, 1])
    np.testing.assert_array_equal(fit_length(_arange(3), 6, "repeat"), [1, 2, 3, 1, 2, 3])
    np.testing.assert_array_equal(fit_length(np.array([5.0]), 3, "repeat"), [5, 5, 5])
    assert fit_length(_arange(3), 7, "repeat").dtype == np.float32


def test_crop_cannot_lengthen() -> None:
    with pytest.raises(FillPolicyError) as exc:
        fit_length(_arange(3), 5, "crop")
    assert isinstance(exc.value, ValueError)
    msg = str(exc.value)
    assert "3 samples" in msg and "W=5" in msg and "'crop'" in msg and "\n" not in msg


@pytest.mark.parametrize("bad", ["zero", "Pad", "", "centre"])
def test_unknown_policy_is_value_error_even_when_nothing_to_do(bad: str) -> None:
    with pytest.raises(ValueError, match="fill policy"):
        fit_length(_arange(4), 4, bad)


@pytest.mark.parametrize(
    ("x", "width"),
    [(np.zeros(0), 4), (np.zeros((2, 4)), 4), (np.zeros(3), 0)],
)
def test_bad_arguments(x: np.ndarray, width: int) -> None:
    with pytest.raises(ValueError):
        fit_length(x, width, "pad")
