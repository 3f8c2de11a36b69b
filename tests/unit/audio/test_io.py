"""read_audio / list_audio: good files load exactly; every bad file or folder gives a one-line AudioError."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from harness.audio import SILENCE_PEAK, list_audio, read_audio
from harness.audio._io import file_sha256
from harness.errors import AudioError

SR = 16000


def _int16_wav(path: Path, values: np.ndarray, sr: int = SR) -> Path:
    sf.write(str(path), np.asarray(values, dtype=np.int16), sr, subtype="PCM_16", format="WAV")
    return path


def _tone(n: int = 160) -> np.ndarray:
    return np.round(8000 * np.sin(np.arange(n) / 3.0)).astype(np.int16)


def _assert_one_line(exc: pytest.ExceptionInfo[AudioError], path: Path, *parts: str) -> None:
    msg = str(exc.value)
    assert "\n" not in msg
    assert str(path) in msg
    for part in parts:
        assert part in msg, f"{part!r} not in {msg!r}"


def test_reads_pcm16_wav_exactly(tmp_path: Path) -> None:
    values = _tone()
    x = read_audio(_int16_wav(tmp_path / "a.wav", values), SR)
    assert x.dtype == np.float32 and x.shape == (160,)
    np.testing.assert_array_equal(x, values / 32768.0)


def test_reads_flac_and_float_wav(tmp_path: Path) -> None:
    values = _tone()
    sf.write(str(tmp_path / "a.flac"), values, SR, subtype="PCM_16")
    np.testing.assert_array_equal(read_audio(tmp_path / "a.flac", SR), values / 32768.0)
    f = (values / 40000.0).astype(np.float32)
    sf.write(str(tmp_path / "f.wav"), f, SR, subtype="FLOAT")
    np.testing.assert_array_equal(read_audio(str(tmp_path / "f.wav"), SR), f)


def _float_wav(path: Path, values: list[float]) -> Path:
    sf.write(str(path), np.asarray(values, dtype=np.float32), SR, subtype="FLOAT")
    return path


def _make_bad(kind: str, tmp_path: Path) -> Path:
    good = _int16_wav(tmp_path / "good.wav", _tone(1600)).read_bytes()
    p = tmp_path / f"{kind}.wav"
    if kind == "missing":
        return p
    if kind == "folder":
        p.mkdir()
    elif kind == "empty":
        p.write_bytes(b"")
    elif kind == "corrupt":
        p.write_bytes(bytes(range(256)) * 2)
    elif kind == "truncated_header":
        p.write_bytes(good[:30])
    elif kind == "truncated_data":
        p.write_bytes(good[:1000])
    elif kind == "truncated_flac":
        flac = tmp_path / "good.flac"
        sf.write(str(flac), _tone(16000), SR, subtype="PCM_16")
        data = flac.read_bytes()
        p = tmp_path / "truncated.flac"
        p.write_bytes(data[: len(data) // 2])
    elif kind == "zero_frames":
        _int16_wav(p, np.zeros(0))
    elif kind == "aiff":
        sf.write(str(p), _tone(), SR, subtype="PCM_16", format="AIFF")
    elif kind == "stereo":
        sf.write(str(p), np.stack([_tone(), _tone()], axis=1), SR, subtype="PCM_16")
    elif kind == "rate":
        _int16_wav(p, _tone(), sr=8000)
    elif kind == "nan":
        _float_wav(p, [0.1, 0.2, 0.3, 0.4, 0.5, float("nan"), 0.1, float("nan")])
    elif kind == "inf":
        _float_wav(p, [0.1, float("inf"), 0.3])
    elif kind == "silent":
        _int16_wav(p, np.zeros(100))
    elif kind == "nearly_silent":
        _float_wav(p, [0.0, 5e-7, -5e-7])
    return p


@pytest.mark.parametrize(
    ("kind", "parts"),
    [
        ("missing", ["no such file", "expected an existing WAV or FLAC file"]),
        ("folder", ["a folder", "expected a WAV or FLAC file"]),
        ("empty", ["empty file (0 bytes)", "expected a WAV or FLAC file"]),
        ("corrupt", ["unreadable", "Format not recognised", "expected a WAV or FLAC file readable by libsndfile"]),
        ("truncated_header", ["unreadable", "expected a WAV or FLAC file"]),
        ("truncated_data", ["truncated (956 of 3200 declared sample bytes present)", "expected a complete file"]),
        ("truncated_flac", ["unreadable samples", "expected a complete, uncorrupted file"]),
        ("zero_frames", ["0 frames; expected at least 1 sample"]),
        ("aiff", ["format AIFF; expected WAV or FLAC"]),
        ("stereo", ["2 channels; expected mono"]),
        ("rate", ["8000 Hz; expected 16000 Hz (the model's rate)", "sox"]),
        ("nan", ["2 NaN/Inf samples (first at sample 5); expected finite samples"]),
        ("inf", ["1 NaN/Inf samples (first at sample 1)"]),
        ("silent", ["silent (peak 0); expected a peak of at least 1e-06"]),
        ("nearly_silent", ["silent (peak 5e-07)", "1e-06"]),
    ],
)
def test_bad_file_raises_one_line_audio_error(kind: str, parts: list[str], tmp_path: Path) -> None:
    p = _make_bad(kind, tmp_path)
    with pytest.raises(AudioError) as exc:
        read_audio(p, SR)
    _assert_one_line(exc, p, *parts)


def test_silence_threshold_is_the_documented_constant(tmp_path: Path) -> None:
    assert SILENCE_PEAK == 1e-6
    x = read_audio(_float_wav(tmp_path / "quiet.wav", [0.0, 2e-6, 0.0]), SR)
    assert float(np.max(x)) == pytest.approx(2e-6)


def test_list_audio_sorted_case_insensitive_and_filtered(tmp_path: Path) -> None:
    for name in ["B.WAV", "a.wav", "._a.wav"]:
        _int16_wav(tmp_path / name, _tone())
    sf.write(str(tmp_path / "c.Flac"), _tone(), SR, subtype="PCM_16", format="FLAC")
    (tmp_path / "notes.txt").write_text("x")
    (tmp_path / "dir.wav").mkdir()
    assert [p.name for p in list_audio(tmp_path)] == ["B.WAV", "a.wav", "c.Flac"]
    assert all(isinstance(p, Path) for p in list_audio(str(tmp_path)))


@pytest.mark.parametrize(
    ("kind", "parts"),
    [
        ("missing", ["no such folder", "expected a folder of .wav/.flac files"]),
        ("file", ["not a folder", "expected a folder of .wav/.flac files"]),
        ("empty", ["no .wav or .flac files (0 other entries)", "expected at least one audio file"]),
        ("no_audio", ["no .wav or .flac files (2 other entries)"]),
    ],
)
def test_list_audio_errors(kind: str, parts: list[str], tmp_path: Path) -> None:
    folder = tmp_path / "audio"
    if kind == "file":
        folder.write_text("x")
    elif kind != "missing":
        folder.mkdir()
    if kind == "no_audio":
        (folder / "readme.txt").write_text("x")
        (folder / "clip.mp3").write_bytes(b"x")
    with pytest.raises(AudioError) as exc:
        list_audio(folder)
    _assert_one_line(exc, folder, *parts)


def test_file_sha256_is_content_hash(tmp_path: Path) -> None:
    p = _int16_wav(tmp_path / "a.wav", _tone())
    assert file_sha256(p) == hashlib.sha256(p.read_bytes()).hexdigest()
    assert file_sha256(str(p)) == file_sha256(p)


def _rewrite_same_size_same_mtime(p: Path, mtime_ns: int) -> None:
    p.write_bytes(p.read_bytes()[:-2] + b"\x01\x02")
    os.utime(p, ns=(mtime_ns, mtime_ns))


def test_file_sha256_memoizes_old_files_on_size_and_mtime(tmp_path: Path) -> None:
    p = _int16_wav(tmp_path / "old.wav", _tone())
    old = p.stat().st_mtime_ns - 10_000_000_000
    os.utime(p, ns=(old, old))
    first = file_sha256(p)
    _rewrite_same_size_same_mtime(p, old)
    assert file_sha256(p) == first  # memo hit: the documented blind spot
    os.utime(p, ns=(old + 1, old + 1))
    assert file_sha256(p) == hashlib.sha256(p.read_bytes()).hexdigest() != first


def test_file_sha256_does_not_memoize_fresh_files(tmp_path: Path) -> None:
    p = _int16_wav(tmp_path / "fresh.wav", _tone())
    mtime = p.stat().st_mtime_ns
    first = file_sha256(p)
    _rewrite_same_size_same_mtime(p, mtime)
    assert file_sha256(p) == hashlib.sha256(p.read_bytes()).hexdigest() != first
