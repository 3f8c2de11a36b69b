"""Base of ``hefsweep`` subcommands (see :mod:`harness.cli` for the registration table)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import ClassVar

__all__ = ["Command", "store_options"]


class Command:
    """Base of subcommands: ``name``, help from the docstring, ``add_arguments`` and ``run``."""

    name: ClassVar[str]

    def add_arguments(self, p: argparse.ArgumentParser) -> None:
        """Declare options."""

    def run(self, args: argparse.Namespace) -> int:
        """Do the work; return the exit code."""
        raise NotImplementedError


def store_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--root", type=Path, default=Path("mlruns"), help="folder of the local stores (default mlruns/)")
    p.add_argument("--storage", help="Optuna storage URL (default sqlite:///<root>/optuna.db)")
    p.add_argument("--tracking-uri", help="MLflow tracking URI (default sqlite:///<root>/mlflow.db)")


