"""The two sides: the worker side runs under the DFC's own pins, the harness side never imports the SDK.

``harness.WORKER_SIDE`` lists the modules that run in the stage worker, which for the Hailo backend is the user's
DFC environment (Python 3.10, numpy 1.26.4, onnx 1.16.0, protobuf 3.20.3). These tests run them under
``.venv-dfc`` (those pins, the fake SDK on its path) and check their syntax against Python 3.10 with vermin.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import harness
from harness.isolation import worker_env

#: Third-party top-level modules the worker side may load (numpy, onnx and protobuf's namespace package; the SDK
#: and what it brings only once a Hailo backend is constructed).
ALLOWED = {"numpy", "onnx", "google", "typing_extensions", "_distutils_hack", "cython_runtime"}
VERMIN = str(Path(sys.executable).parent / "vermin")  # the test extra's console script
SDK = {"hailo_sdk_client", "hailo_model_optimization", "hailo_sdk_common", "onnxruntime"}

_IMPORTS = textwrap.dedent("""
    import importlib, json, sys
    import harness
    for m in harness.WORKER_SIDE:
        importlib.import_module(m)
    before = sorted(sys.modules)
    from harness.backends import get_backend
    backend = get_backend("hailo", hw_arch="hailo8")
    import numpy, onnx
    print(json.dumps({
        "python": sys.version_info[:2], "numpy": numpy.__version__, "onnx": onnx.__version__,
        "before": before, "after": sorted(sys.modules), "versions": backend.versions(),
        "stdlib": sorted(sys.stdlib_module_names),
    }))
""")


def _run(python: Path, code: str) -> dict:
    done = subprocess.run([str(python), "-c", code], capture_output=True, text=True, env=worker_env(), timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def _third_party(modules: list[str], stdlib: set[str]) -> set[str]:
    return {m.split(".")[0] for m in modules} - stdlib - {"harness", "__main__", "__mp_main__"} - {
        m for m in {x.split(".")[0] for x in modules} if m.startswith("_cython")
    }


def test_worker_side_imports_under_the_dfc_pins(dfc_python: Path) -> None:
    facts = _run(dfc_python, _IMPORTS)
    print(f"worker side under {dfc_python}: Python {facts['python']}, numpy {facts['numpy']}, onnx {facts['onnx']}")
    assert facts["numpy"] == "1.26.4" and facts["onnx"] == "1.16.0"
    assert tuple(facts["python"]) >= (3, 10)
    stdlib = set(facts["stdlib"])
    loaded = {m for m in facts["before"] if m == "harness" or m.startswith("harness.")}
    assert loaded <= set(harness.WORKER_SIDE), f"worker side imports modules not declared: {loaded - set(harness.WORKER_SIDE)}"
    assert _third_party(facts["before"], stdlib) <= ALLOWED, _third_party(facts["before"], stdlib) - ALLOWED
    assert _third_party(facts["after"], stdlib) <= ALLOWED | SDK
    assert facts["versions"]["hailo_dfc"] == "3.33.0"


def test_worker_side_is_python_3_10_syntax() -> None:
    files = [importlib.util.find_spec(m).origin for m in harness.WORKER_SIDE]  # type: ignore[union-attr]
    done = subprocess.run(
        [VERMIN, "--target=3.10-", "--no-tips", "--violations", "--eval-annotations", *files],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr


def test_vermin_catches_what_3_10_lacks(tmp_path: Path) -> None:
    """The syntax check can fail: a 3.11-only module and method are reported."""
    bad = tmp_path / "bad.py"
    bad.write_text("import tomllib\nimport datetime\nprint(datetime.UTC)\n")
    done = subprocess.run([VERMIN, "--target=3.10-", "--no-tips", "--violations", str(bad)],
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert done.returncode != 0 and "tomllib" in done.stdout


def test_the_harness_process_never_imports_the_sdk(dfc_python: Path) -> None:
    """Versions, timeouts and the interpreter come from the DFC's interpreter; the harness loads none of the SDK."""
    code = textwrap.dedent(f"""
        import json, sys
        import harness.cli, harness.sweep, harness.pipeline, harness.doctor
        from harness.backends import BackendSpec
        spec = BackendSpec("hailo", (("hw_arch", "hailo8"), ("python", {str(dfc_python)!r})))
        from harness.doctor import run_checks
        checks = run_checks("hailo", "sqlite:///x/optuna.db", "sqlite:///x/mlflow.db", options=dict(spec.options))
        print(json.dumps({{"versions": spec.versions(), "python": spec.interpreter(),
                          "compile_timeout": spec.timeout("compile", 300), "optimize_timeout": spec.timeout("optimize", 300),
                          "checks": [[c.name, c.ok, c.detail] for c in checks],
                          "sdk": sorted(m for m in sys.modules if m.startswith(("hailo", "tensorflow")))}}))
    """)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["sdk"] == []
    assert out["versions"] == {"hailo_dfc": "3.33.0", "hw_arch": "hailo8"}
    assert out["python"] == str(dfc_python)
    assert out["compile_timeout"] == 3600.0 and out["optimize_timeout"] == 300.0
    checks = {name: (ok, detail) for name, ok, detail in out["checks"]}
    assert checks["DFC interpreter"][0] and "numpy 1.26.4" in checks["DFC interpreter"][1]
    assert "Python 3.1" in checks["DFC interpreter"][1] and "onnx 1.16.0" in checks["DFC interpreter"][1]
    assert checks["Hailo DFC (hailo_sdk_client)"] == (True, "3.33.0")
    assert "hailo8" in checks["hw_arch values"][1]
    assert not any(name.startswith("DFC interpreter ") for name in checks)  # no pin conflicts in .venv-dfc


def test_pin_conflicts_are_named_one_line_each(monkeypatch: pytest.MonkeyPatch) -> None:
    """The harness's own interpreter (numpy 2, onnx >= 1.17) used as a DFC interpreter: each conflict is a line."""
    from harness import doctor

    fake = Path(__file__).resolve().parents[1] / "fakes"
    monkeypatch.setenv("PYTHONPATH", str(fake))
    checks = {c.name: c for c in doctor.run_checks("hailo", "sqlite:///x/o.db", "sqlite:///x/m.db", python=sys.executable)}
    assert checks["DFC interpreter numpy"].ok is False and "numpy 1.26.4" in checks["DFC interpreter numpy"].detail
    assert checks["DFC interpreter onnx"].ok is False and "onnx.mapping" in checks["DFC interpreter onnx"].detail
    assert all("\n" not in c.detail for c in checks.values())
