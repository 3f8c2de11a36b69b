"""``hefsweep minimize RUN_ID``: shrink a passing trial's override set to a minimal one that still passes."""

from __future__ import annotations

import argparse
from pathlib import Path

from harness.cli._command import Command, store_options
from harness.errors import HarnessError

__all__ = ["Minimize"]


class Minimize(Command):
    """Shrink a passing trial's override set to a 1-minimal subset that still passes.

    Delta debugging: every probe is logged as an MLflow run and the result is tagged on the trial
    (hefsweep.minimal_override_set)."""

    name = "minimize"

    def add_arguments(self, p: argparse.ArgumentParser) -> None:
        p.add_argument("run_id", metavar="RUN_ID", help="MLflow run id of a passing trial")
        store_options(p)
        p.add_argument(
            "--cache-dir", type=Path, help="the stage cache (default: $HEFSWEEP_CACHE_DIR if set, else <root>/cache)"
        )
        p.add_argument(
            "--min-si-snr-db",
            type=float,
            metavar="X",
            help="a probe passes only if its mean SI-SNR reaches X dB (default: any passing trial)",
        )
        p.add_argument("--space", type=Path, help="search-space YAML (default: the sweep's, from the parent run)")
        p.add_argument(
            "--max-probes",
            type=int,
            metavar="N",
            help="stop after N probes with the smallest passing set so far (default: until 1-minimal)",
        )

    def run(self, args: argparse.Namespace) -> int:
        from harness.minimize import minimize_run

        if args.max_probes is not None and args.max_probes < 1:
            raise HarnessError("--max-probes", str(args.max_probes), "at least 1 probe")
        minimize_run(
            args.run_id,
            root=args.root,
            tracking_uri=args.tracking_uri,
            cache_dir=args.cache_dir,
            space_path=args.space,
            min_si_snr_db=args.min_si_snr_db,
            max_probes=args.max_probes,
        )
        return 0
