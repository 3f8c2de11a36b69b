"""Content hashes of the data a space points at (part of a study's fingerprint: a study is not resumed over other
audio). A plain folder hashes as it did before data descriptions existed, so older studies stay resumable."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any

from harness.audio._io import AUDIO_SUFFIXES
from harness.audio._sources import CalibrationData, EvaluationData
from harness.cache import file_sha256

__all__ = ["content_sha256", "folder_sha256"]


def content_sha256(data: CalibrationData | EvaluationData) -> str:
    """SHA-256 of what is read from ``data`` (missing files and folders hash as absent: validation reports them).

    - a calibration folder: :func:`folder_sha256` of its audio files;
    - an array file: its bytes and the array key;
    - an evaluation folder: :func:`folder_sha256` over its subfolders (``mixture/``, ``s1/`` ...); of a LibriMix
      split only the ``mix`` folder and ``s1/`` ... (not ``noise/`` or the other mixtures);
    - read options other than the defaults (``resample``, ``channel``, ``layout``, ``mix``) are hashed with them.
    """
    if isinstance(data, EvaluationData):
        return _evaluation_sha256(data)
    if data.is_array:
        doc: dict[str, Any] = {"file": file_sha256(data.path) if data.path.is_file() else None, "key": data.array_key}
    else:
        base = folder_sha256(data.path, subfolders=False)
        if data.channel is None and not data.resample:
            return base  # a plain folder: the hash studies were made with
        doc = {"audio": base}
    doc.update({k: v for k, v in (("resample", data.resample), ("channel", data.channel)) if v not in (False, None)})
    return _sha256(doc)


def _evaluation_sha256(data: EvaluationData) -> str:
    if data.layout == "hefsweep" and data.channel is None and not data.resample:
        return folder_sha256(data.path, subfolders=True)
    only = None
    if data.layout == "librimix":
        only = {data.mix_folder} | {p.name for p in _subfolders(data.path) if re.fullmatch(r"s\d+", p.name)}
    doc = {
        "audio": folder_sha256(data.path, subfolders=True, only=only),
        "layout": data.layout,
        "mix": data.mix_folder,
        "resample": data.resample,
        "channel": data.channel,
    }
    return _sha256(doc)


def folder_sha256(folder: Path, *, subfolders: bool, only: set[str] | None = None) -> str:
    """sha256 over the sorted (relative name, sha256) of a folder's audio files and (``subfolders``) its
    subfolders' (one level; ``only`` those named, and then not the folder's own files)."""

    def audio(d: Path) -> list[Path]:
        try:
            entries = list(d.iterdir())
        except (FileNotFoundError, NotADirectoryError):
            return []
        return [e for e in entries if not e.name.startswith(".") and e.suffix.lower() in AUDIO_SUFFIXES and e.is_file()]

    files = audio(folder) if only is None else []
    if subfolders:
        dirs = [d for d in _subfolders(folder) if only is None or d.name in only]
        files += [f for d in dirs for f in audio(d)]
    rows = sorted([f.relative_to(folder).as_posix(), file_sha256(f)] for f in files)
    return hashlib.sha256(json.dumps(rows, separators=(",", ":")).encode()).hexdigest()


def _subfolders(folder: Path) -> list[Path]:
    try:
        return [d for d in folder.iterdir() if d.is_dir() and not d.name.startswith(".")]
    except (FileNotFoundError, NotADirectoryError):
        return []


def _sha256(doc: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()
