"""hefsweep: sweep harness for porting Conv-TasNet-style audio models to Hailo HEFs."""

import os

__version__ = "0.1.0"

# MLflow 3 sends usage telemetry by default: off (this harness runs on closed networks; it also costs ~20 ms
# per tracking call). A user who wants it can set the variable to "false".
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
