"""``hefsweep ui``: the MLflow UI on the local store, or a tracking server's runs table."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from harness.cli._command import Command
from harness.errors import HarnessError

__all__ = ["Ui"]


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
