"""Which interpreter runs the DFC stages, and what it has: harness side, never imports ``hailo_sdk_client``.

The Hailo Dataflow Compiler cannot share an environment with hefsweep: DFC 3.33's working environment pins Python
3.10, numpy 1.26.4, onnx 1.16.0 (the SDK still imports ``onnx.mapping``, removed in onnx 1.17) and protobuf 3.20.3
(``../shared/real_dfc/dfc_env_requirements.txt``; dfc_api.md §7, §11 [C]); hefsweep needs numpy 2, onnx >= 1.17,
torch and MLflow. So the Hailo stages run in a worker process under the DFC environment's own interpreter:

1. backend option ``python: PATH`` (in the space's ``backend_options``), else
2. ``$HEFSWEEP_HAILO_PYTHON``, else
3. this interpreter, when ``hailo_sdk_client`` is installed in it (``find_spec``, no import).

:func:`probe` runs that interpreter once (a small script, with only the harness package added to its path) and
reports its Python, numpy, onnx, onnxruntime, protobuf and DFC versions and the ``hw_arch`` values -- by
constructing the backend *there*, so option errors (an unsupported ``hw_arch``) surface before any trial. Every
problem is one line naming the path, what it lacks and how to fix it (:class:`~harness.errors.ConfigError` for a
bad path, :class:`~harness.errors.BackendUnavailable` for a missing piece).
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from harness.errors import BackendUnavailable, ConfigError

__all__ = ["ENV_VAR", "PROBE_TIMEOUT", "probe", "resolve_python"]

ENV_VAR = "HEFSWEEP_HAILO_PYTHON"
#: Seconds a probe may take: importing the real DFC imports TensorFlow (tens of seconds on a cold disk).
PROBE_TIMEOUT = 300.0

_HOW = (
    "install the Dataflow Compiler wheel from the Hailo Developer Zone into its own environment (DFC 3.33: Python "
    f"3.10, numpy 1.26) and set backend option python: /path/to/dfc-venv/bin/python (or ${ENV_VAR}); see the "
    "README, 'Pointing hefsweep at your DFC environment'"
)

# Runs under the DFC's interpreter: no f-strings before the version check, so an old Python still reports itself.
_PROBE = r"""
import json, sys
out = {"python": "%d.%d.%d" % tuple(sys.version_info[:3]), "executable": sys.executable, "errors": {}}
def emit():
    sys.stdout.write("\nHEFSWEEP-PROBE " + json.dumps(out) + "\n")
    sys.stdout.flush()
if sys.version_info < (3, 10):
    out["errors"]["python"] = "Python %s" % out["python"]
    emit()
    sys.exit(0)
import importlib.metadata as md
for key, dist in (("numpy", "numpy"), ("onnx", "onnx"), ("onnxruntime", "onnxruntime"), ("protobuf", "protobuf"),
                  ("tensorflow", "tensorflow"), ("hailo_dataflow_compiler", "hailo_dataflow_compiler")):
    try:
        out[key] = md.version(dist)
    except Exception:
        out[key] = None
try:
    import numpy
    out["numpy"] = numpy.__version__
except Exception as exc:
    out["errors"]["numpy"] = "%s: %s" % (type(exc).__name__, exc)
    emit()
    sys.exit(0)
try:
    import harness._worker, harness._stage_calls, harness.backends.hailo._backend
except Exception as exc:
    out["errors"]["harness"] = "%s: %s" % (type(exc).__name__, exc)
    emit()
    sys.exit(0)
try:
    from harness.backends import get_backend
    from harness.errors import HarnessError
    backend = get_backend("hailo", **json.loads(sys.argv[1]))
    out["versions"] = backend.versions()
    out["hw_archs"] = list(backend.supported_hw_archs)
except HarnessError as exc:
    out["errors"]["backend"] = {"class": type(exc).__name__, "obj": exc.obj, "seen": exc.seen,
                                "expected": exc.expected, "hint": exc.hint}
except Exception as exc:
    out["errors"]["backend"] = {"class": "BackendUnavailable", "obj": "backend 'hailo'",
                                "seen": "constructing it failed (%s: %s)" % (type(exc).__name__, exc),
                                "expected": "a working hailo_sdk_client", "hint": None}
