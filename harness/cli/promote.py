"""``hefsweep promote`` and ``hefsweep pull`` (logic in :mod:`harness.promote`)."""

from __future__ import annotations

import argparse
import math
from pathlib import Path

from harness.cli._command import Command, store_options
from harness.errors import HarnessError

__all__ = ["Promote", "Pull"]


def _tracking_uri(args: argparse.Namespace) -> str:
    """The tracking URI from --tracking-uri / --root; also silences MLflow's download progress bars."""
    import os

    from harness.tracking import default_tracking_uri

    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    return str(args.tracking_uri or default_tracking_uri(args.root))


class Promote(Command):
    """Register a trial's artifact in the MLflow Model Registry and move an alias to it.

    The artifact (quantized ONNX or HEF) is re-verified from the stored copy first (sha256, backend versions, re-run
    emulation); --rollback moves the alias back. Every change is appended to a ledger kept in MLflow."""

    name = "promote"

    def add_arguments(self, p: argparse.ArgumentParser) -> None:
        which = p.add_mutually_exclusive_group()
        which.add_argument("--study", help="promote this study's best ok trial (highest si_snr_db)")
        which.add_argument("--run", dest="run_id", metavar="RUN_ID", help="promote this trial run")
        p.add_argument("--name", help="registered model name (default hefsweep-<study>)")
        p.add_argument("--alias", default="champion", help="alias to move (default champion)")
        p.add_argument("--tolerance-db", type=float, default=0.1,
                       help="allowed |recomputed - logged| mean SI-SNR in dB (default 0.1)")  # fmt: skip
        p.add_argument("--allow-version-mismatch", action="store_true",
                       help="promote even if the backend versions differ from the trial's (recorded)")  # fmt: skip
        p.add_argument("--skip-emulation", action="store_true",
                       help="do not re-run emulation, e.g. a HEF where the DFC is not installed (recorded)")  # fmt: skip
        p.add_argument("--rollback", action="store_true",
                       help="move the alias back to where it was before the last promotion (--name or --study)")  # fmt: skip
        store_options(p)

    def run(self, args: argparse.Namespace) -> int:
        from harness.promote import promote, rollback

        uri = _tracking_uri(args)
        if args.rollback:
            if args.run_id:
                raise HarnessError("--rollback", "given with --run", "--name MODEL or --study NAME")
            name = args.name or (f"hefsweep-{args.study}" if args.study else None)
            if not name:
                raise HarnessError("--rollback", "no model named", "--name MODEL or --study NAME")
            r = rollback(uri, name, alias=args.alias, root=args.root)
            print(f"rolled back {r.model} alias '{r.alias}': version {r.previous_version} -> {r.version} "
                  f"(run {r.run_id}, sha256 {r.sha256[:16]}...)")  # fmt: skip
        else:
            if not args.study and not args.run_id:
                raise HarnessError("promote", "no --study or --run", "--study NAME or --run RUN_ID (or --rollback)")
            if not math.isfinite(args.tolerance_db) or args.tolerance_db < 0:
                raise HarnessError("--tolerance-db", args.tolerance_db, "a finite number >= 0")
            r = promote(
                uri,
                study=args.study,
                run_id=args.run_id,
                name=args.name,
                alias=args.alias,
                tolerance_db=args.tolerance_db,
                allow_version_mismatch=args.allow_version_mismatch,
                skip_emulation=args.skip_emulation,
                root=args.root,
                progress=print,
            )
            if r.action == "unchanged":
                print(f"{r.model} alias '{r.alias}' already points to version {r.version} (run {r.run_id}); "
                      "nothing changed")  # fmt: skip
                return 0
            before = r.previous_version or "(none)"
            how = "reused already registered" if r.reused else "registered"
            print(f"{how} {r.model} version {r.version}; alias '{r.alias}': {before} -> {r.version}")
        where = f"; local copy {r.local_ledger}" if r.local_ledger is not None else ""
        n = f"{r.ledger_size} {'entry' if r.ledger_size == 1 else 'entries'}"
        print(f"ledger: {n} (MLflow run {r.ledger_run_id}, ledger.jsonl{where})")
        return 0


class Pull(Command):
    """Download a registered model version's artifact and verify it.

    NAME, NAME@alias or NAME/version (NAME means NAME@champion); the artifact's sha256 is checked against the
    version's tag before it is written to --out. A mismatch is refused and nothing is written."""

    name = "pull"

    def add_arguments(self, p: argparse.ArgumentParser) -> None:
        p.add_argument("model", metavar="NAME[@alias|/version]", help="e.g. hefsweep-demo@champion or hefsweep-demo/3")
        p.add_argument("--out", type=Path, required=True, help="folder to write the artifact into (created)")
        store_options(p)

    def run(self, args: argparse.Namespace) -> int:
        from harness.promote import pull

        r = pull(_tracking_uri(args), args.model, args.out)
        print(f"{r.model} version {r.version} -> {r.path}")
        print(f"sha256 {r.sha256} verified (run {r.run_id}, study {r.tags.get('hefsweep.study', '?')}, "
              f"si_snr_db {r.tags.get('hefsweep.si_snr_db', '?')})")  # fmt: skip
        for extra in r.extra:  # e.g. a tiled model's tiling.json, verified against the version's tag
            print(f"  + {extra} (sha256 verified)")
        return 0

