"""Synthetic speech-like signals and a small LibriMix-like demo dataset (no downloads needed).

The signals are crude source-filter speech: a band-limited glottal pulse train with a wandering
pitch, shaped by three moving formant resonators, alternating with filtered-noise consonants and
pauses under syllable-rate envelopes. That is enough to exercise calibration ranges and separation
metrics with realistic spectra and gaps; it is not intelligible speech.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf

from harness.audio._io import AUDIO_SUFFIXES
from harness.errors import AudioError

__all__ = ["VOICES", "Voice", "make_demo_dataset", "speech_like", "synth_mixture"]


@dataclass(frozen=True)
class Voice:
    """A synthetic speaker.

    Attributes:
        f0_range: Lowest and highest fundamental frequency in Hz.
        formant_scale: Factor on the formant frequencies (vocal-tract length; ~1.0 male, ~1.2 child).
    """

    f0_range: tuple[float, float]
    formant_scale: float


#: Speakers with disjoint pitch ranges; :func:`synth_mixture` draws distinct ones per mixture.
VOICES: tuple[Voice, ...] = (
    Voice((85.0, 115.0), 1.00),
    Voice((130.0, 165.0), 1.07),
    Voice((180.0, 220.0), 1.15),
    Voice((230.0, 265.0), 1.22),
)

# (F1, F2, F3) in Hz for a few vowels of an adult male voice.
_VOWELS = np.array(
    [
        [730.0, 1090.0, 2440.0],  # a
        [270.0, 2290.0, 3010.0],  # i
        [300.0, 870.0, 2240.0],  # u
        [530.0, 1840.0, 2480.0],  # e
        [570.0, 840.0, 2410.0],  # o
        [660.0, 1720.0, 2410.0],  # ae
    ]
)
_BANDWIDTHS = np.array([80.0, 100.0, 140.0])
_BLOCK_S = 0.010  # formant coefficients are updated every 10 ms
_RING_S = 0.030  # resonator ring-out kept after a voiced segment

# Paul Kellet's economy pink-noise filter (-3 dB/octave within ~1 dB over the audio band).
_PINK_B = np.array([0.049922035, -0.095993537, 0.050612699, -0.004408786])
_PINK_A = np.array([1.0, -2.494956002, 2.017265875, -0.522189400])


def speech_like(
    rng: np.random.Generator,
    n_samples: int,
    sample_rate: int,
    *,
    f0_range: tuple[float, float] = (90.0, 250.0),
    formant_scale: float = 1.0,
) -> np.ndarray:
    """Generate one speech-like source.

    Voiced syllables (120-300 ms, harmonics of a pitch that random-walks inside ``f0_range``,
    filtered by three resonators gliding between vowel targets), unvoiced bursts (40-120 ms of
    band-pass noise at 2.5-6 kHz) and pauses (50-250 ms) follow each other at random; the first
    segment after a short lead-in is voiced, so the signal is never silent.

    Args:
        rng: Random generator; the output is a deterministic function of its state.
        n_samples: Length in samples.
        sample_rate: Sample rate in Hz (8000 and up).
        f0_range: Lowest and highest pitch in Hz.
        formant_scale: Factor on the formant frequencies.

    Returns:
        float32 ``[n_samples]`` with peak absolute value 1.
    """
    return _speech(rng, n_samples, sample_rate, Voice(f0_range, formant_scale)).astype(np.float32)


def synth_mixture(
    rng: np.random.Generator,
    n_samples: int,
    sample_rate: int,
    n_src: int = 2,
    snr_db_range: tuple[float, float] = (-5.0, 5.0),
    noise_db: float = -25.0,
) -> tuple[np.ndarray, np.ndarray]:
    """Generate a mixture of ``n_src`` speech-like sources from different speakers plus background noise.

    Each source uses a distinct :data:`VOICES` entry (disjoint pitch ranges, different formants) and
    is scaled to unit RMS; sources 2..n are then set to a level drawn uniformly from ``snr_db_range``
    relative to source 1. Pink-ish noise at ``noise_db`` relative to the RMS of the summed sources is
    added to the mixture only, so ``mixture - sources.sum(0)`` is the noise. Everything is finally
    scaled by one factor that puts the mixture peak at a value drawn from ``[0.5, 0.9]``.

    Args:
        rng: Random generator.
        n_samples: Length in samples.
        sample_rate: Sample rate in Hz.
        n_src: Number of sources, 1 to ``len(VOICES)``.
        snr_db_range: Range of the level of each further source relative to the first, in dB.
        noise_db: Background noise level relative to the speech, in dB.

    Returns:
        ``(mixture, sources)``: float32 ``[n_samples]`` and float32 ``[n_src, n_samples]``.

    Raises:
        ValueError: ``n_src`` outside ``1..len(VOICES)``.
    """
    mixture, sources, _ = _mixture_parts(rng, n_samples, sample_rate, n_src, snr_db_range, noise_db)
    return mixture.astype(np.float32), sources.astype(np.float32)


def make_demo_dataset(
    root: str | os.PathLike[str],
    *,
    seed: int = 0,
    sample_rate: int = 16000,
    n_calib: int = 24,
    calib_seconds: float = 2.0,
    n_eval: int = 8,
    eval_seconds: float = 1.0,
    n_src: int = 2,
) -> dict[str, Any]:
    """Write a small synthetic calibration + evaluation dataset.

    Layout: ``root/calib/mix_000.wav`` ... (mixtures) and ``root/eval/mixture/mix_000.wav``,
    ``root/eval/s1/...`` ... ``root/eval/s<n_src>/...`` (LibriMix layout).

    All files are mono PCM_16 WAV. Sources and noise are quantized to the 16-bit grid first and the
    mixture file holds their integer sum, so ``mixture == s1 + s2 + noise`` holds exactly on the
    16-bit grid (and after reading as float, since ``k / 32768`` is exact). PCM_16 was chosen over
    FLOAT because libsndfile writes a time-stamped PEAK chunk into float WAVs, which would break
    byte-for-byte determinism; it also halves the size. The same seed gives the same bytes.

    Existing files of the same names are overwritten; any other audio file already in a target
    folder is an error, as it would silently join the set.

    Args:
        root: Destination folder (created).
        seed: Seed; file ``i`` of each split uses its own generator seeded ``[seed, split, i]``.
        sample_rate: Sample rate in Hz.
        n_calib: Number of calibration mixtures.
        calib_seconds: Duration of each calibration mixture.
        n_eval: Number of evaluation mixtures.
        eval_seconds: Duration of each evaluation mixture.
        n_src: Sources per mixture.

    Returns:
        Summary: ``root``, ``seed``, ``sample_rate``, ``n_src``, ``subtype`` and, for ``calib`` and
        ``eval``, the ``folder``, number of ``files``, ``seconds`` and ``samples`` per file
        (``eval`` also lists its ``sources`` folders).

    Raises:
        ValueError: Non-positive counts or durations, or ``n_src`` outside ``1..len(VOICES)``.
        AudioError: A target folder already holds audio files this call would not write.
    """
    for name, value in (
        ("sample_rate", sample_rate),
        ("n_calib", n_calib),
        ("calib_seconds", calib_seconds),
        ("n_eval", n_eval),
        ("eval_seconds", eval_seconds),
    ):
        if value <= 0:
            raise ValueError(f"{name}={value}: expected > 0")
    _check_n_src(n_src)
    root_p = Path(root)
    calib_dir = root_p / "calib"
    eval_dir = root_p / "eval"
    src_names = [f"s{k}" for k in range(1, n_src + 1)]
    calib_names = _file_names(n_calib)
    eval_names = _file_names(n_eval)
    targets = [(calib_dir, calib_names)] + [(eval_dir / d, eval_names) for d in ["mixture", *src_names]]
    for folder, names in targets:
        _check_no_strays(folder, names)
        folder.mkdir(parents=True, exist_ok=True)

    n_calib_samples = max(1, round(calib_seconds * sample_rate))
    for i, name in enumerate(calib_names):
        rng = np.random.default_rng([seed, 0, i])
        mixture, _, _ = _mixture_parts(rng, n_calib_samples, sample_rate, n_src, (-5.0, 5.0), -25.0)
        _write_pcm16(calib_dir / name, _quantize(mixture), sample_rate)

    n_eval_samples = max(1, round(eval_seconds * sample_rate))
    for i, name in enumerate(eval_names):
        rng = np.random.default_rng([seed, 1, i])
        _, sources, noise = _mixture_parts(rng, n_eval_samples, sample_rate, n_src, (-5.0, 5.0), -25.0)
        src_q = _quantize(sources).astype(np.int32)
        mix_q = src_q.sum(axis=0) + _quantize(noise)
        _write_pcm16(eval_dir / "mixture" / name, mix_q, sample_rate)
        for k, d in enumerate(src_names):
            _write_pcm16(eval_dir / d / name, src_q[k], sample_rate)

    return {
        "root": str(root_p),
        "seed": seed,
        "sample_rate": sample_rate,
        "n_src": n_src,
        "subtype": "PCM_16",
        "calib": {
            "folder": str(calib_dir),
            "files": n_calib,
            "seconds": n_calib_samples / sample_rate,
            "samples": n_calib_samples,
        },
        "eval": {
            "folder": str(eval_dir),
            "files": n_eval,
            "seconds": n_eval_samples / sample_rate,
            "samples": n_eval_samples,
            "sources": src_names,
        },
    }


def _speech(rng: np.random.Generator, n: int, sr: int, voice: Voice) -> np.ndarray:
    """float64 speech-like signal with peak 1 (see :func:`speech_like`)."""
    if n < 1:
        raise ValueError(f"n_samples={n}: expected >= 1")
    f_lo, f_hi = voice.f0_range
    if not 0 < f_lo <= f_hi < sr / 4:
        raise ValueError(f"f0_range={voice.f0_range}: expected 0 < low <= high < sample_rate/4")

    voiced = np.zeros(n)
    unvoiced = np.zeros(n)
    excitation = _glottal(rng, n, sr, f_lo, f_hi)
    nyq_cap = 0.45 * sr
    t = int(rng.uniform(0.0, 0.1) * sr)
    kind = "voiced"
    while t < n:
        if kind == "voiced":
            length = int(rng.uniform(0.12, 0.30) * sr)
        elif kind == "unvoiced":
            length = int(rng.uniform(0.04, 0.12) * sr)
        else:
            length = int(rng.uniform(0.05, 0.25) * sr)
        end = min(n, t + max(length, 1))
        if kind == "voiced":
            env = _envelope(end - t, 0.6) * rng.uniform(0.4, 1.0)
            start_f = _VOWELS[rng.integers(len(_VOWELS))] * voice.formant_scale * rng.uniform(0.95, 1.05)
            end_f = _VOWELS[rng.integers(len(_VOWELS))] * voice.formant_scale * rng.uniform(0.95, 1.05)
            stop = min(n, end + int(_RING_S * sr))
            src = np.zeros(stop - t)
            src[: end - t] = excitation[t:end] * env
            voiced[t:stop] += _formant_filter(src, sr, np.minimum(start_f, nyq_cap), np.minimum(end_f, nyq_cap))
        elif kind == "unvoiced":
            centre = rng.uniform(2500.0, min(6000.0, 0.4 * sr))
            burst = _resonate(rng.standard_normal(end - t), sr, centre, rng.uniform(800.0, 1500.0))
            burst /= max(float(np.max(np.abs(burst))), 1e-12)
            unvoiced[t:end] += burst * _envelope(end - t, 1.5) * rng.uniform(0.1, 0.35)
        t = end
        kind = str(rng.choice(["voiced", "unvoiced", "pause"], p=[0.55, 0.2, 0.25]))

    voiced /= max(float(np.max(np.abs(voiced))), 1e-12)
    out = voiced + unvoiced
    return out / max(float(np.max(np.abs(out))), 1e-12)


def _glottal(rng: np.random.Generator, n: int, sr: int, f_lo: float, f_hi: float) -> np.ndarray:
    """Band-limited pulse train with a random-walk pitch and a -6 dB/octave glottal tilt."""
    step = max(1, int(0.06 * sr))
    n_ctrl = n // step + 2
    lo, hi = np.log(f_lo), np.log(f_hi)
    walk = np.empty(n_ctrl)
    walk[0] = rng.uniform(lo, hi)
    for i in range(1, n_ctrl):
        nxt = walk[i - 1] + rng.normal(0.0, 0.05)
        if nxt > hi:
            nxt = 2 * hi - nxt
        if nxt < lo:
            nxt = 2 * lo - nxt
        walk[i] = min(max(nxt, lo), hi)
    f0 = np.exp(np.interp(np.arange(n), np.arange(n_ctrl) * step, walk))
    theta = np.mod(2 * np.pi * np.cumsum(f0) / sr, 2 * np.pi)
    n_harm = max(1, int(0.45 * sr // f_hi))
    # Dirichlet kernel: sum_{h=1..H} cos(h*theta), O(n) instead of O(n*H).
    den = 2.0 * np.sin(theta / 2.0)
    safe = np.abs(den) > 1e-9
    pulses = np.full(n, float(n_harm))
    pulses[safe] = np.sin((n_harm + 0.5) * theta[safe]) / den[safe] - 0.5
    pulses /= n_harm
    tilted = lfilter([1.0], [1.0, -0.9], pulses)
    breath = 0.03 * float(np.std(tilted)) * rng.standard_normal(n)
    return tilted + breath


def _envelope(length: int, power: float) -> np.ndarray:
    """Syllable envelope: a raised half-sine of ``length`` samples."""
    return np.sin(np.pi * (np.arange(length) + 0.5) / length) ** power


def _resonator(freq: np.ndarray, bw: np.ndarray, sr: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-resonator (gain, a1, a2) of 2-pole resonators with ~unity peak gain."""
    r = np.exp(-np.pi * bw / sr)
    w = 2 * np.pi * freq / sr
    gain = (1 - r) * np.sqrt(1 - 2 * r * np.cos(2 * w) + r * r)
    return gain, np.stack([-2 * r * np.cos(w), r * r], axis=-1)