emit()
"""


def resolve_python(option: Any = None) -> str:
    """The interpreter for the Hailo stages (see the module docstring); checked to exist and be executable.

    Raises:
        ConfigError: the configured path is missing, not a file or not executable.
        BackendUnavailable: nothing configured and ``hailo_sdk_client`` is not installed in this interpreter.
    """
    if option is not None and not isinstance(option, str | os.PathLike):
        raise ConfigError("backend option python", repr(option), "a path to a Python interpreter")
    where, value = ("backend option python", option) if option else (f"${ENV_VAR}", os.environ.get(ENV_VAR))
    if not value:
        try:
            here = importlib.util.find_spec("hailo_sdk_client") is not None
        except (ImportError, ValueError):
            here = False
        if here:
            return sys.executable
        raise BackendUnavailable(
            "backend 'hailo'",
            f"hailo_sdk_client is not installed in this interpreter ({sys.executable}) and no DFC interpreter is set",
            "the Python of an environment with the Hailo Dataflow Compiler",
            _HOW,
        )
    path = Path(os.path.expanduser(str(value)))
    if not path.exists():
        raise ConfigError(f"{where} {str(path)!r}", "no such file", "the python of your DFC environment", _HOW)
    if not path.is_file() or not os.access(path, os.X_OK):
        raise ConfigError(f"{where} {str(path)!r}", "not an executable file", "the python of your DFC environment", _HOW)
    return str(path if path.is_absolute() else path.absolute())


_CACHE: dict[tuple[str, str], dict[str, Any]] = {}


def probe(python: str, options: dict[str, Any], timeout: float = PROBE_TIMEOUT) -> dict[str, Any]:
    """Run ``python`` once and report what it has (cached per interpreter and options in this process).

    Returns:
        ``{"python", "executable", "numpy", "onnx", "onnxruntime", "protobuf", "tensorflow",
        "hailo_dataflow_compiler", "versions" (the backend's versions()), "hw_archs"}``.

    Raises:
        ConfigError: ``python`` does not run, or is not a Python >= 3.10.
        BackendUnavailable: numpy, hefsweep's worker side or ``hailo_sdk_client`` cannot be imported there.
        ConfigError: a backend option is invalid for that DFC (e.g. ``hw_arch``), as the backend reports it.
    """
    from harness.isolation import worker_env

    opts = {k: v for k, v in options.items() if k != "python"}
    key = (python, json.dumps([opts, os.environ.get("PYTHONPATH", "")], sort_keys=True, default=str))
    if key in _CACHE:
        return _CACHE[key]
    obj = f"DFC interpreter {python}"
    try:
        done = subprocess.run(
            [python, "-c", _PROBE, json.dumps(opts, default=str)],
            capture_output=True, text=True, timeout=timeout, env=worker_env(python), stdin=subprocess.DEVNULL,
        )  # fmt: skip
    except subprocess.TimeoutExpired:
        raise BackendUnavailable(obj, f"did not answer within {timeout:g} s", "a DFC environment that starts", _HOW) from None
    except OSError as exc:
        raise ConfigError(obj, f"cannot be run ({type(exc).__name__}: {exc})", "a Python interpreter", _HOW) from None
    lines = [ln for ln in done.stdout.splitlines() if ln.startswith("HEFSWEEP-PROBE ")]
    if not lines:
        said = " ".join((done.stderr or done.stdout).split()[-12:]) or f"exit code {done.returncode}, no output"
        raise ConfigError(obj, f"is not a working Python 3 ({said})", "a Python >= 3.10 interpreter", _HOW)
    out: dict[str, Any] = json.loads(lines[-1].removeprefix("HEFSWEEP-PROBE "))
    errors = out.pop("errors")
    if "python" in errors:
        raise ConfigError(obj, errors["python"], "Python >= 3.10 (DFC 3.33 supports 3.10-3.12)", _HOW)
    if "numpy" in errors:
        raise BackendUnavailable(obj, f"cannot import numpy ({errors['numpy']})", "numpy installed there", _HOW)
    if "harness" in errors:
        raise BackendUnavailable(
            obj, f"cannot import hefsweep's worker side ({errors['harness']})",
            "numpy and onnx installed there (hefsweep's worker side is put on its path by the harness)", _HOW,
        )  # fmt: skip
    if "backend" in errors:
        e = errors["backend"]
        cls = ConfigError if e["class"] == "ConfigError" else BackendUnavailable
        raise cls(f"{e['obj']} (in {python})", e["seen"], e["expected"], e["hint"] if cls is ConfigError else e["hint"] or _HOW)
    _CACHE[key] = out
    return out
