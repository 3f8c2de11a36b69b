"""The fake DFC's script parser takes the compiler (allocator) commands in the model-zoo syntax and rejects misspelt
ones as malformed lines, like every other command; the levers have no effect on its allocation (README [I]).

Runs in ``.venv-dfc`` (the fake's own interpreter, Python 3.10), as the Hailo stages do.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FAKES = ROOT / "tests" / "fakes"

PROBE = r"""
import json, sys
from hailo_sdk_client._fake.alls import parse_script
good, bad = json.loads(sys.stdin.read())
out = {"good": {}, "bad": {}}
for line in good:
    cfg = parse_script(line, "net", ["net/conv1"])
    out["good"][line] = [cfg.compiler, cfg.other]
for line in bad:
    try:
        parse_script(line, "net", ["net/conv1"])
        out["bad"][line] = "accepted"
    except Exception as exc:
        out["bad"][line] = [type(exc).__name__, str(exc)]
print(json.dumps(out))
"""

GOOD = [  # each form appears in hailo_model_zoo cfg/alls (docs/allocator_levers.md)
    "performance_param(compiler_optimization_level=max)",
    "performance_param(compiler_optimization_level=1)",
    "performance_param(optimize_for_batch=1, compiler_optimization_level=0)",
    "resources_param(max_compute_utilization=0.5, max_control_utilization=0.5, max_memory_utilization=0.5)",
    "resources_param(max_utilization=0.9, max_memory_utilization=0.85)",
    "resources_param(strategy=greedy, max_compute_utilization=0.8, max_control_utilization=0.85, "
    "max_memory_utilization=0.8)",
    "context_switch_param(mode=enabled)",
    "context_switch_param(mode=allowed)",
    "allocator_param(timeout=25m)",
    "allocator_param(timeout=5h, enable_post_split_average_buffers=False)",
    "allocator_param(timeout=43200)",
]
BAD = [
    "performance_param(compiler_optimisation_level=max)",
    "performance_param(compiler_optimization_level=3)",
    "resources_param(max_compute_utilisation=0.8)",
    "resources_param(max_memory_utilization=-1)",
    "context_switch_param(mode=on)",
    "context_switch_param(enabled)",
    "allocator_param(timeout=forever)",
    "allocator_param(time_out=600)",
    "resource_param(max_utilization=0.8)",
    "performance_param()",
]


def test_compiler_commands_accepted_and_misspellings_rejected(dfc_python: Path) -> None:
    proc = subprocess.run(
        [str(dfc_python), "-c", PROBE], input=json.dumps([GOOD, BAD]), capture_output=True, text=True,
        env={"PYTHONPATH": str(FAKES)}, timeout=120, check=True,
    )  # fmt: skip
    out = json.loads(proc.stdout)
    for line in GOOD:
        compiler, other = out["good"][line]
        assert other == [], line
        assert list(compiler) == [line.split("(", 1)[0]], line
    assert out["good"]["context_switch_param(mode=enabled)"][0] == {"context_switch_param": {"mode": "enabled"}}
    assert out["good"]["allocator_param(timeout=25m)"][0] == {"allocator_param": {"timeout": "25m"}}
    for line in BAD:
        cls, msg = out["bad"][line]
        assert cls == "BackendScriptParserException", line
        assert msg == f"Parsing failed at:\n>!<{line}", line
