"""``import hefsweep``: the Python API (:mod:`harness.api`) under the project's name.

    import hefsweep
    result = hefsweep.sweep("search_spaces/demo.yaml", trials=4)

The implementation lives in the ``harness`` package (``harness.api``); this module only re-exports it.
"""

from harness import __version__
from harness.api import ExportResult, SweepResult, export, report, sweep

__all__ = ["ExportResult", "SweepResult", "__version__", "export", "report", "sweep"]
