"""The data a search space points at, as users have it: what a calibration or evaluation path holds and how to read it.

- :class:`CalibrationData`: a folder of WAV/FLAC files, or an array file -- ``.npz`` (``calib_data`` or a named key;
  its ``sample_rate`` and ``layout`` entries are used when present) or ``.npy`` -- of clips ``(N, T)``, NHWC
  ``(N, 1, T, 1)``, NCHW ``(N, 1, 1, T)`` or one clip ``(T,)``. Arrays are read with ``allow_pickle=False``: an
  object array (e.g. a list of source paths) is never unpickled.
- :class:`EvaluationData`: hefsweep's layout (``mixture/`` + ``s1/`` ...) or LibriMix's (``mix_clean/`` |
  ``mix_both/`` | ``mix_single/`` + ``s1/``, ``s2/``, ``noise/``).
- :class:`Signal`: one signal of either -- a file (one channel of it), or a row of an array file. It is
  ``os.PathLike`` (the file holding it, for hashing) and :func:`harness.audio.read_audio` reads it.

Both data classes carry the read options of the space: ``resample`` (a rate other than the model's is resampled
with soxr only when true) and ``channel`` (the channel of multi-channel files to use; without it they are refused).
"""

from __future__ import annotations

import os
import threading
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from harness.errors import AudioError

__all__ = ["ARRAY_SUFFIXES", "CalibrationData", "EvaluationData", "LIBRIMIX_MIXES", "Signal", "load_array"]

#: Array files a calibration path may be (compared case-insensitively).
ARRAY_SUFFIXES: tuple[str, ...] = (".npz", ".npy")
#: The mixture folders of a LibriMix split (``data.evaluation.mix``).
LIBRIMIX_MIXES: tuple[str, ...] = ("mix_clean", "mix_both", "mix_single")
#: The array an ``.npz`` calibration file is read from unless the space names another ``key``.
DEFAULT_NPZ_KEY = "calib_data"

# a field type of harness.space.Data: unknown keys in the YAML are errors there too
_PYDANTIC = {"extra": "forbid"}


@dataclass(frozen=True)
class CalibrationData:
    """Where the calibration audio is: a folder of WAV/FLAC files or an ``.npz``/``.npy`` array file.

    Attributes:
        path: The folder or the array file.
        key: The ``.npz`` array to read (default :data:`DEFAULT_NPZ_KEY`); only for ``.npz`` files.
        resample: Resample files (or arrays) at another rate to the model's, with soxr.
        channel: The channel of multi-channel files to use (0-based); ``None`` refuses them.
    """

    __pydantic_config__ = _PYDANTIC

    path: Path
    key: str | None = None
    resample: bool = False
    channel: int | None = None

    def __post_init__(self) -> None:
        _check_channel(self.channel)
        if self.key is not None and not self.is_array:
            raise ValueError(f"key only for an .npz file, not for {self.path.name!r}")

    def __fspath__(self) -> str:
        return str(self.path)

    def __str__(self) -> str:
        return str(self.path)

    @property
    def is_array(self) -> bool:
        """Whether the path is an array file (by its suffix), not a folder of audio files."""
        return self.path.suffix.lower() in ARRAY_SUFFIXES

    @property
    def array_key(self) -> str | None:
        """The array read from the file: ``key`` (default ``calib_data``) for ``.npz``, ``None`` for ``.npy``."""
        if self.path.suffix.lower() != ".npz":
            return None
        return self.key or DEFAULT_NPZ_KEY

    def signals(self) -> list[Signal]:
        """The signals of the data: one per audio file (by name), or one per array row.

        Raises:
            AudioError: The folder or the array file is unusable.
        """
        from harness.audio._io import list_audio

        if self.is_array:
            rows, _ = load_array(self.path, self.array_key)
            return [Signal(self.path, row=i, key=self.array_key, resample=self.resample) for i in range(rows.shape[0])]
        return [Signal(f, resample=self.resample, channel=self.channel) for f in list_audio(self.path)]


