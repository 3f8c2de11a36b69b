"""Keys and hashing: a stage invocation's content hash (:func:`stage_key` over :func:`canonical_json`), a file's
memoized sha256 (:func:`file_sha256`), and where the cache lives (:func:`default_cache_root`, ``$HEFSWEEP_CACHE_DIR``)."""

from __future__ import annotations

import hashlib
import json
import os
import threading
import time
from pathlib import Path
from typing import Any


#: Environment variable that moves the stage cache out of ``<root>/cache`` (e.g. onto a shared disk).
CACHE_DIR_ENV = "HEFSWEEP_CACHE_DIR"


def default_cache_root(root: Path) -> Path:
    """Where the stage cache lives: ``$HEFSWEEP_CACHE_DIR`` when set (``~`` expanded), else ``<root>/cache``.

    Args:
        root: The folder of the local stores (``mlruns/`` by default).
    """
    env = os.environ.get(CACHE_DIR_ENV, "").strip()
    if env:
        return Path(env).expanduser()
    return Path(root) / "cache"


def canonical_json(obj: Any) -> str:
    """Deterministic JSON (sorted keys, no whitespace, paths and other objects as strings)."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)


def stage_key(stage: str, version: int, params: dict[str, Any], upstream: tuple[str, ...] = ()) -> str:
    """The content hash of a stage invocation."""
    payload = canonical_json({"stage": stage, "version": version, "params": params, "upstream": list(upstream)})
    return hashlib.sha256(payload.encode()).hexdigest()


_HASH_LOCK = threading.Lock()
_HASH_MEMO: dict[tuple[str, int, int], str] = {}
_RACY_NS = 2_000_000_000  # files younger than this are not memoized (timestamp granularity)


def file_sha256(path: str | os.PathLike[str]) -> str:
    """SHA-256 hex digest of a file's bytes, memoized on ``(path, size, mtime_ns)``.

    The stat fingerprint costs one ``stat`` call instead of re-reading the file. Its blind spot is a
    rewrite that keeps both the size and the modification time, which can happen within the file
    system's timestamp granularity (a few ms). As in git's "racily clean" rule, a file modified less
    than :data:`_RACY_NS` ago is therefore hashed every time and only memoized once it is older.

    Args:
        path: The file to hash.

    Returns:
        The 64-character hex digest.
    """
    p = Path(path).resolve()
    st = p.stat()
    fingerprint = (str(p), st.st_size, st.st_mtime_ns)
    with _HASH_LOCK:
        cached = _HASH_MEMO.get(fingerprint)
    if cached is not None:
        return cached
    digest = hashlib.sha256()
    with p.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    hexdigest = digest.hexdigest()
    if time.time_ns() - st.st_mtime_ns > _RACY_NS:
        with _HASH_LOCK:
            _HASH_MEMO[fingerprint] = hexdigest
    return hexdigest
