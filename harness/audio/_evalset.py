"""Evaluation sets: ``mixture/`` plus optional ``s1/``, ``s2/`` ... references, or a LibriMix split's own names
(``mix_clean/`` | ``mix_both/`` | ``mix_single/``, ``s1/``, ``s2/``, ``noise/``;
:class:`~harness.audio.EvaluationData`)."""

from __future__ import annotations

import hashlib
import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from harness.audio._calibration import canonical_json
from harness.audio._fill import fit_length
from harness.audio._io import demo_hint, file_sha256, list_audio, read_audio
from harness.audio._sources import LIBRIMIX_MIXES, EvaluationData
from harness.errors import AudioError

__all__ = ["EvalSet", "load_eval_set"]

_SOURCE_DIR = re.compile(r"s(\d+)")
_LOG = logging.getLogger("harness.audio")


@dataclass(frozen=True, eq=False)
class EvalSet:
    """Mixtures (and optionally their reference sources) fitted to the model width.

    Attributes:
        names: File names of the mixtures, sorted; row ``i`` of every array belongs to ``names[i]``.
        mixtures: float32 ``[n, W]``, read-only.
        sources: float32 ``[n, n_src, W]`` (read-only), or ``None`` when the folder has no ``s*``
            folders (then only float-vs-quantized comparisons are possible).
        lengths: Real (non-padding) samples in each row: ``min(file length, W)`` (a shorter file is
            zero-padded at the end, a longer one centre-cropped). The sweep scores only these first
            samples of each row (:mod:`harness.metrics._objective`), so padding does not count.
        key: SHA-256 hex digest over the width, the file names and the files' SHA-256 digests.
    """

    names: tuple[str, ...]
    mixtures: np.ndarray
    sources: np.ndarray | None
    lengths: tuple[int, ...]
    key: str

    def __len__(self) -> int:
        return len(self.names)


def load_eval_set(
    folder: str | os.PathLike[str] | EvaluationData,
    *,
    sample_rate: int,
    width: int,
    n_src: int,
    limit: int | None = None,
) -> EvalSet:
    """Load an evaluation folder.

    Layout: ``folder/mixture/<name>.wav`` and, optionally, ``folder/s1/<name>.wav`` ...
    ``folder/s<n_src>/<name>.wav`` with the same file names (``.flac`` works too). An
    :class:`~harness.audio.EvaluationData` with ``layout="librimix"`` reads the mixtures from its ``mix`` folder
    (``mix_clean``, ``mix_both``, ``mix_single``) instead; ``noise/`` is not used, and ``mix_single`` (one speaker)
    has the reference ``s1/`` for one-source models only. Its ``resample`` and ``channel`` apply to every file.
    Each signal is
    fitted to ``W`` with :func:`~harness.audio.fit_length` and policy ``"pad"`` (centre crop when
    longer, zeros appended when shorter); a mixture and its sources have the same length, so they
    get the same transform and stay aligned.

    Args:
        folder: The evaluation folder, or an :class:`~harness.audio.EvaluationData`.
        sample_rate: The model's sample rate in Hz; every file must have it.
        width: The model input width ``W`` in samples.
        n_src: Number of sources the model separates; the number of ``s*`` folders, if any.
        limit: Use only the first ``limit`` mixtures (by name).

    Returns:
        The evaluation set.

    Raises:
        ValueError: Non-positive ``width``, ``n_src`` or ``limit``.
        AudioError: The folder or ``mixture/`` is missing or empty, the ``s*`` folders are not
            ``s1``..``s<n_src>``, a source file is missing or its length differs from its mixture,
            or any file is unusable (see :func:`~harness.audio.read_audio`).
    """
    for name, value in (("sample_rate", sample_rate), ("width", width), ("n_src", n_src)):
        if value < 1:
            raise ValueError(f"{name}={value}: expected >= 1")
    if limit is not None and limit < 1:
        raise ValueError(f"limit={limit}: expected >= 1 or None")
    data = folder if isinstance(folder, EvaluationData) else EvaluationData(Path(folder))
    root = data.path
    if not root.is_dir():
        seen = "not a folder" if root.exists() else "no such folder"
        raise AudioError(
            root,
            seen,
            f"an evaluation folder with {data.mix_folder}/ (and optional s1/..sN/)",
            hint=None if root.exists() else demo_hint(root),
        )
    mix_dir = root / data.mix_folder
    if not mix_dir.is_dir():
        raise _no_mix_folder(data, mix_dir)
    if data.mix != "mix_single":
        source_dirs = _source_dirs(root, n_src)
    else:  # one speaker (s1) plus noise
        source_dirs = [root / "s1"] if n_src == 1 and (root / "s1").is_dir() else []
        if n_src != 1:
            _LOG.warning("%s: mix_single holds one speaker; no SI-SNRi against s1/ for a %d-source model", root, n_src)
    opts = {"resample": data.resample, "channel": data.channel}

    mix_files = list_audio(mix_dir)
    if limit is not None:
        mix_files = mix_files[:limit]

    names: list[str] = []
    mixtures: list[np.ndarray] = []
    sources: list[np.ndarray] = []
    lengths: list[int] = []
    identity: list[list[object]] = []
    for mix_path in mix_files:
        mix = read_audio(mix_path, sample_rate, **opts)
        hashes = [file_sha256(mix_path)]
        refs = []
        for src_dir in source_dirs:
            src_path = src_dir / mix_path.name
            if not src_path.is_file():
                raise AudioError(
                    src_path,
                    f"missing ({data.mix_folder}/{mix_path.name} has no {src_dir.name}/ file)",
                    f"one file per mixture in each of {', '.join(d.name + '/' for d in source_dirs)}",
                )
            ref = read_audio(src_path, sample_rate, **opts)
            if ref.shape[0] != mix.shape[0]:
                raise AudioError(
                    src_path,
                    f"{ref.shape[0]} samples",
                    f"{mix.shape[0]} samples like {data.mix_folder}/{mix_path.name}",
                )
            refs.append(fit_length(ref, width, "pad"))
            hashes.append(file_sha256(src_path))
        names.append(mix_path.name)
        mixtures.append(fit_length(mix, width, "pad"))
        lengths.append(min(mix.shape[0], width))
        if refs:
            sources.append(np.stack(refs))
        identity.append([mix_path.name, hashes])

    mix_arr = np.stack(mixtures).astype(np.float32, copy=False)
    mix_arr.flags.writeable = False
    src_arr: np.ndarray | None = None
    if source_dirs:
        src_arr = np.stack(sources).astype(np.float32, copy=False)
        src_arr.flags.writeable = False
    key_doc: dict[str, object] = {"sample_rate": sample_rate, "width": width, "n_src": n_src, "files": identity}
    if data.layout != "hefsweep":  # only what differs from a plain folder: its keys stay as they were
        key_doc["mix"] = data.mix_folder
    if data.channel is not None:
        key_doc["channel"] = data.channel
    key = hashlib.sha256(canonical_json(key_doc).encode("ascii")).hexdigest()
    return EvalSet(names=tuple(names), mixtures=mix_arr, sources=src_arr, lengths=tuple(lengths), key=key)


