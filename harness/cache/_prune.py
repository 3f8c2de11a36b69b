"""Scan and prune: what the cache holds (:class:`CacheItem`: entries, failure records, leftovers; their sizes and
last use), :meth:`StageCache.scan`, :meth:`StageCache.remove` and :meth:`StageCache.prune` (the ``_Pruning`` mixin
of :class:`~harness.cache.StageCache`) and :class:`PruneReport`."""

from __future__ import annotations

import os
import shutil
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal


#: Top-level folders of the cache root that are not stages.
RESERVED = frozenset({"tmp", "failed", "failures", "trash", "reuse", "repairs", "locks"})

#: ``tmp/`` and ``failed/`` folders untouched for this long are leftovers that ``prune`` removes.
LEFTOVER_AGE_S = 3600.0


ItemKind = Literal["entry", "failure", "tmp", "failed", "trash"]


@dataclass(frozen=True)
class CacheItem:
    """One removable thing in the cache (see :meth:`StageCache.scan`).

    Attributes:
        kind: ``entry`` (published result), ``failure`` (recorded failure), or leftovers: ``tmp`` (build in
            progress or abandoned), ``failed`` (unrecorded failed build), ``trash`` (interrupted prune).
        stage: The stage (for leftovers, parsed from the folder name; may be empty).
        key: The key (for leftovers, the folder name).
        path: The folder.
        bytes: Size of the files in it.
        used: Unix time of last use (the folder's mtime; a cache hit touches it). For ``tmp`` and ``failed``,
            the newest mtime inside.
    """

    kind: ItemKind
    stage: str
    key: str
    path: Path
    bytes: int
    used: float


@dataclass
class PruneReport:
    """What :meth:`StageCache.prune` removed (or, with ``dry_run``, would remove)."""

    removed: list[CacheItem] = field(default_factory=list)
    dry_run: bool = False

    @property
    def bytes_freed(self) -> int:
        """Total size of the removed items."""
        return sum(i.bytes for i in self.removed)

    def count(self, kind: str) -> int:
        """How many items of ``kind`` were removed."""
        return sum(i.kind == kind for i in self.removed)


def _tree(path: Path) -> tuple[int, float]:
    """(total file bytes, newest mtime) of a folder, without following symlinks."""
    size, newest = 0, 0.0
    stack = [path]
    while stack:
        d = stack.pop()
        try:
            newest = max(newest, d.stat().st_mtime)
            with os.scandir(d) as it:
                for e in it:
                    st = e.stat(follow_symlinks=False)
                    newest = max(newest, st.st_mtime)
                    if e.is_dir(follow_symlinks=False):
                        stack.append(Path(e.path))
                    else:
                        size += st.st_size
        except FileNotFoundError:
            continue  # removed concurrently
    return size, newest


def folder_bytes(path: Path) -> int:
    """Total size of the files under a folder (0 if it does not exist)."""
    return _tree(path)[0] if path.is_dir() else 0


def _subdirs(path: Path) -> list[Path]:
    try:
        return sorted(p for p in path.iterdir() if p.is_dir())
    except FileNotFoundError:
        return []


def _mtime(p: Path) -> float:
    try:
        return p.stat().st_mtime
    except FileNotFoundError:
        return 0.0


class _Pruning:
    """Inspection and pruning of the cache (``hefsweep cache {info,prune}``); mixed into
    :class:`~harness.cache.StageCache`."""

    root: Path

    def stages(self) -> list[str]:
        """Stage names that have entries or failure records."""
        names = {p.name for p in _subdirs(self.root) if p.name not in RESERVED}
        names |= {p.name for p in _subdirs(self.root / "failures")}
        return sorted(names)

    def scan(self, kinds: Iterable[ItemKind] = ("entry", "failure", "tmp", "failed", "trash")) -> list[CacheItem]:
        """Every entry, failure record and leftover folder, with its size and last use."""
        wanted = set(kinds)
        items: list[CacheItem] = []
        for stage in self.stages():
            if "entry" in wanted:
                for p in _subdirs(self.root / stage):
                    size, _ = _tree(p)
                    items.append(CacheItem("entry", stage, p.name, p, size, _mtime(p)))
            if "failure" in wanted:
                for p in _subdirs(self.root / "failures" / stage):
                    size, _ = _tree(p)
                    items.append(CacheItem("failure", stage, p.name, p, size, _mtime(p)))
        for kind in ("tmp", "failed", "trash"):
            if kind in wanted:
                for p in _subdirs(self.root / kind):
                    size, newest = _tree(p)
                    stage = p.name.rsplit("-", 2)[0] if p.name.count("-") >= 2 else ""
                    items.append(CacheItem(kind, stage, p.name, p, size, newest))  # type: ignore[arg-type]
        return items

    def remove(self, item: CacheItem) -> bool:
        """Delete one item: rename it into ``trash/`` (atomic for readers), then delete it.

        Returns:
            False when it was already gone (removed concurrently).
        """
        target = item.path
        if item.kind != "trash":
            target = self.root / "trash" / f"{item.stage or 'x'}-{item.key[:12]}-{uuid.uuid4().hex[:8]}"
            target.parent.mkdir(parents=True, exist_ok=True)
            try:
                os.rename(item.path, target)
            except FileNotFoundError:
                return False
        shutil.rmtree(target, ignore_errors=True)
        return True

    def prune(
        self,
        *,
        older_than_days: float | None = None,
        stage: str | None = None,
        failures_only: bool = False,
        keep_last: int | None = None,
        dry_run: bool = False,
        now: float | None = None,
    ) -> PruneReport:
        """Remove entries and failure records, and clean leftovers.

        Selection: entries and failure records (only failure records with ``failures_only``) of ``stage`` (all
        stages if None) not used for ``older_than_days``, except the ``keep_last`` most recently used of each
        stage. With no selector at all (no age, stage, failures-only or keep-last), nothing published is
        removed. Always: ``tmp/`` and ``failed/`` folders untouched for :data:`LEFTOVER_AGE_S` (of ``stage``,
        if given) and interrupted-prune folders in ``trash/``.

        Args:
            older_than_days: Minimum age (days since last use).
            stage: Restrict to one stage.
            failures_only: Remove failure records only (keep results).
            keep_last: Keep this many most recently used items per stage.
            dry_run: Report what would be removed; remove nothing.
            now: Current Unix time (for tests).

        Returns:
            The :class:`PruneReport`.
        """
        now = time.time() if now is None else now
        report = PruneReport(dry_run=dry_run)
        selecting = older_than_days is not None or stage is not None or failures_only or keep_last is not None
        kinds: tuple[ItemKind, ...] = ("failure",) if failures_only else ("entry", "failure")
        chosen: list[CacheItem] = []
        if selecting:
            published = [i for i in self.scan(kinds) if stage is None or i.stage == stage]
            protected: set[Path] = set()
            if keep_last:
                by_stage: dict[str, list[CacheItem]] = {}
                for i in published:
                    by_stage.setdefault(i.stage, []).append(i)
                for group in by_stage.values():
                    protected |= {i.path for i in sorted(group, key=lambda i: -i.used)[:keep_last]}
            min_age = (older_than_days or 0.0) * 86400.0
            chosen += [i for i in published if i.path not in protected and now - i.used >= min_age]
        for i in self.scan(("tmp", "failed", "trash")):
            if i.kind == "trash" or (now - i.used >= LEFTOVER_AGE_S and (stage is None or i.stage == stage)):
                chosen.append(i)
        for item in chosen:
            if dry_run or self.remove(item):
                report.removed.append(item)
        return report
