"""Synthetic speech-like data: determinism, structure (pitch, pauses, levels) and the demo dataset layout."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from harness.audio import (
    VOICES,
    build_calibration_set,
    load_eval_set,
    make_demo_dataset,
    read_audio,
    speech_like,
    synth_mixture,
)
from harness.errors import AudioError

SR = 16000


def _rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


def _median_f0(x: np.ndarray, sr: int = SR) -> float:
    """Median autocorrelation pitch over the loud 40 ms frames (a crude but adequate estimator)."""
    frame = int(0.04 * sr)
    frames = np.lib.stride_tricks.sliding_window_view(x.astype(np.float64), frame)[:: frame // 2]
    energy = np.mean(frames**2, axis=1)
    f0s = []
    for f in frames[energy > 0.25 * energy.max()]:
        f = f - f.mean()
        ac = np.correlate(f, f, "full")[frame - 1 :]
        lo, hi = sr // 400, sr // 60
        f0s.append(sr / (lo + int(np.argmax(ac[lo:hi]))))
    return float(np.median(f0s))


def _rms_db(x: np.ndarray) -> float:
    return 10.0 * np.log10(np.mean(np.square(x.astype(np.float64))))


def test_speech_like_shape_peak_and_determinism() -> None:
    x = speech_like(_rng(1), 8000, SR)
    assert x.shape == (8000,) and x.dtype == np.float32
    assert float(np.max(np.abs(x))) == pytest.approx(1.0)
    np.testing.assert_array_equal(x, speech_like(_rng(1), 8000, SR))
    assert not np.array_equal(x, speech_like(_rng(2), 8000, SR))


def test_speech_like_has_pauses_and_follows_the_pitch_range() -> None:
    x = speech_like(_rng(3), 2 * SR, SR, f0_range=(100.0, 115.0))
    frame_rms = np.sqrt(np.mean(x.reshape(-1, 160).astype(np.float64) ** 2, axis=1))  # 10 ms frames
    assert np.mean(frame_rms < 1e-3) > 0.05  # pauses
    assert np.mean(frame_rms > 0.05) > 0.3  # and plenty of sound
    assert 95.0 <= _median_f0(x) <= 120.0
    high = speech_like(_rng(3), 2 * SR, SR, f0_range=(220.0, 250.0))
    assert 210.0 <= _median_f0(high) <= 260.0


def test_synth_mixture_is_deterministic() -> None:
    m1, s1 = synth_mixture(_rng(5), SR, SR)
    m2, s2 = synth_mixture(_rng(5), SR, SR)
    np.testing.assert_array_equal(m1, m2)
    np.testing.assert_array_equal(s1, s2)
    assert m1.shape == (SR,) and s1.shape == (2, SR) and m1.dtype == s1.dtype == np.float32


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_synth_mixture_levels_noise_and_peak(seed: int) -> None:
    mix, src = synth_mixture(_rng(seed), SR, SR, snr_db_range=(-5.0, 5.0), noise_db=-25.0)
    speech = src.astype(np.float64).sum(axis=0)
    noise = mix - speech
    assert _rms_db(noise) - _rms_db(speech) == pytest.approx(-25.0, abs=0.01)
    assert 0.5 <= float(np.max(np.abs(mix))) <= 0.9 + 1e-6
    assert -5.0 - 1e-3 <= _rms_db(src[1]) - _rms_db(src[0]) <= 5.0 + 1e-3


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_synth_mixture_sources_are_different_speakers(seed: int) -> None:
    _, src = synth_mixture(_rng(seed), SR, SR)
    f0 = sorted(_median_f0(s) for s in src)
    assert f0[1] / f0[0] > 1.1
    assert not np.allclose(src[0], src[1])


def test_synth_mixture_source_count() -> None:
    _, src = synth_mixture(_rng(0), 4000, 8000, n_src=len(VOICES), noise_db=-40.0)
    assert src.shape == (len(VOICES), 4000)
    with pytest.raises(ValueError, match="n_src"):
        synth_mixture(_rng(0), 4000, 8000, n_src=len(VOICES) + 1)
    with pytest.raises(ValueError, match="n_src"):
        synth_mixture(_rng(0), 4000, 8000, n_src=0)


_SMALL = {"sample_rate": 8000, "n_calib": 3, "calib_seconds": 0.5, "n_eval": 2, "eval_seconds": 0.25}


def _files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_demo_dataset_layout_and_summary(tmp_path: Path) -> None:
    summary = make_demo_dataset(tmp_path / "d", seed=3, **_SMALL)
    names = sorted(_files(tmp_path / "d"))
    assert names == [
        "calib/mix_000.wav",
        "calib/mix_001.wav",
        "calib/mix_002.wav",
        *[f"eval/{d}/mix_00{i}.wav" for d in ["mixture", "s1", "s2"] for i in range(2)],
    ]
    assert summary["calib"] == {
        "folder": str(tmp_path / "d" / "calib"),
        "files": 3,
        "seconds": 0.5,
        "samples": 4000,
    }
    assert summary["eval"]["files"] == 2 and summary["eval"]["samples"] == 2000
    assert summary["eval"]["sources"] == ["s1", "s2"]
    assert (summary["seed"], summary["sample_rate"], summary["n_src"], summary["subtype"]) == (3, 8000, 2, "PCM_16")
    assert read_audio(tmp_path / "d" / "calib" / "mix_002.wav", 8000).shape == (4000,)


def test_demo_dataset_is_byte_deterministic(tmp_path: Path) -> None:
    make_demo_dataset(tmp_path / "a", seed=7, **_SMALL)
    make_demo_dataset(tmp_path / "b", seed=7, **_SMALL)
    make_demo_dataset(tmp_path / "c", seed=8, **_SMALL)
    assert _files(tmp_path / "a") == _files(tmp_path / "b")
    assert _files(tmp_path / "a")["calib/mix_000.wav"] != _files(tmp_path / "c")["calib/mix_000.wav"]
    make_demo_dataset(tmp_path / "a", seed=7, **_SMALL)  # re-running into the same root is fine
    assert _files(tmp_path / "a") == _files(tmp_path / "b")


def test_demo_eval_mixture_is_sum_of_sources_plus_small_noise(tmp_path: Path) -> None:
    summary = make_demo_dataset(tmp_path, seed=0, **_SMALL)
    es = load_eval_set(summary["eval"]["folder"], sample_rate=8000, width=2000, n_src=2)
    assert es.sources is not None
    residual = es.mixtures.astype(np.float64) - es.sources.astype(np.float64).sum(axis=1)
    grid = residual * 32768.0
    np.testing.assert_array_equal(grid, np.round(grid))  # exact on the 16-bit grid
    for i in range(len(es)):
        level = _rms_db(residual[i]) - _rms_db(es.sources[i].astype(np.float64).sum(axis=0))
        assert level == pytest.approx(-25.0, abs=0.5)


def test_demo_calib_feeds_build_calibration_set(tmp_path: Path) -> None:
    summary = make_demo_dataset(tmp_path, seed=0, **_SMALL)
    cs = build_calibration_set(
        summary["calib"]["folder"], sample_rate=8000, width=2000, clip_length=2000, policy="repeat", size=6
    )
    assert cs.data.shape == (6, 2000)
    assert [e["file"] for e in cs.manifest["clips"]] == ["mix_000.wav", "mix_001.wav", "mix_002.wav"] * 2


def test_demo_dataset_refuses_stray_audio(tmp_path: Path) -> None:
    make_demo_dataset(tmp_path, seed=0, **{**_SMALL, "n_calib": 5})
    with pytest.raises(AudioError) as exc:
        make_demo_dataset(tmp_path, seed=0, **_SMALL)  # would leave mix_003/004 in calib/
    msg = str(exc.value)
    assert "\n" not in msg and str(tmp_path / "calib") in msg and "2 audio files" in msg and "mix_003.wav" in msg
