"""``hefsweep doctor``: what this machine has for a sweep, and what is missing.

Each check returns a :class:`Check` (name, status, detail). ``required`` checks decide the exit code: a missing
piece that the chosen backend or the configured stores need makes the command exit 1.
"""

from __future__ import annotations

import importlib.metadata
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
    "Hailo Developer Zone into its own environment (Python 3.10, numpy 1.26) and point hefsweep at it: backend option "
    "python: /path/to/dfc-venv/bin/python or $HEFSWEEP_HAILO_PYTHON"
)

#: What a working DFC 3.33 environment pins (real_dfc/dfc_env_requirements.txt) and why a different one conflicts.
DFC_PINS = {
    "numpy": ("1.26", "NumPy 2 breaks the DFC's TensorFlow (LUX); DFC 3.33 environments pin numpy 1.26.4"),
    "onnx": ("1.16", "the DFC imports onnx.mapping, removed in onnx 1.17 (LUX); DFC 3.33 environments pin onnx 1.16.0"),
    "protobuf": ("3.20", "DFC 3.33 environments pin protobuf 3.20.3"),
}


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


def _interpreter_line(name: str, facts: dict[str, object]) -> Check:
    parts = [f"Python {facts.get('python')}"] + [
        f"{k} {facts[k]}" for k in ("numpy", "onnx", "onnxruntime", "protobuf") if facts.get(k)
    ]
    return Check(name, True, f"{facts.get('executable')}: " + ", ".join(parts), False)


def _dfc(required: bool, python: str | None = None, options: dict[str, object] | None = None) -> list[Check]:
    """The DFC's interpreter (resolved as the sweep resolves it), probed: versions, hw_arch values, pin conflicts.

    The SDK is imported only in that interpreter, never here.
    """
    from harness.backends.hailo._interpreter import probe, resolve_python

    opts = dict(options or {})
    try:
        exe = resolve_python(python or opts.get("python"))
        facts = probe(exe, opts)
    except HarnessError as exc:
        return [Check("Hailo DFC interpreter", False, f"{exc.message}", required)]
    versions = dict(facts.get("versions") or {})
    checks = [
        _interpreter_line("DFC interpreter", facts),
        Check("Hailo DFC (hailo_sdk_client)", True, versions.get("hailo_dfc", "unknown version"), required),
        Check("hw_arch values", True, ", ".join(str(a) for a in facts.get("hw_archs") or []), False),
    ]
    for dist, (want, why) in DFC_PINS.items():
        have = facts.get(dist)
        if have and not str(have).startswith(want + "."):
            checks.append(Check(f"DFC interpreter {dist}", False, f"{have} conflicts: {why}", False))
    if facts.get("hailo_dataflow_compiler") is None:
        checks.append(Check("DFC package metadata", False,
                            "no hailo_dataflow_compiler distribution (a fake or a source tree?)", False))  # fmt: skip
    rt = versions.get("hailort")
    checks.append(Check("HailoRT (hailo_platform)", rt is not None, rt or "absent (only needed on the target)", False))
    return checks


def _gpu() -> Check:
    smi = shutil.which("nvidia-smi")
    if not smi:
        return Check("GPU", False, "none visible (the DFC optimizes on CPU: use optimization_level 0-1)", False)
    try:
        run = subprocess.run([smi, "-L"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return Check("GPU", False, f"nvidia-smi failed: {exc}", False)
    gpus = [line.strip() for line in run.stdout.splitlines() if line.strip().startswith("GPU ")]
    if run.returncode != 0:  # e.g. "NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver"
        said = (run.stderr.strip() or run.stdout.strip()).splitlines()
        return Check("GPU", False, f"nvidia-smi exited {run.returncode}: {said[0] if said else 'no output'}", False)
    return Check("GPU", bool(gpus), gpus[0] if gpus else "nvidia-smi lists none", False)


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


def run_checks(
    backend: str, storage: str, tracking_uri: str, python: str | None = None, options: dict[str, object] | None = None
) -> list[Check]:
    """All checks for a sweep on ``backend`` with these stores (``python``/``options``: the Hailo backend's)."""
    import sys

    checks = [
        Check("harness interpreter", True, f"{sys.executable}: Python {platform.python_version()} ({platform.machine()})",
              False),  # fmt: skip
        _package("torch", "torch", True),
        _package("numpy", "numpy", True),
        _package("onnx", "onnx", True),
        _package("onnxruntime", "onnxruntime", True),
        _package("protobuf", "protobuf", False),
        _package("optuna", "optuna", True),
        _package("mlflow", "mlflow", True),
    ]
    if backend == "hailo" or python or os.environ.get("HEFSWEEP_HAILO_PYTHON"):
        checks += _dfc(required=backend == "hailo", python=python, options=options)
    else:
        checks.append(Check("Hailo DFC", False, f"not checked (use --backend hailo); {DFC_HINT}", False))
    checks.append(_gpu())
    checks.append(_optuna_store(storage))
    checks.append(_mlflow_store(tracking_uri))
    return checks