def _resonate(x: np.ndarray, sr: int, freq: float, bw: float) -> np.ndarray:
    gain, a = _resonator(np.array([freq]), np.array([bw]), sr)
    return lfilter([gain[0]], [1.0, *a[0]], x)


def _formant_filter(x: np.ndarray, sr: int, start_f: np.ndarray, end_f: np.ndarray) -> np.ndarray:
    """Cascade of three resonators gliding linearly from ``start_f`` to ``end_f`` over ``x``.

    The cascade is one 6th-order filter whose coefficients change every block; its state carries
    over between blocks, so the glide has no clicks.
    """
    block = max(1, int(_BLOCK_S * sr))
    n_blocks = -(-x.shape[0] // block)
    frac = (np.arange(n_blocks) + 0.5) / n_blocks
    freqs = start_f[None, :] + frac[:, None] * (end_f - start_f)[None, :]
    gains, poles = _resonator(freqs, np.broadcast_to(_BANDWIDTHS, freqs.shape), sr)
    out = np.empty_like(x)
    zi = np.zeros(6)
    for b in range(n_blocks):
        a = np.array([1.0])
        for k in range(3):
            a = np.convolve(a, [1.0, poles[b, k, 0], poles[b, k, 1]])
        seg = slice(b * block, (b + 1) * block)
        out[seg], zi = lfilter([float(np.prod(gains[b]))], a, x[seg], zi=zi)
    return out


def _pink(rng: np.random.Generator, n: int) -> np.ndarray:
    warm = 2048  # discard the filter's start-up transient
    return lfilter(_PINK_B, _PINK_A, rng.standard_normal(n + warm))[warm:]


def _check_n_src(n_src: int) -> None:
    if not 1 <= n_src <= len(VOICES):
        raise ValueError(f"n_src={n_src}: expected 1..{len(VOICES)} (one distinct voice per source)")


def _mixture_parts(
    rng: np.random.Generator,
    n: int,
    sr: int,
    n_src: int,
    snr_db_range: tuple[float, float],
    noise_db: float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """float64 ``(mixture, sources, noise)`` with ``mixture == sources.sum(0) + noise``."""
    _check_n_src(n_src)
    voices = rng.choice(len(VOICES), size=n_src, replace=False)
    sources = np.empty((n_src, n))
    for k, v in enumerate(voices):
        s = _speech(rng, n, sr, VOICES[int(v)])
        level_db = 0.0 if k == 0 else rng.uniform(*snr_db_range)
        sources[k] = s / max(_rms(s), 1e-12) * 10.0 ** (level_db / 20.0)
    speech = sources.sum(axis=0)
    noise = _pink(rng, n)
    noise *= _rms(speech) * 10.0 ** (noise_db / 20.0) / max(_rms(noise), 1e-12)
    mixture = speech + noise
    scale = rng.uniform(0.5, 0.9) / max(float(np.max(np.abs(mixture))), 1e-12)
    return mixture * scale, sources * scale, noise * scale


def _rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x))))


