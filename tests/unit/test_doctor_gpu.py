"""doctor's GPU line: ok only when nvidia-smi ran and listed a GPU."""

from __future__ import annotations

import subprocess
from typing import Any

import pytest

from harness import doctor


def _smi(monkeypatch: pytest.MonkeyPatch, run: Any) -> None:
    monkeypatch.setattr(doctor.shutil, "which", lambda name: "/usr/bin/nvidia-smi")
    monkeypatch.setattr(doctor.subprocess, "run", run)


def test_nvidia_smi_that_raises_is_not_ok(monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(*_a: Any, **_k: Any) -> Any:
        raise PermissionError(13, "Permission denied", "/usr/bin/nvidia-smi")

    _smi(monkeypatch, boom)
    check = doctor._gpu()
    assert not check.ok and "nvidia-smi failed" in check.detail and "Permission denied" in check.detail

    def hangs(*_a: Any, **_k: Any) -> Any:
        raise subprocess.TimeoutExpired("nvidia-smi", 10)

    _smi(monkeypatch, hangs)
    assert not doctor._gpu().ok


def test_nvidia_smi_that_fails_is_not_ok(monkeypatch: pytest.MonkeyPatch) -> None:
    said = "NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver."
    _smi(monkeypatch, lambda *_a, **_k: subprocess.CompletedProcess([], 9, said + "\n", ""))
    check = doctor._gpu()
    assert not check.ok and "exited 9" in check.detail and "NVIDIA driver" in check.detail


def test_a_listed_gpu_is_ok(monkeypatch: pytest.MonkeyPatch) -> None:
    line = "GPU 0: NVIDIA A100-SXM4-40GB (UUID: GPU-1234)"
    _smi(monkeypatch, lambda *_a, **_k: subprocess.CompletedProcess([], 0, line + "\n", ""))
    check = doctor._gpu()
    assert check.ok and check.detail == line
    _smi(monkeypatch, lambda *_a, **_k: subprocess.CompletedProcess([], 0, "", ""))
    assert not doctor._gpu().ok
