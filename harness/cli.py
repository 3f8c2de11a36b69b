"""The ``hefsweep`` command line.

One class per subcommand, one registration table. A :class:`~harness.errors.HarnessError` prints its one-line
message and exits 1; anything else is a bug and exits 2 with its traceback.
"""

from __future__ import annotations

import argparse
import typing
import logging
import re
import sys
from pathlib import Path
from harness._command import Command, store_options
from harness.errors import HarnessError
from harness.cache_cli import Cache
from harness.diff_cli import Diff
from harness.minimize_cli import Minimize
from harness.promote_cli import Promote, Pull
from harness.report_cli import Report

__all__ = ["main"]


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


class Export(Command):
    """Export one variant of a checkpoint to ONNX ([1,1,1,W] in, [1,n_src,1,W] out) and check its fidelity.

    With ``--onnx`` an existing ONNX is the model (harness/onnx_model): converted to the 4-D form, only the exact
    rewrites apply, the gate compares with that ONNX in ONNX Runtime."""

    name = "export"

    def add_arguments(self, p: argparse.ArgumentParser) -> None:
        source = p.add_mutually_exclusive_group(required=True)
        source.add_argument("--checkpoint", type=Path, help="asteroid-format Conv-TasNet checkpoint")
        source.add_argument("--onnx", type=Path, help="an existing ONNX model ([N,T], [N,1,T] or [N,1,1,T] input)")
        p.add_argument("--sample-rate", type=int, default=16000, help="with --onnx: the model's sample rate (the probe's)")
        p.add_argument("--length", type=int, default=16000, help="input length W in samples")
        p.add_argument("--prelu", choices=["keep", "relu", "maxmin"], default="keep")
        p.add_argument("--norm", choices=["gLN", "cLN", "affine", "identity"], default=None)
        p.add_argument("--clamp", type=float, default=None, help="clamp activations to [-c, c]")
        p.add_argument("--gln-stats", choices=["joint", "split"], default="joint",
                       help="gLN statistics as one ReduceMean over (C, T) or two single-axis ones (the form the DFC parsed)")
        p.add_argument("--decoder", choices=["grouped", "per_source"], default="grouped",
                       help="one grouped ConvTranspose or one ungrouped ConvTranspose per source")
        p.add_argument("--mask-mul", choices=["repeat", "per_source"], default="repeat",
                       help="masks times cat([w] * n_src), or each source's mask times w")
        p.add_argument("--gate-db", type=float, default=60.0, help="fidelity gate (SI-SNR, dB)")
        p.add_argument("--out", type=Path, required=True, help="output .onnx")

    def run(self, args: argparse.Namespace) -> int:
        import numpy as np

        from harness.audio import speech_like
        from harness.export import FidelityGateError, check_fidelity, export_onnx
        from harness.model import load_checkpoint
        from harness.substitutions import SubstitutionSpec, apply_substitutions

        if args.length < 256:
            raise HarnessError("--length", f"{args.length}", "an input length of at least 256 samples")
        if args.onnx is not None:
            return _export_onnx_model(args)
        model = load_checkpoint(args.checkpoint)
        sub, fired = apply_substitutions(model, SubstitutionSpec(prelu=args.prelu, norm=args.norm, clamp=args.clamp, gln_stats=args.gln_stats,
                                                                   decoder=args.decoder, mask_mul=args.mask_mul))
        args.out.parent.mkdir(parents=True, exist_ok=True)
        report = export_onnx(sub, args.length, args.out)
        rng = np.random.default_rng(0)
        # the fidelity probe's rate only shapes its spectrum: a checkpoint without one (asteroid allows None) is
        # probed as 8 kHz speech (the export itself does not use the rate)
        rate = model.config.sample_rate or 8000
        probe = speech_like(rng, args.length, rate)[None, None, None, :].astype(np.float32)
        try:
            fid = check_fidelity(sub, args.out, probe, args.gate_db)
        except FidelityGateError as exc:
            raise HarnessError(args.out, str(exc), f"SI-SNR >= {args.gate_db:g} dB against torch") from None
        print(f"wrote {args.out} (opset {report.opset}, {sum(report.op_counts.values())} nodes)")
        print(f"substitutions fired: {', '.join(fired) or 'none'}")
        unknown = "" if model.config.sample_rate else " (probe at 8000 Hz: the checkpoint has no sample_rate)"
        print(f"fidelity: SI-SNR {fid['fidelity_si_snr_db']:.1f} dB, max abs error {fid['fidelity_max_abs_err']:.2e}{unknown}")
        print("ops: " + ", ".join(f"{k} {v}" for k, v in report.op_counts.items()))
        return 0


