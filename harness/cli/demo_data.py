"""``hefsweep demo-data``: the demo calibration and evaluation mixtures (logic in :mod:`harness.audio`)."""

from __future__ import annotations

import argparse
from pathlib import Path

from harness.cli._command import Command

__all__ = ["DemoData"]


class DemoData(Command):
    """Generate the demo calibration and evaluation mixtures (speech-like sources plus noise).

    Deterministic: the same --seed writes the same files."""

    name = "demo-data"

    def add_arguments(self, p: argparse.ArgumentParser) -> None:
        p.add_argument("--out", type=Path, default=Path("data/demo"), help="output folder")
        p.add_argument("--seed", type=int, default=0)

    def run(self, args: argparse.Namespace) -> int:
        from harness.audio import make_demo_dataset

        summary = make_demo_dataset(args.out, seed=args.seed)
        print(f"wrote demo data under {args.out}: {summary}")
        return 0
