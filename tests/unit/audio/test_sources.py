"""Data as users have it: .npz/.npy calibration arrays (the real DFC sets), LibriMix evaluation folders, resampling
(soxr) and channel choice, and the manifest naming every clip's source."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import soxr

from harness.audio import (
    CalibrationData,
    EvaluationData,
    Signal,
    build_calibration_set,
    list_audio,
    load_array,
    load_eval_set,
    read_audio,
)
from harness.audio._calibration import effective_policy
from harness.errors import AudioError
from support.real_dfc import REAL_DFC

NHWC = REAL_DFC / "calibration_200ms_16k_8.npz"  # (8, 1, 3200, 1), layout nhwc
NT = REAL_DFC / "calibration_1000ms_16k_64.npz"  # (64, 16000), layout nt

needs_real = pytest.mark.skipif(not NT.is_file(), reason="the real DFC calibration sets are not here")


def _tone(n: int, sr: int, f: float = 440.0, amp: float = 0.5) -> np.ndarray:
    return (amp * np.sin(2 * np.pi * f * np.arange(n) / sr)).astype(np.float32)


def _write(path: Path, x: np.ndarray, sr: int) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), x, sr, subtype="FLOAT")
    return path


# -- arrays -------------------------------------------------------------------------------------------------------
@needs_real
def test_real_npz_layouts_read_without_unpickling() -> None:
    nt, rate = load_array(NT, "calib_data")
    assert nt.shape == (64, 16000) and rate == 16000 and nt.dtype == np.float32
    nhwc, rate = load_array(NHWC, "calib_data")
    assert nhwc.shape == (8, 3200) and rate == 16000
    with np.load(NHWC, allow_pickle=False) as z:
        np.testing.assert_array_equal(nhwc, z["calib_data"][:, 0, :, 0])
    # selected_paths is an object array: naming it is refused, never unpickled
    with pytest.raises(AudioError, match="object array .* never unpickles"):
        load_array(NT, "selected_paths")
    with pytest.raises(AudioError, match=r"no array 'nope' \(arrays: calib_data, selected_paths"):
        load_array(NT, "nope")


@needs_real
def test_real_npz_calibration_set_names_row_of_every_clip() -> None:
    data = CalibrationData(NT)
    signals = list_audio(data)
    assert len(signals) == 64 and signals[3].name == "calibration_1000ms_16k_64.npz:calib_data[3]"
    cs = build_calibration_set(data, sample_rate=16000, width=16000, clip_length=8000, policy="pad", size=70)
    rows, _ = load_array(NT, "calib_data")
    # round-robin over the 64 rows: 64 first halves, then 6 second halves
    assert len(cs) == 70
    first = cs.manifest["clips"][0]
    assert first["file"] == NT.name and first["key"] == "calib_data" and first["row"] == 0 and first["offset"] == 0
    second = cs.manifest["clips"][65]
    assert (second["row"], second["offset"], second["clip_samples"]) == (1, 8000, 8000)
    np.testing.assert_array_equal(cs.data[65, :8000], rows[1, 8000:])
    np.testing.assert_array_equal(cs.data[65, 8000:], 0.0)  # padded
    assert [c["row"] for c in cs.manifest["clips"][:64]] == list(range(64))


@needs_real
def test_real_npz_nhwc_rows_are_clips_and_policy_matters() -> None:
    data = CalibrationData(NHWC)
    cs = build_calibration_set(data, sample_rate=16000, width=3200, clip_length=None, policy="repeat", size=8)
    rows, _ = load_array(NHWC, "calib_data")
    np.testing.assert_array_equal(cs.data, rows)
    assert cs.manifest["policy"] is None
    assert effective_policy(data, sample_rate=16000, width=3200, clip_length=None, policy="pad", size=8) is None
    assert effective_policy(data, sample_rate=16000, width=16000, clip_length=None, policy="pad", size=8) == "pad"


@needs_real
def test_npz_rate_differs_error_or_resample(tmp_path: Path) -> None:
    with pytest.raises(AudioError, match=r"sample_rate 16000 Hz; expected 8000 Hz .* data.resample: true"):
        read_audio(list_audio(CalibrationData(NT))[0], 8000)
    x = read_audio(list_audio(CalibrationData(NT, resample=True))[0], 8000)
    cs = build_calibration_set(CalibrationData(NT, resample=True), sample_rate=8000, width=8000, clip_length=None,
                               policy="pad", size=2)  # fmt: skip
    assert [(c["row"], c["source_rate"], c["source_samples"]) for c in cs.manifest["clips"]] == [(0, 16000, 8000),
                                                                                                (1, 16000, 8000)]
    rows, _ = load_array(NT, "calib_data")
    np.testing.assert_allclose(x, soxr.resample(rows[0], 16000, 8000, quality="HQ"), atol=1e-6)
    assert x.shape == (8000,)


def test_npy_and_named_key_and_bad_arrays(tmp_path: Path) -> None:
    clips = np.stack([_tone(100, 1000, f) for f in (50, 70, 90)])
    np.save(tmp_path / "c.npy", clips[:, None, None, :])  # NCHW, the model's own input layout
    sig = list_audio(CalibrationData(tmp_path / "c.npy"))
    assert [s.name for s in sig] == ["c.npy[0]", "c.npy[1]", "c.npy[2]"]
    np.testing.assert_array_equal(read_audio(sig[2], 1000), clips[2])
    np.savez(tmp_path / "k.npz", mine=clips)
    cs = build_calibration_set(
        CalibrationData(tmp_path / "k.npz", key="mine"), sample_rate=1000, width=100, clip_length=None, policy="pad",
        size=3,
    )
    assert [(c["key"], c["row"]) for c in cs.manifest["clips"]] == [("mine", 0), ("mine", 1), ("mine", 2)]
    np.savez(tmp_path / "i.npz", calib_data=(clips * 1000).astype(np.int16))
    with pytest.raises(AudioError, match="dtype int16; expected float samples"):
        load_array(tmp_path / "i.npz", "calib_data")
    np.savez(tmp_path / "s.npz", calib_data=clips[:, None, :, None].repeat(2, axis=3))
    with pytest.raises(AudioError, match=r"shape \(3, 1, 100, 2\); expected mono clips"):
        load_array(tmp_path / "s.npz", "calib_data")
    np.savez(tmp_path / "n.npz", calib_data=np.full((2, 100), np.nan, np.float32))
    with pytest.raises(AudioError, match=r"n.npz:calib_data\[0\]: 100 NaN/Inf samples"):
        read_audio(list_audio(CalibrationData(tmp_path / "n.npz"))[0], 1000)
    np.save(tmp_path / "paths.npy", np.array(["a.wav", None], dtype=object), allow_pickle=True)
    with pytest.raises(AudioError, match=r"paths.npy: an object array .*; expected a numeric array; hefsweep never"):
        load_array(tmp_path / "paths.npy", None)
    (tmp_path / "bad.npz").write_bytes(b"not a zip")
    with pytest.raises(AudioError, match="bad.npz: not an .npy/.npz file"):
        load_array(tmp_path / "bad.npz", "calib_data")
    with pytest.raises(ValueError, match="key only for an .npz file"):
        CalibrationData(tmp_path, key="x")


# -- files: rate and channels -------------------------------------------------------------------------------------
def test_wav_rate_resampled_only_when_asked(tmp_path: Path) -> None:
    x = _tone(2205, 22050, 300.0)
    f = _write(tmp_path / "a.wav", x, 22050)
    with pytest.raises(AudioError) as err:
        read_audio(f, 16000)
    assert str(err.value).startswith(f"{f}: 22050 Hz; expected 16000 Hz (the model's rate)")
    assert "data.resample: true" in str(err.value)
    y = read_audio(f, 16000, resample=True)
    np.testing.assert_allclose(y, soxr.resample(x, 22050, 16000, quality="HQ"), atol=1e-6)
    assert y.shape == (1600,)
    # the tone survives resampling: correlation with the ideal 300 Hz tone at 16 kHz
    ideal = _tone(1600, 16000, 300.0)
    mid = slice(100, 1500)
    assert np.corrcoef(y[mid], ideal[mid])[0, 1] > 0.999
    # a signal carries the option itself
    assert read_audio(Signal(f, resample=True), 16000).shape == (1600,)
    # the manifest says the clip's offsets count samples at the model's rate, resampled from the file's
    cs = build_calibration_set(CalibrationData(tmp_path, resample=True), sample_rate=16000, width=800, clip_length=800,
                               policy="pad", size=2, min_clips=2)  # fmt: skip
    assert [(c["file"], c["offset"], c["source_rate"]) for c in cs.manifest["clips"]] == [("a.wav", 0, 22050),
                                                                                         ("a.wav", 800, 22050)]
    np.testing.assert_array_equal(cs.data[1], y[800:1600])


def test_stereo_refused_unless_a_channel_is_chosen(tmp_path: Path) -> None:
    left, right = _tone(100, 1000, 50.0), _tone(100, 1000, 120.0, 0.25)
    f = tmp_path / "st.wav"
    sf.write(str(f), np.stack([left, right], axis=1), 1000, subtype="FLOAT")
    with pytest.raises(AudioError, match=r"st.wav: 2 channels; expected mono \(choose one with data.channel: 0"):
        read_audio(f, 1000)
    np.testing.assert_array_equal(read_audio(f, 1000, channel=1), right)
    np.testing.assert_array_equal(read_audio(f, 1000, channel=0), left)
    with pytest.raises(AudioError, match=r"2 channel\(s\); expected at least 3 for data.channel: 2"):
        read_audio(f, 1000, channel=2)
    sig = list_audio(CalibrationData(tmp_path, channel=1))
    assert [s.name for s in sig] == ["st.wav#ch1"]
    cs = build_calibration_set(CalibrationData(tmp_path, channel=1), sample_rate=1000, width=100, clip_length=None,
                               policy="pad", size=1, min_clips=1)  # fmt: skip
    assert cs.manifest["clips"][0]["channel"] == 1 and cs.manifest["clips"][0]["file"] == "st.wav"
    np.testing.assert_array_equal(cs.data[0], right)


def test_plain_folder_manifest_unchanged_by_data_description(tmp_path: Path) -> None:
    for i in range(3):
        _write(tmp_path / f"{i}.wav", _tone(300, 1000, 40.0 + 10 * i), 1000)
    kw = dict(sample_rate=1000, width=200, clip_length=100, policy="pad", size=5)
    a = build_calibration_set(tmp_path, **kw)
    b = build_calibration_set(CalibrationData(tmp_path), **kw)
    assert a.key == b.key and a.manifest == b.manifest
    c = build_calibration_set(CalibrationData(tmp_path, resample=True), **kw)
    assert c.key != a.key and c.manifest["resample"] is True


def test_missing_demo_folder_says_how_to_make_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    with pytest.raises(AudioError) as err:
        list_audio(tmp_path / "spaces" / ".." / "data" / "demo" / "calib")
    assert str(err.value) == (
        f"{tmp_path}/spaces/../data/demo/calib: no such folder; expected a folder of .wav/.flac files "
        f"(`hefsweep demo-data --out {tmp_path}/data/demo` makes the demo data there)"
    )
    monkeypatch.chdir(tmp_path)  # below the working folder: the relative path
    with pytest.raises(AudioError, match=r"\(`hefsweep demo-data --out data/demo` makes the demo data there\)$"):
        load_eval_set(tmp_path / "data" / "demo" / "eval", sample_rate=1000, width=8, n_src=2)
    with pytest.raises(AudioError, match=r"no such folder; expected a folder of .wav/.flac files$"):
        list_audio(tmp_path / "mine")


# -- LibriMix -----------------------------------------------------------------------------------------------------
def _librimix(root: Path, names: list[str], sr: int = 1000, n: int = 120) -> dict[str, dict[str, np.ndarray]]:
    """A tiny LibriMix split: mix_clean, mix_both, mix_single, s1, s2, noise with LibriMix's names."""
    out: dict[str, dict[str, np.ndarray]] = {}
    for i, name in enumerate(names):
        s1, s2 = _tone(n, sr, 31.0 + i, 0.3), _tone(n, sr, 77.0 + i, 0.2)
        noise = _tone(n, sr, 190.0, 0.05)
        sig = {"s1": s1, "s2": s2, "noise": noise, "mix_clean": s1 + s2, "mix_both": s1 + s2 + noise,
               "mix_single": s1 + noise}  # fmt: skip
        for folder, x in sig.items():
            _write(root / folder / name, x, sr)
        out[name] = sig
    return out


