"""Calibration sets for static quantization: fixed-width clips cut from a folder of audio files."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from harness.audio._fill import FillPolicyError, check_policy, fill_applied, fit_length
from harness.audio._io import file_sha256, list_audio, read_audio
from harness.errors import AudioError

__all__ = ["MANIFEST_FORMAT", "CalibrationSet", "build_calibration_set"]

#: Written into every manifest so that a change of layout changes every key.
MANIFEST_FORMAT = "hefsweep.calibration/1"

_LOG = logging.getLogger("harness.audio")


def canonical_json(obj: Any) -> str:
    """JSON with sorted keys and no whitespace: the text that content keys are hashed from."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True)


@dataclass(frozen=True, eq=False)
class CalibrationSet:
    """A calibration set: the clips, where they came from, and a content key.

    Attributes:
        data: float32 array ``[n, W]``, read-only.
        manifest: JSON-serialisable description (format, sample_rate, width, clip_length, policy and
            one entry per clip: ``file`` relative to the folder, ``sha256`` of the source file,
            ``source_samples``, ``offset``, ``clip_samples`` before the fill, ``fill`` applied).
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
    folder: str | os.PathLike[str],
    *,
    sample_rate: int,
    width: int,
    clip_length: int | None,
    policy: str,
    size: int,
    min_clips: int = 1,
) -> CalibrationSet:
    """Cut calibration clips from a folder of mono audio files and fit them to the model width.

    Files are taken in name order (see :func:`~harness.audio.list_audio`). Each file gives
    consecutive, non-overlapping clips of ``clip_length`` samples starting at offset 0; the tail
    shorter than ``clip_length`` is dropped, except that a file shorter than ``clip_length`` gives
    one clip of its own length (so short recordings still count; the fill policy then lengthens it).
    With ``clip_length=None`` each whole file is one clip. Reading stops once ``size`` clips are
    collected, so later files are neither read nor hashed. Each clip is then passed through
    :func:`~harness.audio.fit_length` with ``policy``.

    When clips are not ``W`` samples long one warning is logged on ``harness.audio`` naming both
    lengths and the fill.

    Args:
        folder: Folder of ``.wav``/``.flac`` files.
        sample_rate: The model's sample rate in Hz; every file must have it.
        width: The model input width ``W`` in samples.
        clip_length: Samples per clip before the fill, or ``None`` for whole files.
        policy: Fill policy for clips shorter than ``W`` (``"pad"``, ``"repeat"``, ``"crop"``).
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
    files = list_audio(root)
    clips: list[np.ndarray] = []
    entries: list[dict[str, Any]] = []
    for path in files:
        if len(clips) >= size:
            break
        audio = read_audio(path, sample_rate)
        n = audio.shape[0]
        if clip_length is None or n <= clip_length:
            cuts = [(0, n)]
        else:
            cuts = [(off, clip_length) for off in range(0, n - clip_length + 1, clip_length)]
        digest = file_sha256(path)
        for offset, length in cuts[: size - len(clips)]:
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
                    "file": path.relative_to(root).as_posix(),
                    "sha256": digest,
                    "source_samples": n,
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
        "policy": policy,
        "clips": entries,
    }
    key = hashlib.sha256(canonical_json(manifest).encode("ascii")).hexdigest()
    return CalibrationSet(data=data, manifest=manifest, key=key)


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
