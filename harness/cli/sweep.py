"""``hefsweep sweep`` and ``hefsweep worker``: run a study's trials (logic in :func:`harness.sweep.run_sweep`).

Both call ``run_sweep`` itself rather than :func:`harness.api.sweep`: a worker runs up to a study total
(``total=``), which the API does not offer, and the API's extra lookup of every trial's run id is not printed."""

from __future__ import annotations

import argparse
from pathlib import Path

from harness.cli._command import Command, store_options
from harness.errors import HarnessError

__all__ = ["Sweep", "Worker"]


class Sweep(Command):
    """Run (or resume) a sweep over a search space.

    Every trial exports, calibrates, quantizes, compiles and emulates, and logs to MLflow."""

    name = "sweep"

    def add_arguments(self, p: argparse.ArgumentParser) -> None:
        p.add_argument("space", type=Path, help="search-space YAML (see search_spaces/)")
        p.add_argument("--trials", type=int, help="number of trials (default: the space's; 0: create the study only)")
        p.add_argument("--timeout", type=float, help="time budget in seconds (default: the space's)")
        p.add_argument("--study", help="study / experiment name (default: the space's)")
        p.add_argument("--backend", choices=["ort", "hailo"], help="backend (default: the space's)")
        store_options(p)

    def run(self, args: argparse.Namespace) -> int:
        from harness.space import load_space
        from harness.sweep import run_sweep
        from harness.tracking import runs_url

        space = load_space(args.space)
        if args.backend:
            space = space.model_copy(update={"backend": args.backend})
        if args.trials is not None and args.trials < 0:
            raise HarnessError("--trials", f"{args.trials}", "a number of trials >= 0 (0 creates the study only)")
        s = run_sweep(
            space,
            trials=args.trials,
            timeout=args.timeout,
            study_name=args.study,
            storage=args.storage,
            tracking_uri=args.tracking_uri,
            root=args.root,
        )
        print(
            f"\nstudy '{s.study}': {s.n_trials} trials this run ({s.n_ok} ok, {s.n_failed} failed) in {s.seconds:.0f} s"
        )
        for sig, n in sorted(s.signatures.items(), key=lambda kv: -kv[1]):
            print(f"  {n:3d} x {sig}")
        if s.best_value is not None:
            print(f"best this run: trial #{s.best_trial} {s.objective}={s.best_value:.2f} (MLflow run {s.best_run_id})")
        print(f"MLflow: parent run {s.parent_run_id}; browse with `hefsweep ui --root {args.root}` ->")
        print("  " + runs_url("http://127.0.0.1:5000", s.experiment_id))
        return 0


class Worker(Command):
    """Join a study as one more worker.

    Any number of workers, on any machine sharing the storage and tracking server, run trials until the study holds
    --trials finished trials."""

    name = "worker"

    def add_arguments(self, p: argparse.ArgumentParser) -> None:
        p.add_argument("--study", required=True, help="the study to join")
        p.add_argument("--space", type=Path, help="search-space YAML (default: the file the study was created from)")
        p.add_argument("--trials", type=int, help="total finished trials for the study (default: the space's)")
        p.add_argument("--timeout", type=float, help="this worker's time budget in seconds")
        store_options(p)

    def run(self, args: argparse.Namespace) -> int:
        from harness.space import load_space
        from harness.sweep import default_storage, run_sweep, study_space_file

        if args.trials is not None and args.trials < 0:
            raise HarnessError("--trials", f"{args.trials}", "a total number of finished trials >= 0")
        storage = args.storage or default_storage(args.root)
        space_file = args.space or study_space_file(args.study, storage)
        space = load_space(space_file)
        s = run_sweep(
            space,
            total=args.trials if args.trials is not None else space.trials,
            timeout=args.timeout,
            study_name=args.study,
            storage=storage,
            tracking_uri=args.tracking_uri,
            root=args.root,
        )
        print(f"worker done: {s.n_trials} trials ({s.n_ok} ok, {s.n_failed} failed) in {s.seconds:.0f} s")
        return 0
