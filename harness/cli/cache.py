"""``hefsweep cache {info,prune}``: inspect and clean the content-hash stage cache."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from harness.cli._command import Command
from harness.cache import LEFTOVER_AGE_S, CacheItem, StageCache, default_cache_root, folder_bytes
from harness.errors import HarnessError

__all__ = ["Cache", "human_bytes"]


def human_bytes(n: float) -> str:
    """``1.2 MB`` style sizes (powers of 1024)."""
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if abs(n) < 1024 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError("unreachable")


def _when(t: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(t)) if t else "-"


def _age(seconds: float) -> str:
    if seconds < 3600:
        return f"{seconds / 60:.0f} min"
    if seconds < 86400:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"


def _location(p: argparse.ArgumentParser) -> None:
    p.add_argument("--root", type=Path, default=Path("mlruns"), help="folder of the local stores (default mlruns/)")
    p.add_argument(
        "--cache-dir",
        type=Path,
        help="the stage cache (default: $HEFSWEEP_CACHE_DIR if set, else <root>/cache)",
    )


class Cache(Command):
    """Inspect (info) or clean (prune) the content-hash stage cache shared by sweeps."""

    name = "cache"

    def add_arguments(self, p: argparse.ArgumentParser) -> None:
        sub = p.add_subparsers(dest="cache_action", required=True, metavar="{info,prune}")
        info = sub.add_parser(
            "info",
            help="per stage: entries, recorded failures, size on disk, oldest/newest use; totals",
            description="Per stage: published entries, recorded failures, size on disk, least and most recent "
            "use; totals and leftovers (tmp/, failed/, trash/) and the pipeline's reuse/ and repairs/ folders.",
        )
        _location(info)
        prune = sub.add_parser(
            "prune",
            help="remove entries / failure records, and leftovers",
            description="Remove published entries and failure records selected by age, stage and kind, keeping "
            "the N most recently used per stage; always cleans tmp/ and failed/ leftovers untouched for an hour. "
            "Entries are renamed into trash/ before deletion, so a concurrent sweep sees a whole entry or none. "
            "With no selector, only leftovers are removed.",
        )
        _location(prune)
        prune.add_argument("--older-than", type=float, metavar="DAYS", help="only items not used for DAYS days")
        prune.add_argument("--stage", metavar="NAME", help="only this stage (export, calibrate, ... emulate)")
        prune.add_argument("--failures-only", action="store_true", help="only recorded failures (keep results)")
        prune.add_argument("--keep-last", type=int, metavar="N", help="keep the N most recently used items per stage")
        prune.add_argument("--dry-run", action="store_true", help="print what would be removed; remove nothing")

    def run(self, args: argparse.Namespace) -> int:
        cache = _open(args)
        if args.cache_action == "info":
            return _info(cache)
        return _prune(cache, args)


def _open(args: argparse.Namespace) -> StageCache:
    root = args.cache_dir if args.cache_dir is not None else default_cache_root(args.root)
    if not root.is_dir():
        raise HarnessError(
            f"stage cache {root}",
            "does not exist" if not root.exists() else "is not a folder",
            "a cache written by `hefsweep sweep`",
            "set --root, --cache-dir or HEFSWEEP_CACHE_DIR",
        )
    return StageCache(root)


def _info(cache: StageCache) -> int:
    from harness.pipeline import STAGES

    items = cache.scan()
    stages = [s for s in STAGES if s in cache.stages()] + [s for s in cache.stages() if s not in STAGES]
    print(f"stage cache {cache.root.resolve()}")
    head = f"  {'stage':<10} {'entries':>7} {'failures':>8} {'size':>10}  {'oldest use':<16}  {'newest use':<16}"
    print(head)
    total_n = total_f = total_b = 0
    for stage in stages:
        mine = [i for i in items if i.stage == stage and i.kind in ("entry", "failure")]
        n = sum(i.kind == "entry" for i in mine)
        f = sum(i.kind == "failure" for i in mine)
        b = sum(i.bytes for i in mine)
        used = [i.used for i in mine]
        print(
            f"  {stage:<10} {n:>7} {f:>8} {human_bytes(b):>10}  {_when(min(used, default=0)):<16}  "
            f"{_when(max(used, default=0)):<16}"
        )
        total_n, total_f, total_b = total_n + n, total_f + f, total_b + b
    if not stages:
        print("  (empty)")
    print(f"  {'total':<10} {total_n:>7} {total_f:>8} {human_bytes(total_b):>10}")
    other = []
    for kind in ("tmp", "failed", "trash"):
        mine = [i for i in items if i.kind == kind]
        other.append(f"{kind}/ {len(mine)} ({human_bytes(sum(i.bytes for i in mine))})")
    for name in ("reuse", "repairs"):
        folder = cache.root / name
        if folder.is_dir():
            other.append(f"{name}/ {human_bytes(folder_bytes(folder))}")
    print("  other: " + ", ".join(other))
    return 0


def _prune(cache: StageCache, args: argparse.Namespace) -> int:
    if args.older_than is not None and args.older_than < 0:
        raise HarnessError("--older-than", f"{args.older_than:g}", "a number of days >= 0")
    if args.keep_last is not None and args.keep_last < 0:
        raise HarnessError("--keep-last", str(args.keep_last), "a count >= 0")
    if args.stage is not None:
        from harness.pipeline import STAGES

        known = sorted({*STAGES, *cache.stages()})
        if args.stage not in known:
            raise HarnessError(f"--stage {args.stage}", "unknown stage", f"one of {', '.join(known)}")
    now = time.time()
    report = cache.prune(
        older_than_days=args.older_than,
        stage=args.stage,
        failures_only=args.failures_only,
        keep_last=args.keep_last,
        dry_run=args.dry_run,
        now=now,
    )
    verb = "would remove" if args.dry_run else "removed"
    for item in report.removed:
        print(f"{verb} {_label(item)}  {human_bytes(item.bytes)}  (last used {_age(now - item.used)} ago)")
    selecting = any(x is not None for x in (args.older_than, args.stage, args.keep_last)) or args.failures_only
    print(
        f"{verb} {report.count('entry')} entries, {report.count('failure')} failure records, "
        f"{report.count('tmp') + report.count('failed') + report.count('trash')} leftovers; "
        f"{'would free' if args.dry_run else 'freed'} {human_bytes(report.bytes_freed)}"
    )
    if not selecting:
        print(
            f"(no selector given: only tmp/ and failed/ leftovers older than {LEFTOVER_AGE_S / 3600:g} h were "
            "considered; use --older-than, --keep-last, --failures-only or --stage to remove entries)"
        )
    return 0


def _label(item: CacheItem) -> str:
    if item.kind == "entry":
        return f"entry   {item.stage}/{item.key[:16]}"
    if item.kind == "failure":
        return f"failure {item.stage}/{item.key[:16]}"
    return f"{item.kind:<7} {item.kind}/{item.key}"
