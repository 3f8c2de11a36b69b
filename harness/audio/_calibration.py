"""Calibration sets for static quantization: fixed-width clips cut from a folder of audio files or the rows of an
array file (:class:`~harness.audio.CalibrationData`)."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf

from harness.audio._fill import FillPolicyError, check_policy, fill_applied, fit_length
from harness.audio._io import file_sha256, list_audio, read_audio
from harness.audio._sources import CalibrationData, Signal, load_array
from harness.errors import AudioError

__all__ = ["MANIFEST_FORMAT", "CalibrationSet", "build_calibration_set", "effective_policy"]

#: Written into every manifest so that a change of layout (or of how clips are selected) changes every key.
#: 2: clips are taken round-robin over the files; ``policy`` is null when no clip was filled.
MANIFEST_FORMAT = "hefsweep.calibration/2"

_LOG = logging.getLogger("harness.audio")


def canonical_json(obj: Any) -> str:
    """JSON with sorted keys and no whitespace: the text that content keys are hashed from."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True)


@dataclass(frozen=True, eq=False)
class CalibrationSet:
    """A calibration set: the clips, where they came from, and a content key.

    Attributes:
        data: float32 array ``[n, W]``, read-only.
        manifest: JSON-serialisable description (format, sample_rate, width, clip_length, policy -- null
            when no clip was filled, so that policies that change nothing give one set -- and one entry per
            clip, in selection order: ``file`` relative to the folder, ``sha256`` of the source file,
            ``source_samples``, ``offset``, ``clip_samples`` before the fill, ``fill`` applied; for an array file
            also ``key`` (``.npz``) and ``row``, for a chosen channel ``channel``, for a resampled signal its
            ``source_rate`` (offsets and lengths count samples at the model's rate); ``resample: true`` at the top
            when the data may be resampled).
            Treat it as read-only: ``key`` is derived from it.
        key: SHA-256 hex digest of the manifest's canonical JSON. It identifies the set by content
            (file bytes, cut and fill), not by the folder's absolute path.
    """

    data: np.ndarray
    manifest: dict[str, Any]
    key: str

    def __len__(self) -> int:
        return int(self.data.shape[0])

    def write_manifest(self, path: str | os.PathLike[str]) -> Path:
        """Write the manifest as indented JSON (atomically: temp file, fsync, rename).

        The key is not stored in the file: it is the SHA-256 of the manifest's canonical JSON and can
        be recomputed from what is written.

        Args:
            path: Destination file; parent folders are created.

        Returns:
            The written path.
        """
        dest = Path(path)
        dest.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", dir=dest.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                json.dump(self.manifest, fh, indent=2, sort_keys=True)
                fh.write("\n")
                fh.flush()
                # Without fsync a crash can leave the renamed file empty on some file systems.
                os.fsync(fh.fileno())
            os.replace(tmp, dest)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return dest


