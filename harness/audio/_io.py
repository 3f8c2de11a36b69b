"""Reading audio files and folders, with one-line errors for every way a file can be unusable."""

from __future__ import annotations

import os
import struct
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf

from harness.audio._sources import CalibrationData, Signal, load_array
from harness.cache import file_sha256
from harness.errors import AudioError

__all__ = ["AUDIO_SUFFIXES", "SILENCE_PEAK", "file_sha256", "list_audio", "read_audio"]

#: File name endings (compared case-insensitively) that :func:`list_audio` picks up.
AUDIO_SUFFIXES: tuple[str, ...] = (".wav", ".flac")

#: A file whose absolute peak is below this is rejected as silent (about -120 dBFS; a PCM_16 file
#: is below it only when every sample is exactly zero).
SILENCE_PEAK = 1e-6

_FORMATS = ("WAV", "WAVEX", "FLAC")


def read_audio(
    path: str | os.PathLike[str] | Signal, sample_rate: int, *, resample: bool = False, channel: int | None = None
) -> np.ndarray:
    """Read a WAV or FLAC file (or a :class:`~harness.audio.Signal`: one channel of a file, a row of an array file)
    at the model's sample rate.

    Args:
        path: The file to read, or a signal (which then brings its own ``resample`` and ``channel``).
        sample_rate: The rate the model expects, in Hz.
        resample: Resample a file at another rate to ``sample_rate`` (soxr, high quality); without it another
            rate is an error.
        channel: The channel of a multi-channel file to use (0-based); without it such files are an error.

    Returns:
        The samples as a float32 array of shape ``[n_samples]``, in ``[-1, 1]`` for PCM files.

    Raises:
        AudioError: The file is missing, empty, unreadable (corrupt, truncated header or samples,
            not WAV/FLAC), has no frames, more than one channel (and no ``channel``), fewer channels than
            ``channel + 1``, another sample rate (and not ``resample``), NaN/Inf samples, or is silent (peak
            below :data:`SILENCE_PEAK`).
    """
    if isinstance(path, Signal):
        if path.row is not None:
            return _read_row(path, sample_rate)
        path, resample, channel = path.file, path.resample, path.channel
    p = Path(path)
    if not p.exists():
        raise AudioError(p, "no such file", "an existing WAV or FLAC file")
    if p.is_dir():
        raise AudioError(p, "a folder", "a WAV or FLAC file")
    if p.stat().st_size == 0:
        raise AudioError(p, "empty file (0 bytes)", "a WAV or FLAC file")
    try:
        info = sf.info(str(p))
    except (sf.SoundFileError, RuntimeError) as exc:
        raise AudioError(p, f"unreadable ({exc})", "a WAV or FLAC file readable by libsndfile") from exc
    if info.format not in _FORMATS:
        raise AudioError(p, f"format {info.format}", "WAV or FLAC")
    if info.format in ("WAV", "WAVEX"):
        _check_wav_complete(p)
    if info.frames == 0:
        raise AudioError(p, "0 frames", "at least 1 sample")
    if channel is None and info.channels != 1:
        raise AudioError(
            p,
            f"{info.channels} channels",
            "mono",
            hint="choose one with data.channel: 0 in the space, or downmix it, e.g. sox in.wav -c 1 out.wav",
        )
    if channel is not None and channel >= info.channels:
        raise AudioError(p, f"{info.channels} channel(s)", f"at least {channel + 1} for data.channel: {channel}")
    if info.samplerate != sample_rate and not resample:
        raise AudioError(
            p,
            f"{info.samplerate} Hz",
            f"{sample_rate} Hz (the model's rate)",
            hint=f"set data.resample: true in the space to resample with soxr, or resample it, "
            f"e.g. sox in.wav -r {sample_rate} out.wav",
        )
    try:
        data, _ = sf.read(str(p), dtype="float32", always_2d=True)
    except (sf.SoundFileError, RuntimeError) as exc:
        raise AudioError(p, f"unreadable samples ({exc})", "a complete, uncorrupted file") from exc
    data = np.ascontiguousarray(data[:, channel or 0], dtype=np.float32)
    if data.size != info.frames:
        raise AudioError(p, f"{data.size} readable frames of {info.frames} declared", "a complete file")
    _check_samples(p, data)
    if info.samplerate != sample_rate:
        data = _resample(data, info.samplerate, sample_rate)
    return data


