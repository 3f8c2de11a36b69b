"""hefsweep: sweep harness for porting Conv-TasNet-style audio models to Hailo HEFs.

Two sides, two interpreters:

- **The harness side** (everything not listed below: CLI, sweep, Optuna/MLflow tracking, the PyTorch model and its
  export, calibration, metrics, reports) runs in hefsweep's own environment (Python 3.11, numpy 2, torch, MLflow).
- **The worker side** (:data:`WORKER_SIDE`): the stage worker loop, the stage entry points, the backend protocol's
  dataclasses and the Hailo backend. These modules run in the stage worker process (:mod:`harness.isolation`),
  which for the Hailo backend is the interpreter of the user's own DFC environment (backend option ``python:`` /
  ``HEFSWEEP_HAILO_PYTHON``; DFC 3.33 pins Python 3.10, numpy 1.26.4, onnx 1.16.0, protobuf 3.20.3). They import
  only the standard library, numpy (1.26 API) and onnx (1.16 API), and run on Python 3.10
  (``tests/contract/test_worker_side.py`` checks both, under ``.venv-dfc``). The harness process never imports
  ``hailo_sdk_client``.
"""

import os

__version__ = "0.1.0"

#: Modules that run in the stage worker, possibly under the DFC's interpreter (see the module docstring).
WORKER_SIDE = (
    "harness",
    "harness._worker",
    "harness._stage_calls",
    "harness.errors",
    "harness.failures",
    "harness.testing",
    "harness.backends",
    "harness.backends._protocol",
    "harness.backends._overrides",
    "harness.backends.hailo",
    "harness.backends.hailo._backend",
    "harness.backends.hailo._layers",
    "harness.backends.hailo._rules",
    "harness.backends.hailo._script",
    "harness.backends.hailo._segments",
)

# MLflow 3 sends usage telemetry by default: off (this harness runs on closed networks; it also costs ~20 ms
# per tracking call). A user who wants it can set the variable to "false".
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