def build_calibration_set(
    folder: str | os.PathLike[str] | CalibrationData,
    *,
    sample_rate: int,
    width: int,
    clip_length: int | None,
    policy: str,
    size: int,
    min_clips: int = 1,
) -> CalibrationSet:
    """Cut calibration clips from a folder of mono audio files (or the rows of an array file) and fit them to the
    model width.

    Each file is cut into consecutive, non-overlapping clips of ``clip_length`` samples starting at offset 0;
    the tail shorter than ``clip_length`` is dropped, except that a file shorter than ``clip_length`` gives
    one clip of its own length (so short recordings still count; the fill policy then lengthens it). With
    ``clip_length=None`` each whole file is one clip.

    Clips are taken round-robin over the files in name order (see :func:`~harness.audio.list_audio`): the
    first clip of every file, then the second clip of every file that has one, and so on, until ``size``
    clips are collected. So a set of ``size`` clips comes from ``min(size, files)`` files whatever the clip
    length, and clip length and source diversity vary separately. Files not needed (``size`` below the
    number of files) are neither read nor hashed. Each clip is then passed through
    :func:`~harness.audio.fit_length` with ``policy``.

    When clips are not ``W`` samples long one warning is logged on ``harness.audio`` naming both
    lengths and the fill.

    Args:
        folder: Folder of ``.wav``/``.flac`` files, or a :class:`~harness.audio.CalibrationData` (a folder or an
            ``.npz``/``.npy`` file whose rows are the "files" below, with the space's ``resample`` and ``channel``).
        sample_rate: The model's sample rate in Hz; every file must have it.
        width: The model input width ``W`` in samples.
        clip_length: Samples per clip before the fill, or ``None`` for whole files.
        policy: Fill policy for clips shorter than ``W`` (``"pad"``, ``"repeat"``, ``"crop"``). When no
            selected clip is shorter than ``W`` it changes nothing and the manifest records ``null``.
        size: Number of clips wanted.
        min_clips: Fewest clips accepted; between ``min_clips`` and ``size`` clips the set is
            returned with a warning.

    Returns:
        The calibration set.

    Raises:
        ValueError: Unknown policy or non-positive sizes.
        AudioError: The folder or a file is unusable, or fewer than ``min_clips`` clips are available.
        FillPolicyError: Policy ``"crop"`` meets a clip shorter than ``W`` (a trial outcome, not bad input).
    """
    check_policy(policy)
    for name, value in (("sample_rate", sample_rate), ("width", width), ("size", size), ("min_clips", min_clips)):
        if value < 1:
            raise ValueError(f"{name}={value}: expected >= 1")
    if clip_length is not None and clip_length < 1:
        raise ValueError(f"clip_length={clip_length}: expected >= 1 or None")
    if min_clips > size:
        raise ValueError(f"min_clips={min_clips}: expected <= size={size}")

    root = Path(folder)
    files = list_audio(folder)
    read: dict[int, tuple[np.ndarray, str]] = {}

    def length_of(i: int) -> int:
        audio = read_audio(files[i], sample_rate)
        read[i] = (audio, file_sha256(files[i]))
        return int(audio.shape[0])

    clips: list[np.ndarray] = []
    entries: list[dict[str, Any]] = []
    for i, offset, length in _select(len(files), length_of, clip_length, size):
        path = files[i]
        audio, digest = read[i]
        clip = audio[offset : offset + length]
        try:
            fitted = fit_length(clip, width, policy)
        except FillPolicyError as exc:
            # A trial-level outcome (this clip length x policy x W combination), not bad input.
            raise FillPolicyError(
                f"{path}: clip of {length} samples at offset {offset} is shorter than W={width}; "
                f"expected clips of at least {width} samples for policy 'crop' "
                "(use policy 'repeat' or 'pad', or a longer clip_length)"
            ) from exc
        clips.append(np.asarray(fitted, dtype=np.float32))
        entries.append(
            {
                **_where(path, root, sample_rate),
                "sha256": digest,
                "source_samples": int(audio.shape[0]),
                "offset": offset,
                "clip_samples": length,
                "fill": fill_applied(length, width, policy),
            }
        )

    if len(clips) < min_clips:
        what = "whole files" if clip_length is None else f"clips of {clip_length} samples"
        raise AudioError(
            root,
            f"{len(clips)} {what} from {len(files)} files",
            f"at least {min_clips} clips",
            hint="add audio or lower clip_length/min_clips",
        )
    if len(clips) < size:
        _LOG.warning("calibration folder %s gave %d of %d requested clips", root, len(clips), size)
    _warn_width_mismatch([e["clip_samples"] for e in entries], clip_length, width, sample_rate, policy)

    data = np.stack(clips)
    data.flags.writeable = False
    manifest: dict[str, Any] = {
        "format": MANIFEST_FORMAT,
        "sample_rate": sample_rate,
        "width": width,
        "clip_length": clip_length,
        # a policy that filled nothing is no part of the set: pad, repeat and crop then give one key
        "policy": policy if any(e["clip_samples"] < width for e in entries) else None,
        "clips": entries,
    }
    if isinstance(folder, CalibrationData) and folder.resample:
        manifest["resample"] = True
    key = hashlib.sha256(canonical_json(manifest).encode("ascii")).hexdigest()
    return CalibrationSet(data=data, manifest=manifest, key=key)


