"""``hefsweep doctor``: machine and store checks (logic in :mod:`harness.doctor`)."""

from __future__ import annotations

import argparse
from pathlib import Path

from harness.cli._command import Command, store_options

__all__ = ["Doctor"]


class Doctor(Command):
    """Check this machine for a sweep.

    Checks Python, torch, onnx, onnxruntime, the Hailo DFC (and hw_arch values), GPU, and whether the configured
    stores are reachable. Exits 1 when something the backend needs is missing."""

    name = "doctor"

    def add_arguments(self, p: argparse.ArgumentParser) -> None:
        p.add_argument("--backend", choices=["ort", "hailo"], default="ort")
        p.add_argument("--python", help="the DFC environment's interpreter (default: $HEFSWEEP_HAILO_PYTHON, else this one)")
        p.add_argument("--space", type=Path, help="take --backend and its options (python, hw_arch ...) from this space")
        store_options(p)

    def run(self, args: argparse.Namespace) -> int:
        from harness.doctor import run_checks
        from harness.sweep import default_storage
        from harness.tracking import default_tracking_uri

        backend, options = args.backend, {}
        if args.space is not None:
            from harness.space import load_space

            space = load_space(args.space)
            backend, options = space.backend, dict(space.backend_options)
        checks = run_checks(
            backend,
            args.storage or default_storage(args.root),
            args.tracking_uri or default_tracking_uri(args.root),
            python=args.python,
            options=options,
        )
        width = max(len(c.name) for c in checks)
        for c in checks:
            mark = "ok  " if c.ok else ("MISS" if c.required else "--  ")
            print(f"[{mark}] {c.name:<{width}}  {c.detail}")
        missing = [c.name for c in checks if c.required and not c.ok]
        if missing:
            print(f"\nmissing for backend {backend}: {', '.join(missing)}")
            return 1
        print(f"\nready for backend {backend}")
        return 0