def _read_row(signal: Signal, sample_rate: int) -> np.ndarray:
    """Row ``signal.row`` of an array file, at ``sample_rate`` (see :func:`read_audio`)."""
    rows, rate = load_array(signal.file, signal.key)
    if not 0 <= signal.row < rows.shape[0]:  # type: ignore[operator]
        raise AudioError(signal, f"no such row (the array has {rows.shape[0]})", "an existing row")
    data = np.array(rows[signal.row], dtype=np.float32)
    if rate is not None and rate != sample_rate and not signal.resample:
        raise AudioError(
            signal.file,
            f"sample_rate {rate} Hz",
            f"{sample_rate} Hz (the model's rate)",
            hint="set data.resample: true in the space to resample with soxr",
        )
    _check_samples(signal, data)
    if rate is not None and rate != sample_rate:
        data = _resample(data, rate, sample_rate)
    return data


def _check_samples(where: object, data: np.ndarray) -> None:
    """Raise unless every sample is finite and the peak reaches :data:`SILENCE_PEAK`."""
    finite = np.isfinite(data)
    if not finite.all():
        bad = int(data.size - np.count_nonzero(finite))
        first = int(np.argmin(finite))
        raise AudioError(where, f"{bad} NaN/Inf samples (first at sample {first})", "finite samples")
    peak = float(np.max(np.abs(data)))
    if peak < SILENCE_PEAK:
        raise AudioError(where, f"silent (peak {peak:.3g})", f"a peak of at least {SILENCE_PEAK:g}")


def _resample(data: np.ndarray, rate: int, sample_rate: int) -> np.ndarray:
    """``data`` at ``rate`` resampled to ``sample_rate`` with soxr (high quality), as float32."""
    import soxr

    return np.ascontiguousarray(soxr.resample(data, rate, sample_rate, quality="HQ"), dtype=np.float32)


def list_audio(folder: str | os.PathLike[str] | CalibrationData) -> list[Any]:
    """List the audio files of a folder (not recursive), or the signals of calibration data.

    Files whose names end in ``.wav`` or ``.flac`` (any case) are returned; names starting with a
    dot (e.g. macOS ``._x.wav`` resource forks) are ignored.

    Args:
        folder: The folder to list, or a :class:`~harness.audio.CalibrationData` (a folder or an array file,
            with read options): then its :meth:`~harness.audio.CalibrationData.signals` are returned.

    Returns:
        The files (``Path``), sorted by name; for calibration data its signals (:class:`~harness.audio.Signal`).

    Raises:
        AudioError: The folder is missing, is not a folder, or holds no audio files.
    """
    if isinstance(folder, CalibrationData):
        return list(folder.signals())
    p = Path(folder)
    if not p.exists():
        raise AudioError(p, "no such folder", "a folder of .wav/.flac files", hint=demo_hint(p))
    if not p.is_dir():
        raise AudioError(p, "not a folder", "a folder of .wav/.flac files")
    entries = list(p.iterdir())
    files = sorted(
        (
            e
            for e in entries
            if e.suffix.lower() in AUDIO_SUFFIXES and not e.name.startswith(".") and e.is_file()
        ),
        key=lambda e: e.name,
    )
    if not files:
        raise AudioError(p, f"no .wav or .flac files ({len(entries)} other entries)", "at least one audio file")
    return files


def demo_hint(folder: Path) -> str | None:
    """Where a missing folder is one of the demo data's (``<dir>/calib``, ``<dir>/eval``): the command that makes it."""
    if folder.name not in ("calib", "eval"):
        return None
    out = os.path.normpath(folder.parent)
    rel = os.path.relpath(out)
    return f"`hefsweep demo-data --out {out if rel.startswith('..') else rel}` makes the demo data there"


def _check_wav_complete(path: Path) -> None:
    """Raise if a RIFF/WAV file holds fewer sample bytes than its ``data`` chunk declares.

    libsndfile silently shortens such files to what is present, so a cut-off download would
    otherwise become a shorter clip without notice.
    """
    size = path.stat().st_size
    with path.open("rb") as fh:
        head = fh.read(12)
        if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
            return  # RF64 and other variants: leave the checks to libsndfile
        pos = 12
        while pos + 8 <= size:
            fh.seek(pos)
            chunk_id, chunk_size = struct.unpack("<4sI", fh.read(8))
            if chunk_id == b"data":
                available = size - pos - 8
                if chunk_size != 0xFFFFFFFF and available < chunk_size:
                    raise AudioError(
                        path,
                        f"truncated ({available} of {chunk_size} declared sample bytes present)",
                        "a complete file",
                    )
                return
            pos += 8 + chunk_size + (chunk_size & 1)