@dataclass(frozen=True)
class EvaluationData:
    """Where the evaluation audio is: a folder in hefsweep's layout or a LibriMix split.

    Attributes:
        path: The folder.
        layout: ``hefsweep`` (``mixture/`` + ``s1/`` ...) or ``librimix`` (``mix_clean/`` ... + ``s1/`` ...).
        mix: The LibriMix mixture folder (``mix_clean``, ``mix_both`` or ``mix_single``); ``librimix`` only.
        resample, channel: As for :class:`CalibrationData`.
    """

    __pydantic_config__ = _PYDANTIC

    path: Path
    layout: Literal["hefsweep", "librimix"] = "hefsweep"
    mix: Literal["mix_clean", "mix_both", "mix_single"] | None = None
    resample: bool = False
    channel: int | None = None

    def __post_init__(self) -> None:
        _check_channel(self.channel)
        if self.mix is not None and self.layout != "librimix":
            raise ValueError(f"mix only with layout librimix, not with layout {self.layout!r}")

    def __fspath__(self) -> str:
        return str(self.path)

    def __str__(self) -> str:
        return str(self.path)

    @property
    def mix_folder(self) -> str:
        """The name of the folder holding the mixtures."""
        if self.layout == "librimix":
            return self.mix or "mix_clean"
        return "mixture"


@dataclass(frozen=True)
class Signal:
    """One signal of the user's data: an audio file (one channel of it), or row ``row`` of an array file.

    ``os.fspath`` gives the file holding it (what is hashed); :attr:`name` identifies the signal within its data
    (the file name; ``file.npz:key[row]`` for a row; ``#ch<k>`` appended for a chosen channel).
    """

    file: Path
    row: int | None = None
    key: str | None = None
    resample: bool = False
    channel: int | None = None

    def __fspath__(self) -> str:
        return str(self.file)

    def __str__(self) -> str:
        return self.name if self.row is not None else str(self.file)

    @property
    def name(self) -> str:
        """The signal's name: unique within its data, and equal to the file name for a whole mono file."""
        if self.row is not None:
            return f"{self.file.name}:{self.key}[{self.row}]" if self.key else f"{self.file.name}[{self.row}]"
        return self.file.name if self.channel is None else f"{self.file.name}#ch{self.channel}"


def _check_channel(channel: int | None) -> None:
    if channel is not None and (isinstance(channel, bool) or not isinstance(channel, int) or channel < 0):
        raise ValueError(f"channel null or a channel index >= 0, not {channel!r}")


_ARRAYS: dict[tuple[str, int, int, str | None], tuple[np.ndarray, int | None]] = {}
_ARRAYS_LOCK = threading.Lock()
_LAYOUTS = ("nt", "nhwc", "nchw")
_WRITTEN_BY_NUMPY = "an array file written by numpy.save/savez"


