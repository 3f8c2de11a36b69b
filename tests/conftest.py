"""Shared fixtures: every test runs in its own temporary folder; small models and audio made on the fly."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

TINY_ARGS = dict(
    n_src=2,
    n_filters=16,
    kernel_size=16,
    stride=8,
    bn_chan=16,
    hid_chan=32,
    skip_chan=16,
    conv_kernel_size=3,
    n_blocks=2,
    n_repeats=1,
    norm_type="gLN",
    mask_act="sigmoid",
    encoder_activation="relu",
    sample_rate=16000,
)


@pytest.fixture(autouse=True)
def _isolate_cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Run in a fresh folder with MLflow/Optuna defaults pointed inside it."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("HEFSWEEP_CACHE_DIR", raising=False)
    monkeypatch.delenv("HEFSWEEP_THREADS", raising=False)
    monkeypatch.delenv("HEFSWEEP_HAILO_PYTHON", raising=False)
    os.environ.setdefault("MLFLOW_ENABLE_ASYNC_LOGGING", "false")


FAKES = Path(__file__).resolve().parent / "fakes"


@pytest.fixture
def fake_dfc(monkeypatch: pytest.MonkeyPatch):
    """Make the fake ``hailo_sdk_client`` importable in this process for one test, and unload it afterwards."""
    import sys

    monkeypatch.syspath_prepend(str(FAKES))
    yield
    for name, mod in list(sys.modules.items()):
        if str(getattr(mod, "__file__", "") or "").startswith(str(FAKES)):
            del sys.modules[name]


#: The DFC's own environment (DFC 3.33 pins, the fake SDK on its path), built by `make dfc-venv` (and `make test`).
DFC_VENV_PYTHON = Path(__file__).resolve().parents[1] / ".venv-dfc" / "bin" / "python"


@pytest.fixture(scope="session")
def dfc_python() -> Path:
    """The interpreter of ``.venv-dfc``: Hailo stages run there as they would in a user's DFC environment."""
    if not DFC_VENV_PYTHON.exists():
        pytest.fail(f"{DFC_VENV_PYTHON} is missing: run `make dfc-venv` (make test builds it)")
    return DFC_VENV_PYTHON


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An asteroid-format checkpoint of a tiny random-init Conv-TasNet (gLN, PReLU)."""
    import torch

    from harness.model import ConvTasNet4D, ConvTasNetConfig
    from harness.model._checkpoint import save_checkpoint

    torch.manual_seed(0)
    model = ConvTasNet4D(ConvTasNetConfig.from_model_args(TINY_ARGS))
    path = tmp_path_factory.mktemp("ckpt") / "tiny.pt"
    save_checkpoint(model, path)
    return path


@pytest.fixture(scope="session")
def demo_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small synthetic calibration + evaluation set."""
    from harness.audio import make_demo_dataset

    root = tmp_path_factory.mktemp("data")
    make_demo_dataset(root, seed=0, n_calib=8, calib_seconds=1.0, n_eval=3, eval_seconds=0.5)
    return root


@pytest.fixture(scope="session")
def demo_data_full(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The data `hefsweep demo-data` writes (24 calibration files, 8 evaluation mixtures), for the shipped spaces."""
    from harness.audio import make_demo_dataset

    root = tmp_path_factory.mktemp("demo_full")
    make_demo_dataset(root, seed=0)
    return root
