"""``hefsweep report --study NAME``: an HTML report of a study, logged to its parent MLflow run.

A thin layer over :func:`harness.api.report`: it parses the options and prints the outcome."""

from __future__ import annotations

import argparse
from pathlib import Path

from harness.cli._command import Command, store_options
from harness.errors import HarnessError

__all__ = ["Report"]


class Report(Command):
    """Write one self-contained HTML report of a study.

    It holds the optimization history, parameter importances, SI-SNR per variant, failure signatures over trials,
    the feasibility boundary and the best trials with MLflow links, and is logged to the study's parent MLflow run
    as report/report.html."""

    name = "report"

    def add_arguments(self, p: argparse.ArgumentParser) -> None:
        p.add_argument("--study", required=True, help="the study (= MLflow experiment) to report on")
        p.add_argument("--out", type=Path, help="output folder (default <root>/reports/<study>/)")
        p.add_argument("--ui-url", default="http://127.0.0.1:5000", help="MLflow UI base URL for run links")
        p.add_argument("--top", type=int, default=10, help="best trials listed (default 10)")
        p.add_argument(
            "--boundary",
            metavar="X,Y",
            help="the two parameters of the feasibility plot (default: the two that explain violations best)",
        )
        p.add_argument(
            "--frontier",
            metavar="X,Y",
            help="mode: frontier studies: the two capacity axes of the frontier plot, e.g. capacity_params,width "
            "(default: capacity_params and the axis that varies most)",
        )
        p.add_argument("--no-log", action="store_true", help="do not log the report to the parent run")
        store_options(p)

    def run(self, args: argparse.Namespace) -> int:
        from harness.api import report
        from harness.report import run_url

        if args.top < 1:
            raise HarnessError("--top", str(args.top), "at least 1")
        boundary = None
        if args.boundary:
            boundary = [b.strip() for b in args.boundary.split(",") if b.strip()]
            if len(boundary) != 2:
                raise HarnessError("--boundary", args.boundary, "two parameter names separated by a comma (X,Y)")
        axes = [a.strip() for a in args.frontier.split(",") if a.strip()] if args.frontier else None
        result = report(
            args.study,
            storage=args.storage,
            tracking_uri=args.tracking_uri,
            root=args.root,
            out_dir=args.out,
            ui_url=args.ui_url,
            top=args.top,
            boundary=boundary,
            frontier=axes,
            log=not args.no_log,
        )
        c = result.counts
        print(
            f"study '{result.study}': {result.n_trials} trials ({c['ok']} ok, {c['failed']} failed, "
            f"{c['pruned']} pruned, {c['lost']} lost); {len(result.plots)} plots"
        )
        for div, why in result.notes.items():
            print(f"  not drawn: {div}: {why}")
        if result.logged and result.experiment_id and result.parent_run_id:
            print(f"logged to the parent run as report/report.html: {run_url(args.ui_url, result.experiment_id, result.parent_run_id)}")
        print(result.path)
        return 0