def load_array(path: str | os.PathLike[str], key: str | None) -> tuple[np.ndarray, int | None]:
    """Read the clips of an ``.npz`` (array ``key``) or ``.npy`` file as float32 ``[N, T]``, and its rate if stored.

    Read with ``allow_pickle=False``. Layouts: ``(N, T)``, NHWC ``(N, 1, T, 1)``, NCHW ``(N, 1, 1, T)``, one clip
    ``(T,)``; an ``.npz`` ``layout`` entry (``nt``, ``nhwc``, ``nchw``) is checked against the shape, and its
    ``sample_rate`` entry is returned (``None`` when absent: the data is taken at the model's rate). Memoized on
    ``(path, size, mtime_ns, key)``.

    Raises:
        AudioError: Missing or unreadable file, no such key, an object array, a non-float dtype, another shape.
    """
    p = Path(path)
    if not p.is_file():
        raise AudioError(p, "no such file" if not p.exists() else "not a file", "an .npz or .npy calibration file")
    st = p.stat()
    memo = (str(p.resolve()), st.st_size, st.st_mtime_ns, key)
    with _ARRAYS_LOCK:
        hit = _ARRAYS.get(memo)
    if hit is not None:
        return hit
    where = f"{p}:{key}" if key else str(p)
    rate: int | None = None
    layout: str | None = None
    try:
        loaded = np.load(p, allow_pickle=False)
    except ValueError as exc:
        if "Object arrays" in str(exc):  # an .npy of Python objects
            raise AudioError(
                p, "an object array (reading it would unpickle it)", "a numeric array; hefsweep never unpickles"
            ) from None
        # no npy/npz magic: numpy would unpickle the bytes
        raise AudioError(p, "not an .npy/.npz file", "an array file written by numpy.save/savez") from None
    except (OSError, EOFError, zipfile.BadZipFile) as exc:
        raise AudioError(p, f"unreadable ({type(exc).__name__}: {exc})", _WRITTEN_BY_NUMPY) from None
    try:
        if isinstance(loaded, np.lib.npyio.NpzFile):
            with loaded as z:
                if key is None:
                    raise AudioError(p, "an .npz archive", "an .npy array (name it .npz to read its calib_data)")
                if key not in z.files:
                    raise AudioError(
                        p,
                        f"no array {key!r} (arrays: {', '.join(z.files) or 'none'})",
                        f"an .npz with {key!r}",
                        hint="name another with data.calibration: {path: FILE, key: NAME}",
                    )
                raw = z[key]
                rate = _scalar(z, "sample_rate", p)
                lay = _scalar(z, "layout", p)
                layout = None if lay is None else str(lay).lower()
        elif key is not None:
            raise AudioError(p, "a single .npy array", f"an .npz archive holding {key!r}")
        else:
            raw = loaded
    except AudioError:
        raise
    except ValueError as exc:
        if "allow_pickle" in str(exc):
            raise AudioError(
                where, "an object array (reading it would unpickle it)", "a numeric array; hefsweep never unpickles"
            ) from None
        raise AudioError(where, f"unreadable ({exc})", "an array file written by numpy.save/savez") from None
    except (OSError, EOFError, zipfile.BadZipFile) as exc:
        raise AudioError(where, f"unreadable ({type(exc).__name__}: {exc})", _WRITTEN_BY_NUMPY) from None
    if not isinstance(raw, np.ndarray) or raw.dtype.kind != "f":
        dtype = getattr(raw, "dtype", type(raw).__name__)
        raise AudioError(where, f"dtype {dtype}", "float samples (float32 or float64, in [-1, 1])")
    rows = _rows(raw, layout, where)
    if rows.shape[0] == 0 or rows.shape[1] == 0:
        raise AudioError(where, f"shape {raw.shape} (no samples)", "at least one clip of at least one sample")
    rows = np.ascontiguousarray(rows, dtype=np.float32)
    rows.flags.writeable = False
    with _ARRAYS_LOCK:
        _ARRAYS[memo] = (rows, rate)
    return rows, rate


def _rows(raw: np.ndarray, layout: str | None, where: str) -> np.ndarray:
    """``raw`` as ``[N, T]`` according to its shape (and the file's ``layout`` entry, when it has one)."""
    shape = raw.shape
    expected = "(N, T), NHWC (N, 1, T, 1), NCHW (N, 1, 1, T) or (T,)"
    if layout is not None and layout not in _LAYOUTS:
        raise AudioError(where, f"layout {layout!r}", f"one of {', '.join(_LAYOUTS)}")
    if raw.ndim == 1 and layout in (None, "nt"):
        return raw[None, :]
    if raw.ndim == 2 and layout in (None, "nt"):
        return raw
    if raw.ndim == 4 and layout in (None, "nhwc") and shape[1] == 1 and shape[3] == 1:
        return raw[:, 0, :, 0]
    if raw.ndim == 4 and layout in (None, "nchw") and shape[1] == 1 and shape[2] == 1:
        return raw[:, 0, 0, :]
    seen = f"shape {shape}" + (f" with layout {layout!r}" if layout else "")
    hint = "multi-channel arrays: keep one channel" if raw.ndim in (3, 4) else None
    raise AudioError(where, seen, f"mono clips {expected}", hint=hint)


def _scalar(z: Any, name: str, path: Path) -> Any:
    """A 0-d metadata entry of an ``.npz`` (``sample_rate``, ``layout``), or ``None`` when absent or not scalar."""
    if name not in z.files:
        return None
    try:
        value = z[name]
    except ValueError:  # an object array: not read
        return None
    if value.ndim != 0:
        return None
    if name == "sample_rate":
        if value.dtype.kind not in "iu" or int(value) < 1:
            raise AudioError(path, f"sample_rate entry {value!r}", "a positive integer rate in Hz")
        return int(value)
    return value.item()