def _quantize(x: np.ndarray) -> np.ndarray:
    """float in [-1, 1) -> int16 grid values (as int32), the inverse of libsndfile's ``k / 32768``."""
    return np.clip(np.round(x * 32768.0), -32768, 32767).astype(np.int32)


def _write_pcm16(path: Path, values: np.ndarray, sr: int) -> None:
    if values.min() < -32768 or values.max() > 32767:
        raise ValueError(f"{path}: samples exceed the 16-bit range")  # cannot happen with peak <= 0.9
    sf.write(str(path), values.astype(np.int16), sr, subtype="PCM_16", format="WAV")


def _file_names(n: int) -> list[str]:
    digits = max(3, len(str(n - 1)))
    return [f"mix_{i:0{digits}d}.wav" for i in range(n)]


def _check_no_strays(folder: Path, names: list[str]) -> None:
    if not folder.is_dir():
        return
    wanted = set(names)
    strays = sorted(
        p.name for p in folder.iterdir() if p.suffix.lower() in AUDIO_SUFFIXES and p.name not in wanted
    )
    if strays:
        raise AudioError(
            folder,
            f"{len(strays)} audio files this call would not write (e.g. {strays[0]})",
            "a new or empty folder, or one from the same make_demo_dataset settings",
            hint="choose another root",
        )


def lfilter(b: Any, a: Any, x: np.ndarray, zi: Any = None) -> Any:
    """``scipy.signal.lfilter``, imported on first use (scipy costs 1-2 s at every CLI start otherwise)."""
    from scipy.signal import lfilter as _lfilter

    return _lfilter(b, a, x) if zi is None else _lfilter(b, a, x, zi=zi)
