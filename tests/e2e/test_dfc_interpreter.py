"""The ``python:`` backend option: a DFC interpreter that is missing, broken or incomplete is one line, exit 1,
before any trial; nothing is written to the stores."""

from __future__ import annotations

import glob
import os
import subprocess
import sys
from pathlib import Path

import pytest

from harness.cli import main

pytestmark = pytest.mark.slow

SPACE = """
study: dfc
checkpoint: {ckpt}
backend: hailo
backend_options: {{hw_arch: {arch}, python: {python}}}
data: {{calibration: {calib}, evaluation: {eval}, eval_clips: 2, min_calibration_clips: 2}}
trials: 1
dimensions:
  width: 2048
  calib_size: 2
"""


def _old_python() -> str | None:
    for path in sorted(glob.glob(os.path.expanduser("~/.pyenv/versions/3.[6-9].*/bin/python3"))):
        return path
    return None


def _cases(tmp: Path) -> dict[str, tuple[str, list[str]]]:
    """name -> (python value, fragments of the one-line error)."""
    not_exec = tmp / "not_exec"
    not_exec.write_text("print('hi')\n")
    not_python = tmp / "not_python"
    not_python.write_text("#!/bin/sh\necho 'I am no python'\nexit 3\n")
    not_python.chmod(0o755)
    bare = tmp / "bare-venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(bare)], check=True, timeout=120)
    cases = {
        "missing": (str(tmp / "nope" / "python"), ["no such file", "backend option python"]),
        "not executable": (str(not_exec), ["not an executable file"]),
        "not a python": (str(not_python), ["is not a working Python 3"]),
        # the harness's own venv has numpy but no hailo_sdk_client
        "no sdk": (sys.executable, ["hailo_sdk_client is not importable", "Developer Zone"]),
    }
    old = _old_python()
    if old:
        cases["python < 3.10"] = (old, ["Python 3.", "expected Python >= 3.10"])
    cases["no numpy"] = (str(bare / "bin" / "python"), ["cannot import numpy"])
    return cases


def test_bad_dfc_interpreters_are_one_line_before_any_trial(
    tiny_checkpoint: Path, demo_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    monkeypatch.delenv("PYTHONPATH", raising=False)  # no fake SDK anywhere
    for name, (python, fragments) in _cases(tmp_path).items():
        root = tmp_path / f"root-{name.replace(' ', '_')}"
        space = tmp_path / f"{name.replace(' ', '_')}.yaml"
        space.write_text(SPACE.format(ckpt=tiny_checkpoint, calib=demo_data / "calib", eval=demo_data / "eval",
                                      arch="hailo8", python=python))  # fmt: skip
        code = main(["sweep", str(space), "--root", str(root)])
        err = capsys.readouterr().err.strip()
        assert code == 1, (name, err)
        assert len(err.splitlines()) == 1, (name, err)
        assert python in err or name == "no numpy" and "bare-venv" in err, (name, err)
        for fragment in fragments:
            assert fragment in err, (name, fragment, err)
        assert not (root / "optuna.db").exists(), name  # refused before any store was touched


def test_an_option_the_dfc_rejects_is_named_with_its_interpreter(
    tiny_checkpoint: Path, demo_data: Path, dfc_python: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    space = tmp_path / "arch.yaml"
    space.write_text(SPACE.format(ckpt=tiny_checkpoint, calib=demo_data / "calib", eval=demo_data / "eval",
                                  arch="hailo99", python=dfc_python))  # fmt: skip
    code = main(["sweep", str(space), "--root", str(tmp_path / "r")])
    err = capsys.readouterr().err.strip()
    assert code == 1 and len(err.splitlines()) == 1
    assert "backend option hw_arch" in err and "'hailo99'" in err and str(dfc_python) in err and "hailo8" in err
