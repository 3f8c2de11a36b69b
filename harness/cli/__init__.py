"""The ``hefsweep`` command line.

One class per subcommand, one registration table (:data:`COMMANDS`). A :class:`~harness.errors.HarnessError` prints
its one-line message and exits 1; anything else is a bug and exits 2 with its traceback.

What lives where (one module per command or group of related commands, each a thin layer over the library):

- ``__init__.py``: the parser, :data:`COMMANDS` and :func:`main` (the ``hefsweep`` console script);
  ``__main__.py`` makes ``python -m harness.cli`` the same command.
- ``_command.py``: :class:`~harness.cli._command.Command`, the base of subcommands, and the shared store options.
- ``sweep.py``: ``sweep`` and ``worker`` (:func:`harness.sweep.run_sweep`).
- ``report.py``: ``report`` (:mod:`harness.report`).
- ``diff.py``: ``diff``, per-layer quantization noise of two trials (:mod:`harness.layer_noise`).
- ``promote.py``: ``promote`` (and ``--rollback``) and ``pull`` (:mod:`harness.promote`).
- ``minimize.py``: ``minimize``, delta debugging of a trial's overrides (:mod:`harness.minimize`).
- ``cache.py``: ``cache info`` and ``cache prune`` (:mod:`harness.cache`).
- ``export.py``: ``export`` (:func:`harness.api.export`; ``--onnx`` through :mod:`harness.onnx_model`).
- ``demo_data.py``: ``demo-data``; ``ui.py``: ``ui``; ``doctor.py``: ``doctor``.

A new subcommand is a :class:`~harness.cli._command.Command` subclass (its docstring is its help) in its own module
plus one entry in :data:`COMMANDS`.
"""

from __future__ import annotations

import argparse
import logging
import re
import sys
import typing

from harness.cli._command import Command
from harness.cli.cache import Cache
from harness.cli.demo_data import DemoData
from harness.cli.diff import Diff
from harness.cli.doctor import Doctor
from harness.cli.export import Export
from harness.cli.minimize import Minimize
from harness.cli.promote import Promote, Pull
from harness.cli.report import Report
from harness.cli.sweep import Sweep, Worker
from harness.cli.ui import Ui
from harness.errors import HarnessError

__all__ = ["main"]


COMMANDS: tuple[type[Command], ...] = (
    Sweep, Worker, Report, Diff, Promote, Pull, Minimize, Cache, Export, DemoData, Ui, Doctor,
)  # fmt: skip


class _Parser(argparse.ArgumentParser):
    """argparse with hefsweep's error convention: one line on stderr, exit code 1."""

    def error(self, message: str) -> typing.NoReturn:
        self.exit(1, f"{self.prog}: error: {' '.join(message.split())} (see {self.prog} --help)\n")


def summary(doc: str) -> str:
    """A command's line in ``hefsweep --help``: the first sentence of its docstring, whole."""
    first = " ".join(doc.split("\n\n")[0].split())
    return re.split(r"(?<=[.!?])\s", first, maxsplit=1)[0]


def build_parser() -> tuple[argparse.ArgumentParser, dict[str, Command]]:
    """The argument parser and the name -> command table."""
    parser = _Parser(prog="hefsweep", description=__doc__.splitlines()[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)
    table: dict[str, Command] = {}
    for cls in COMMANDS:
        cmd = cls()
        doc = (cls.__doc__ or "").strip()
        p = sub.add_parser(cls.name, help=summary(doc), description=doc)
        cmd.add_arguments(p)
        table[cls.name] = cmd
    return parser, table


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``hefsweep`` console script."""
    parser, table = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    try:
        return table[args.command].run(args)
    except HarnessError as exc:
        print(f"hefsweep {args.command}: error: {exc.message}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"hefsweep {args.command}: interrupted", file=sys.stderr)
        return 130
    except Exception:  # a bug, not bad input: the traceback is for the report
        import traceback

        traceback.print_exc()
        print(f"hefsweep {args.command}: internal error (a bug; please report the traceback above)", file=sys.stderr)
        return 2
