"""``hefsweep doctor``: what this machine has for a sweep, and what is missing.

Each check returns a :class:`Check` (name, status, detail). ``required`` checks decide the exit code: a missing
piece that the chosen backend or the configured stores need makes the command exit 1.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
import os
import platform
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from harness.errors import HarnessError, describe

__all__ = ["Check", "run_checks"]

DFC_HINT = (
    "install the Hailo Dataflow Compiler wheel (hailo_dataflow_compiler-<ver>-py3-none-linux_x86_64.whl) from the "
    "Hailo Developer Zone into this venv: .venv/bin/pip install <wheel>"
)


@dataclass(frozen=True)
class Check:
    """One line of the report."""

    name: str
    ok: bool
    detail: str
    required: bool = True


def _version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def _package(name: str, dist: str, required: bool) -> Check:
    v = _version(dist)
    return Check(name, v is not None, v or "not installed", required)


def _dfc(required: bool) -> list[Check]:
    try:
        spec = importlib.util.find_spec("hailo_sdk_client")
    except (ImportError, ValueError):
        spec = None
    if spec is None:
        return [Check("Hailo DFC (hailo_sdk_client)", False, f"absent: {DFC_HINT}", required)]
    try:
        sdk = importlib.import_module("hailo_sdk_client")
    except Exception as exc:  # noqa: BLE001 - a broken install is reported, not raised
        return [Check("Hailo DFC (hailo_sdk_client)", False, f"import fails: {type(exc).__name__}: {exc}", required)]
    checks = [Check("Hailo DFC (hailo_sdk_client)", True, str(getattr(sdk, "__version__", "unknown version")), required)]
    try:
        archs = list(importlib.import_module("hailo_sdk_client.exposed_definitions").SUPPORTED_HW_ARCHS)
        source = "SUPPORTED_HW_ARCHS"
    except Exception:  # noqa: BLE001 - older/newer DFCs may not expose it
        from harness.backends.hailo import KNOWN_HW_ARCHS

        archs, source = sorted(KNOWN_HW_ARCHS), "hefsweep's list"
    checks.append(Check("hw_arch values", True, f"{', '.join(archs)} ({source})", False))
    rt = _version("hailort")
    checks.append(Check("HailoRT (hailo_platform)", rt is not None, rt or "absent (only needed on the target)", False))
    return checks


def _gpu() -> Check:
    smi = shutil.which("nvidia-smi")
    if smi:
        try:
            out = subprocess.run([smi, "-L"], capture_output=True, text=True, timeout=10).stdout.strip()
        except (OSError, subprocess.TimeoutExpired) as exc:
            out = f"nvidia-smi failed: {exc}"
        return Check("GPU", bool(out), out.splitlines()[0] if out else "nvidia-smi lists none", False)
    return Check("GPU", False, "none visible (the DFC optimizes on CPU: use optimization_level 0-1)", False)


def _sqlite_folder(url: str) -> Path:
    return Path(url.removeprefix("sqlite:///")).parent


def _sqlite_writable(name: str, url: str) -> Check:
    """A ``sqlite:///`` store can be written when its folder is writable, or can be created in a writable parent."""
    folder = _sqlite_folder(url)
    ok = folder.is_dir() and os.access(folder, os.W_OK) or (not folder.exists() and os.access(folder.parent, os.W_OK))
    return Check(name, ok, "writable" if ok else f"{folder} is not writable")


def _optuna_store(url: str) -> Check:
    name = f"Optuna storage {url.split('@')[-1]}"
    if url.startswith("sqlite:///"):
        return _sqlite_writable(name, url)
    try:
        import sqlalchemy

        engine = sqlalchemy.create_engine(url, connect_args={"connect_timeout": 5} if url.startswith("postgres") else {})
        with engine.connect() as conn:
            conn.execute(sqlalchemy.text("select 1"))
        engine.dispose()
        return Check(name, True, "reachable")
    except Exception as exc:  # noqa: BLE001 - any failure is the report
        return Check(name, False, f"unreachable: {describe(exc, 160)}")


def _mlflow_store(uri: str) -> Check:
    name = f"MLflow tracking {uri}"
    if uri.startswith("sqlite:///"):
        return _sqlite_writable(name, uri)
    if uri.startswith(("http://", "https://")):
        from harness.tracking import probe_server

        try:
            probe_server(uri)
            return Check(name, True, "reachable")
        except HarnessError as exc:
            return Check(name, False, exc.seen)
    return Check(name, True, "not checked (scheme not probed)", False)


def run_checks(backend: str, storage: str, tracking_uri: str) -> list[Check]:
    """All checks for a sweep on ``backend`` with these stores."""
    checks = [
        Check("Python", True, f"{platform.python_version()} ({platform.machine()})", False),
        _package("torch", "torch", True),
        _package("onnx", "onnx", True),
        _package("onnxruntime", "onnxruntime", True),
        _package("optuna", "optuna", True),
        _package("mlflow", "mlflow", True),
    ]
    checks += _dfc(required=backend == "hailo")
    checks.append(_gpu())
    checks.append(_optuna_store(storage))
    checks.append(_mlflow_store(tracking_uri))
    return checks
