"""A real ``mlflow server`` on a free 127.0.0.1 port, for the tests that need a tracking server.

One implementation for the distributed, browser and reliability suites: start and wait for ``/health`` (failing
the test with the server's log when it does not come up), SIGKILL (a crash) and restart on the same port and
store, stop (always, with every process the server started: it runs in its own process group).
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

__all__ = ["MlflowServer", "free_port"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class MlflowServer:
    """``mlflow server`` with ``--workers 1``, served artifacts in ``folder/artifacts`` and its logs in ``folder``.

    Args:
        folder: Working folder (logs, artifacts, and the default sqlite backend store).
        backend_store_uri: The backend store (default ``sqlite:///folder/mlflow.db``); e.g. a PostgreSQL URL.
        port: Fixed port (a restart keeps it); default a free one.
    """

    def __init__(self, folder: Path, backend_store_uri: str | None = None, port: int | None = None) -> None:
        self.folder = folder
        self.backend_store_uri = backend_store_uri or f"sqlite:///{folder / 'mlflow.db'}"
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def start(self, timeout: float = 120) -> float:
        """Start and wait for ``/health``; returns the seconds it took."""
        self.folder.mkdir(parents=True, exist_ok=True)
        log_path = self.folder / f"server-{self.starts}.log"
        env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
        env["MLFLOW_DISABLE_TELEMETRY"] = "true"
        # no huey job runner: 7 extra processes on a 2-core machine; the runs table and artifacts do not use it
        env["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] = "false"
        t0 = time.monotonic()
        with log_path.open("wb") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", self.backend_store_uri,
                 "--artifacts-destination", str(self.folder / "artifacts"),
                 "--host", "127.0.0.1", "--port", str(self.port), "--workers", "1"],  # fmt: skip
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.folder,
                env=env,
                start_new_session=True,  # its own process group: stopping it stops uvicorn too, and only that
            )
        self.starts += 1
        while True:
            try:
                with urllib.request.urlopen(f"{self.url}/health", timeout=2) as r:
                    if r.status == 200:
                        return time.monotonic() - t0
            except OSError:
                pass
            if self.proc.poll() is not None or time.monotonic() - t0 > timeout:
                code = self.proc.poll()
                self.kill()
                pytest.fail(f"mlflow server did not start on {self.url} (exit code {code}); its log:\n"
                            + log_path.read_text(errors="replace")[-3000:], pytrace=False)  # fmt: skip
            time.sleep(0.25)

    def kill(self) -> None:
        """SIGKILL the server and everything it started (its uvicorn workers)."""
        if self.proc is not None and self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(20)
        self.proc = None

    def stop(self) -> None:
        """SIGTERM (then SIGKILL after 20 s) the server's process group."""
        if self.proc is not None and self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.kill()
        self.proc = None
