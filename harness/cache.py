"""Content-hash stage cache.

A stage's key is the sha256 of canonical JSON over (stage name, stage version, its parameters, the keys of
the stages it consumes). A result is a directory built in a private temp folder and published with one
``rename`` -- so a reader never sees a half-written entry, concurrent workers building the same key do not
corrupt each other (the loser's copy is discarded), and an entry is never overwritten.

Layout under the root (default ``mlruns/cache``)::

    <stage>/<key>/...          published results (``stage.json`` holds the stage's metadata)
    failed/<stage>-<key12>-<n>/ what a failing build left behind (logs), kept for the trial's artifacts
    tmp/                       builds in progress
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["CachedBuildError", "StageCache", "StageEntry", "canonical_json", "file_sha256", "stage_key"]


def canonical_json(obj: Any) -> str:
    """Deterministic JSON (sorted keys, no whitespace, paths and other objects as strings)."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)


def stage_key(stage: str, version: int, params: dict[str, Any], upstream: tuple[str, ...] = ()) -> str:
    """The content hash of a stage invocation."""
    payload = canonical_json({"stage": stage, "version": version, "params": params, "upstream": list(upstream)})
    return hashlib.sha256(payload.encode()).hexdigest()


_DIGESTS: dict[tuple[str, int, int], str] = {}


def file_sha256(path: Path) -> str:
    """sha256 of a file, memoized on (path, size, mtime)."""
    st = path.stat()
    fp = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    if fp not in _DIGESTS:
        h = hashlib.sha256()
        with path.open("rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
        _DIGESTS[fp] = h.hexdigest()
    return _DIGESTS[fp]


@dataclass(frozen=True)
class StageEntry:
    """A published stage result."""

    stage: str
    key: str
    path: Path
    meta: dict[str, Any]
    hit: bool
    seconds: float


class CachedBuildError(Exception):
    """A stage build failed; ``failed_dir`` keeps what it wrote (logs) and ``cause`` is the original error."""

    def __init__(self, stage: str, cause: BaseException, failed_dir: Path) -> None:
        self.stage = stage
        self.cause = cause
        self.failed_dir = failed_dir
        super().__init__(f"{stage}: {cause}")


class StageCache:
    """Directory-per-key store of stage results. Safe for concurrent processes on one file system."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def path(self, stage: str, key: str) -> Path:
        """Where the entry for ``key`` lives (whether or not it exists)."""
        return self.root / stage / key

    def lookup(self, stage: str, key: str) -> StageEntry | None:
        """The published entry, or None."""
        final = self.path(stage, key)
        meta_file = final / "stage.json"
        if not meta_file.is_file():
            return None
        return StageEntry(stage, key, final, json.loads(meta_file.read_text()), True, 0.0)

    def build(
        self,
        stage: str,
        key: str,
        fn: Callable[[Path], dict[str, Any]],
        clock: Callable[[], float] | None = None,
    ) -> StageEntry:
        """Return the entry for ``key``, building it with ``fn(tmpdir) -> meta`` if it is not published yet.

        Raises:
            CachedBuildError: ``fn`` raised; its partial output is kept under ``failed/``.
        """
        found = self.lookup(stage, key)
        if found is not None:
            return found
        import time

        now = clock or time.monotonic
        tmp = self.root / "tmp" / f"{stage}-{key[:12]}-{uuid.uuid4().hex[:8]}"
        tmp.mkdir(parents=True)
        start = now()
        try:
            meta = fn(tmp)
        except BaseException as exc:
            failed = self.root / "failed" / tmp.name
            failed.parent.mkdir(parents=True, exist_ok=True)
            os.replace(tmp, failed)
            raise CachedBuildError(stage, exc, failed) from exc
        seconds = now() - start
        meta = {**meta, "seconds": seconds}
        (tmp / "stage.json").write_text(json.dumps(meta, indent=2, default=str))
        final = self.path(stage, key)
        final.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.rename(tmp, final)
        except OSError:
            # Another worker published the same key first: keep theirs, drop ours.
            shutil.rmtree(tmp, ignore_errors=True)
            existing = self.lookup(stage, key)
            if existing is None:
                raise
            return existing
        return StageEntry(stage, key, final, meta, False, seconds)