def effective_policy(
    folder: str | os.PathLike[str] | CalibrationData,
    *,
    sample_rate: int,
    width: int,
    clip_length: int | None,
    policy: str,
    size: int,
) -> str | None:
    """The fill policy as far as it matters: ``None`` when no clip :func:`build_calibration_set` would select is
    shorter than ``W`` (then ``pad``, ``repeat`` and ``crop`` give the same set), else ``policy``.

    Reads only the files' headers (frame counts). When a file cannot be inspected or has another rate,
    ``policy`` is returned unchanged, so that building the set reports the file.

    Args:
        folder, sample_rate, width, clip_length, policy, size: As for :func:`build_calibration_set`.
    """
    try:
        files = list_audio(folder)

        def length_of(i: int) -> int:
            f = files[i]
            if isinstance(f, Signal) and f.row is not None:
                rows, rate = load_array(f.file, f.key)
                if rate not in (None, sample_rate):
                    raise ValueError(f"{f}: not usable as is")
                return int(rows.shape[1])
            info = sf.info(os.fspath(f))
            if info.samplerate != sample_rate or info.frames < 1:
                raise ValueError(f"{f}: not usable as is")
            return int(info.frames)

        cuts = _select(len(files), length_of, clip_length, size)
    except (AudioError, OSError, ValueError, RuntimeError, sf.SoundFileError):
        return policy
    return policy if any(length < width for _, _, length in cuts) else None


def _where(item: Path | Signal, root: Path, sample_rate: int) -> dict[str, Any]:
    """Where a clip's signal is, for its manifest entry: ``file`` relative to the folder (an array file: its name,
    ``key`` and ``row``; a chosen channel: ``channel``; a resampled signal: its ``source_rate``, the offsets and
    lengths being samples at the model's rate)."""
    if isinstance(item, Signal) and item.row is not None:
        out: dict[str, Any] = {"file": item.file.name, "row": item.row}
        if item.key is not None:
            out["key"] = item.key
        rate = load_array(item.file, item.key)[1]
    else:
        file = item.file if isinstance(item, Signal) else item
        out = {"file": file.relative_to(root).as_posix()}
        if isinstance(item, Signal) and item.channel is not None:
            out["channel"] = item.channel
        rate = sf.info(str(file)).samplerate if isinstance(item, Signal) and item.resample else None
    if rate is not None and rate != sample_rate:
        out["source_rate"] = int(rate)
    return out


def _cuts(n: int, clip_length: int | None) -> list[tuple[int, int]]:
    """(offset, length) of the clips of an ``n``-sample file (see :func:`build_calibration_set`)."""
    if clip_length is None or n <= clip_length:
        return [(0, n)]
    return [(off, clip_length) for off in range(0, n - clip_length + 1, clip_length)]


def _select(
    n_files: int, length_of: Callable[[int], int], clip_length: int | None, size: int
) -> list[tuple[int, int, int]]:
    """The clips of a set, round-robin over the files: (file index, offset, length), in selection order.

    ``length_of(i)`` is called once per file needed, in file order, and not for files that are not needed.
    """
    cuts: list[list[tuple[int, int]]] = []
    for i in range(min(n_files, size)):
        cuts.append(_cuts(length_of(i), clip_length))
    picked: list[tuple[int, int, int]] = []
    depth = max((len(c) for c in cuts), default=0)
    for r in range(depth):
        for i, file_cuts in enumerate(cuts):
            if len(picked) == size:
                return picked
            if r < len(file_cuts):
                picked.append((i, *file_cuts[r]))
    return picked


def _warn_width_mismatch(
    lengths: list[int], clip_length: int | None, width: int, sample_rate: int, policy: str
) -> None:
    """Log one warning when clips are not W samples long (calibrating on other lengths shifts ranges)."""
    if all(n == width for n in lengths):
        return

    def ms(n: int) -> str:
        return f"{1000.0 * n / sample_rate:.1f} ms"

    if clip_length is not None and all(n == clip_length for n in lengths):
        what = f"{clip_length} samples ({ms(clip_length)})"
    else:
        lo, hi = min(lengths), max(lengths)
        what = f"{lo}-{hi} samples ({ms(lo)}-{ms(hi)})"
    actions = []
    if any(n < width for n in lengths):
        actions.append(f"policy {policy!r} fills the shorter ones")
        if policy == "pad":
            actions.append("zero-padding shifts global-norm statistics, 'repeat' is safer")
    if any(n > width for n in lengths):
        actions.append("longer ones are centre-cropped")
    _LOG.warning(
        "calibration clips are %s but the model input is W=%d (%s); %s",
        what,
        width,
        ms(width),
        "; ".join(actions),
    )
