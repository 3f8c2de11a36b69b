"""The repair loop's allocator levers through the fake DFC, in the DFC's own interpreter (``.venv-dfc``).

A model too wide for the fake's allocator even at 8 bits fails every compile with "Agent infeasible". The loop
drops the 16-bit overrides, raises compression and then writes each compiler lever into the model script; the fake
parses and accepts every line (the failure stays the allocator's, never a script error) and, having no public
evidence of what the levers do, still fails: the loop stops with every lever tried once and no compile lever
recorded. The unit tests (tests/unit/test_repair_levers.py) cover a compile that passes after a lever.
"""

from __future__ import annotations

import json
import subprocess
import textwrap
from pathlib import Path

from harness.isolation import worker_env

#: Latent 2499 x 32 channels: 78 KiB rows at 8 bits, over the fake's 64 KiB allocator budget (README [I]).
WIDE = 20000

LOOP = textwrap.dedent("""
    import json, sys
    from pathlib import Path
    import numpy as np
    from harness.backends import Override, OverrideSet, QuantSettings, get_backend
    from harness.backends.hailo import explain, layer_table
    from harness.failures import classify_with_log
    from harness.repair import Attempt, run_repairs

    onnx_path, work = Path(sys.argv[1]), Path(sys.argv[2])
    be = get_backend("hailo")
    tr = be.translate(onnx_path, work / "t")
    calib = np.random.default_rng(0).standard_normal((2, 1, 1, tr.width)).astype(np.float32) * 0.1
    scripts = []

    def attempt(ovs):
        d = work / f"try{len(scripts)}"
        stage = "optimize"
        try:
            opt = be.optimize(tr, calib, ovs, QuantSettings(), d / "o")
            scripts.append((d / "o" / "model_script.alls").read_text())
            stage = "compile"
            return Attempt(value=str(be.compile(opt, d / "c").path))
        except Exception as exc:  # the pipeline gets (class name, message, stage log) from its worker
            log = Path("allocator.log").read_text() if Path("allocator.log").exists() else ""
            f = classify_with_log(stage, type(exc).__name__, str(exc), log)
            if not f.known:
                raise
            return Attempt(f, explain(f, layer_table(tr)).resolved_layer)

    out = run_repairs(attempt, OverrideSet("p16", (Override("precision16", ("*",)),)), max_repairs=8)
    print(json.dumps({"log": out.log.to_dict(), "tags": out.log.tags(), "scripts": scripts}))
""")


def test_levers_reach_the_fake_dfc_and_are_accepted(dfc_python: Path, tiny_checkpoint: Path, tmp_path: Path) -> None:
    from harness.export import export_onnx
    from harness.model import load_checkpoint
    from harness.substitutions import SubstitutionSpec, apply_substitutions

    model, _ = apply_substitutions(
        load_checkpoint(tiny_checkpoint), SubstitutionSpec(norm="cLN", decoder="per_source", mask_mul="per_source")
    )
    onnx_path = export_onnx(model, WIDE, tmp_path / "wide.onnx").path
    done = subprocess.run(
        [str(dfc_python), "-c", LOOP, str(onnx_path), str(tmp_path / "work")],
        capture_output=True, text=True, env=worker_env(), cwd=tmp_path, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    log = out["log"]
    fixes = [e["fix"] for e in log["entries"]]
    assert fixes == [
        "drop:precision16",
        "compression_level=2",
        "performance_param=max",
        "resources_param=1.0",
        "context_switch_param=enabled",
        None,
    ]
    # every attempt reached the allocator: the script with the levers was parsed and accepted by the fake
    assert {e["signature"] for e in log["entries"]} == {"compile:BackendAllocatorException:agent_infeasible"}
    assert log["stop_reason"] == "repeated_signature" and log["compile_lever"] is None
    assert "repair.compile_lever" not in out["tags"]
    scripts = out["scripts"]
    assert len(scripts) == 6
    assert "precision_mode=a16_w16" in scripts[0] and "precision_mode" not in scripts[1]
    assert "model_optimization_flavor(compression_level=2)" in scripts[2]
    last = scripts[-1].splitlines()
    assert last[-3:] == [
        "performance_param(compiler_optimization_level=max)",
        "resources_param(max_compute_utilization=1.0, max_control_utilization=1.0, max_memory_utilization=1.0)",
        "context_switch_param(mode=enabled)",
    ]


COMPILE = textwrap.dedent("""
    import json, sys, zipfile
    from pathlib import Path
    import numpy as np
    from harness.backends import Override, OverrideSet, QuantSettings, get_backend

    onnx_path, work = Path(sys.argv[1]), Path(sys.argv[2])
    be = get_backend("hailo")
    tr = be.translate(onnx_path, work / "t")
    calib = np.random.default_rng(0).standard_normal((2, 1, 1, tr.width)).astype(np.float32) * 0.1
    opt = be.optimize(tr, calib, OverrideSet("lv", (Override("performance_param", (), "max"),)), QuantSettings(), work / "o")
    # what the quantized HAR's runner holds before compile, and what the compiled HAR holds after it
    with zipfile.ZipFile(opt.path) as z:
        before = json.loads(z.read("state.json"))["script"]
    compiled = be.compile(opt, work / "c")
    with zipfile.ZipFile(work / "c" / "model_compiled.har") as z:
        after = json.loads(z.read("state.json"))["script"]
    print(json.dumps({"levers": opt.info.get("compiler_levers"), "before": before, "after": after}))
""")


def test_compile_appends_the_levers_before_compiling(dfc_python: Path, tiny_checkpoint: Path, tmp_path: Path) -> None:
    """dfc_api.md §2.1 [C]: compiler-side lines are appended before ``compile()`` (MZ ``compile_model``); whether a
    quantized HAR keeps them for a fresh runner is not public, so the backend appends them to the runner it compiles
    with."""
    from harness.export import export_onnx
    from harness.model import load_checkpoint
    from harness.substitutions import SubstitutionSpec, apply_substitutions

    model, _ = apply_substitutions(
        load_checkpoint(tiny_checkpoint), SubstitutionSpec(norm="cLN", decoder="per_source", mask_mul="per_source")
    )
    onnx_path = export_onnx(model, 2048, tmp_path / "narrow.onnx").path
    done = subprocess.run(
        [str(dfc_python), "-c", COMPILE, str(onnx_path), str(tmp_path / "work")],
        capture_output=True, text=True, env=worker_env(), cwd=tmp_path, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    line = "performance_param(compiler_optimization_level=max)"
    assert out["levers"] == [line]
    assert out["after"].rstrip("\n").splitlines()[-1] == line
    assert out["after"].count(line) == out["before"].count(line) + 1