@pytest.mark.parametrize("mix", ["mix_clean", "mix_both"])
def test_librimix_split(tmp_path: Path, mix: str) -> None:
    names = ["1089-134686-0000_121-121726-0000.wav", "1221-135766-0001_2961-961-0002.wav"]
    sig = _librimix(tmp_path, names)
    ev = load_eval_set(EvaluationData(tmp_path, layout="librimix", mix=mix), sample_rate=1000, width=100, n_src=2)
    assert ev.names == tuple(sorted(names))
    for i, name in enumerate(ev.names):
        np.testing.assert_allclose(ev.mixtures[i], sig[name][mix][10:110], atol=1e-7)  # centre crop
        np.testing.assert_allclose(ev.sources[i, 1], sig[name]["s2"][10:110], atol=1e-7)
    other = load_eval_set(EvaluationData(tmp_path, layout="librimix", mix="mix_single"), sample_rate=1000, width=100,
                          n_src=1)  # fmt: skip
    assert other.sources.shape == (2, 1, 100) and other.key != ev.key


def test_librimix_errors_and_hints(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    _librimix(tmp_path, ["a.wav"])
    with pytest.raises(AudioError) as err:  # a LibriMix split given as a plain path
        load_eval_set(tmp_path, sample_rate=1000, width=100, n_src=2)
    assert str(err.value) == (
        f"{tmp_path}/mixture: no such folder (folders: mix_both, mix_clean, mix_single, noise, s1, s2); expected "
        "mixture/ holding the mixtures (hefsweep's layout) (a LibriMix split: say data.evaluation: "
        f"{{path: {tmp_path}, layout: librimix, mix: mix_clean}} in the space)"
    )
    shutil.rmtree(tmp_path / "mix_both")
    with pytest.raises(AudioError, match=r"mix_both: no such folder .*; this split has mix_clean, mix_single\)$"):
        load_eval_set(EvaluationData(tmp_path, layout="librimix", mix="mix_both"), sample_rate=1000, width=100, n_src=2)
    with caplog.at_level(logging.WARNING, logger="harness.audio"):
        ev = load_eval_set(EvaluationData(tmp_path, layout="librimix", mix="mix_single"), sample_rate=1000, width=100,
                           n_src=2)  # fmt: skip
    assert ev.sources is None and "mix_single holds one speaker" in caplog.text
    with pytest.raises(ValueError, match="mix only with layout librimix"):
        EvaluationData(tmp_path, mix="mix_clean")


def test_librimix_resampled_and_channel(tmp_path: Path) -> None:
    _librimix(tmp_path, ["a.wav"], sr=2000, n=240)
    with pytest.raises(AudioError, match=r"mix_clean/a.wav: 2000 Hz; expected 1000 Hz .*data.resample: true"):
        load_eval_set(EvaluationData(tmp_path, layout="librimix"), sample_rate=1000, width=100, n_src=2)
    ev = load_eval_set(EvaluationData(tmp_path, layout="librimix", resample=True), sample_rate=1000, width=100, n_src=2)
    assert ev.mixtures.shape == (1, 100) and ev.lengths == (100,)