def _export_onnx_model(args: argparse.Namespace) -> int:
    """``hefsweep export --onnx``: the user's ONNX in the 4-D form with the exact rewrites, gated against itself."""
    import numpy as np

    from harness.audio import speech_like
    from harness.export import FidelityGateError, check_fidelity_onnx, export_user_onnx
    from harness.onnx_model import OnnxModel

    for flag, value, ok in (("--prelu", args.prelu, ("keep", "maxmin")), ("--norm", args.norm, (None,)), ("--clamp", args.clamp, (None,))):
        if value not in ok:
            raise HarnessError(flag, f"{value} needs the PyTorch model", "with --onnx only exact rewrites (--prelu keep|maxmin, no --norm, no --clamp)")
    model = OnnxModel(args.onnx, args.sample_rate, args.length)
    choices = {"prelu": args.prelu, "gln_stats": args.gln_stats, "decoder": args.decoder, "mask_mul": args.mask_mul}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    report, fired = export_user_onnx(model, args.length, choices, args.out)
    rng = np.random.default_rng(0)
    probe = speech_like(rng, args.length, args.sample_rate)[None, None, None, :].astype(np.float32)
    try:
        fid = check_fidelity_onnx(model.run_original, args.out, probe, args.gate_db)
    except FidelityGateError as exc:
        raise HarnessError(args.out, str(exc), f"SI-SNR >= {args.gate_db:g} dB against {args.onnx}") from None
    print(f"wrote {args.out} (opset {report.opset}, {sum(report.op_counts.values())} nodes, {model.config.n_src} sources)")
    print("rewrites: " + (", ".join(f"{k} fired {v}x" for k, v in fired.items()) or "none selected"))
    print(f"fidelity vs {args.onnx}: SI-SNR {fid['fidelity_si_snr_db']:.1f} dB, max abs error {fid['fidelity_max_abs_err']:.2e}")
    print("ops: " + ", ".join(f"{k} {v}" for k, v in report.op_counts.items()))
    return 0


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


class Ui(Command):
    """Serve the MLflow UI on the local store, or open a tracking server's runs table.

    Without --tracking-uri the UI is served on the store under --root (the URL of the runs table is printed). With
    --tracking-uri http://... (a running mlflow server) nothing is served: the runs table of the --study's
    experiment (default: the newest) on that server is printed and opened in a browser; another URI (sqlite:///,
    postgresql://) is served like the local store."""

    name = "ui"

    def add_arguments(self, p: argparse.ArgumentParser) -> None:
        p.add_argument("--root", type=Path, default=Path("mlruns"))
        p.add_argument("--host", default="127.0.0.1")
        p.add_argument("--port", type=int, default=5000)
        p.add_argument("--tracking-uri", help="an MLflow tracking server (http://...) or backend store URI")
        p.add_argument("--study", help="with an http(s) --tracking-uri: the study (experiment) to open")

    def run(self, args: argparse.Namespace) -> int:
        import subprocess

        from harness.tracking import default_tracking_uri

        uri = args.tracking_uri
        if uri and uri.startswith(("http://", "https://")):
            url, name = _remote_runs_table(uri, args.study)
            print(f"MLflow runs table of experiment {name!r} on {uri.rstrip('/')}: {url}")
            import webbrowser

            webbrowser.open(url)
            return 0
        if uri is None:
            db = args.root / "mlflow.db"
            if not db.is_file():
                raise HarnessError(db, "no MLflow store there", "a store written by `hefsweep sweep` (run one first)")
        print(f"MLflow UI on http://{args.host}:{args.port}  (open an experiment's 'Model training' runs table)")
        cmd = [
            sys.executable, "-m", "mlflow", "server",
            "--backend-store-uri", uri or default_tracking_uri(args.root),
            "--host", args.host, "--port", str(args.port), "--workers", "1",
        ]  # fmt: skip
        import os

        # the server's job runner (huey workers) is for GenAI features hefsweep does not use
        env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": os.environ.get("MLFLOW_SERVER_ENABLE_JOB_EXECUTION", "false")}
        return subprocess.call(cmd, env=env)


def _remote_runs_table(uri: str, study: str | None) -> tuple[str, str]:
    """(runs-table URL, experiment name) of ``study`` (default: the newest experiment) on a tracking server."""
    import urllib.request

    from harness.errors import describe
    from harness.tracking import runs_url

    base = uri.rstrip("/")
    server = f"MLflow tracking server {base}"
    try:  # before the client, whose retries take minutes on a server that is not there
        with urllib.request.urlopen(f"{base}/health", timeout=10) as response:
            response.read()
    except (OSError, ValueError) as exc:
        raise HarnessError(server, f"unreachable ({describe(exc)})", "a running `mlflow server` at that URI") from None
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=base)
    experiments = client.search_experiments(order_by=["creation_time DESC"], max_results=1000)
    if study is not None:
        exp = next((e for e in experiments if e.name == study), None)
        if exp is None:
            names = ", ".join(sorted(e.name for e in experiments)[:10]) or "none"
            raise HarnessError(f"study {study!r}", f"no such experiment on {base} (experiments: {names})",
                               "the name of a study tracked there")  # fmt: skip
    else:
        studies = [e for e in experiments if e.name != "Default"] or experiments
        if not studies:
            raise HarnessError(server, "no experiments", "a server a sweep has tracked to (--tracking-uri)")
        exp = studies[0]
    return runs_url(base, exp.experiment_id), exp.name


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


if __name__ == "__main__":
    sys.exit(main())