def _no_mix_folder(data: EvaluationData, mix_dir: Path) -> AudioError:
    """The error for a missing mixture folder, with a hint when the folder holds another layout's."""
    try:
        present = sorted(p.name for p in data.path.iterdir() if p.is_dir() and not p.name.startswith("."))
    except OSError:
        present = []
    found = f" (folders: {', '.join(present)})" if present else ""
    librimix = [m for m in LIBRIMIX_MIXES if m in present]
    hint = None
    if data.layout == "hefsweep" and librimix:
        hint = (
            "a LibriMix split: say data.evaluation: "
            f"{{path: {data.path}, layout: librimix, mix: {librimix[0]}}} in the space"
        )
    elif data.layout == "hefsweep":
        hint = "a LibriMix split's mix_clean/ etc. are read with data.evaluation: {path: DIR, layout: librimix}"
    else:
        hint = f"data.evaluation.mix is one of {', '.join(LIBRIMIX_MIXES)}" + (
            f"; this split has {', '.join(librimix)}" if librimix else ""
        )
    what = "the mixtures of the LibriMix split" if data.layout == "librimix" else "the mixtures (hefsweep's layout)"
    return AudioError(mix_dir, f"no such folder{found}", f"{data.mix_folder}/ holding {what}", hint=hint)


def _source_dirs(root: Path, n_src: int) -> list[Path]:
    """Return ``[s1, .., s<n_src>]`` under ``root``, or ``[]`` when there is no ``s<digits>`` folder."""
    found = sorted(
        (int(m.group(1)), p)
        for p in root.iterdir()
        if p.is_dir() and (m := _SOURCE_DIR.fullmatch(p.name)) is not None
    )
    if not found:
        return []
    seen = [p.name for _, p in found]
    expected = [f"s{k}" for k in range(1, n_src + 1)]
    if seen != expected:
        raise AudioError(
            root,
            f"{len(seen)} source folders ({', '.join(seen)})",
            f"{n_src} ({', '.join(expected)}) for n_src={n_src}, or none",
        )
    return [root / name for name in expected]
