"""``hefsweep cache {info,prune}`` on the cache of a real small sweep, and failure replay across sweeps."""

from __future__ import annotations

import io
import os
import time
from pathlib import Path

import pytest

from harness.cache import CACHE_DIR_ENV, StageCache
from harness.cli.cache import Cache
from harness.space import load_space
from harness.sweep import run_sweep

pytestmark = pytest.mark.slow


@pytest.fixture(autouse=True)
def _registered(monkeypatch: pytest.MonkeyPatch) -> None:
    """Run through the real ``hefsweep`` entry point, registering the command if the table lacks it."""
    import harness.cli

    if Cache not in harness.cli.COMMANDS:
        monkeypatch.setattr(harness.cli, "COMMANDS", (*harness.cli.COMMANDS, Cache))
    monkeypatch.delenv(CACHE_DIR_ENV, raising=False)


def hefsweep(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    from harness.cli import main

    code = main(argv)
    cap = capsys.readouterr()
    return code, cap.out, cap.err.strip()


SPACE = """
study: {name}
checkpoint: {ckpt}
data: {{calibration: {data}/calib, evaluation: {data}/eval, eval_clips: 2, min_calibration_clips: 2}}
trials: 3
stage_timeout: 120
dimensions:
  width: 4000
  calib_size: 2
  calib_fill: crop
  calib_clip_length: [3200, 8000]
  override_set: [none, ghost]
override_sets:
  none: []
  ghost:
    - {{kind: precision16, layers: [no_such_layer]}}
"""
# crop cannot lengthen 3200 samples to W=4000 (calibrate fails); ghost names no layer (optimize fails)
COMBOS = [
    {"calib_clip_length": 8000, "override_set": "none"},
    {"calib_clip_length": 8000, "override_set": "ghost"},
    {"calib_clip_length": 3200, "override_set": "none"},
]


def _sweep(tmp: Path, ckpt: Path, data: Path, name: str) -> object:
    p = tmp / f"{name}.yaml"
    p.write_text(SPACE.format(name=name, ckpt=ckpt, data=data))
    return run_sweep(load_space(p), trials=3, root=tmp / "mlruns", stream=io.StringIO(), enqueue=COMBOS)


def test_cache_info_prune_and_failure_replay(
    tiny_checkpoint: Path, demo_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from mlflow import MlflowClient

    first = _sweep(tmp_path, tiny_checkpoint, demo_data, "one")
    assert first.signatures == {"optimize:OverrideTargetNotFound:no_such_layer": 1, "calibrate:FillPolicyError:crop": 1}
    cache = StageCache(tmp_path / "mlruns" / "cache")
    assert len(cache.scan(("failure",))) == 2

    # The same trials in a new study: every stage is a hit, both failures are replayed in milliseconds.
    second = _sweep(tmp_path, tiny_checkpoint, demo_data, "two")
    assert second.signatures == first.signatures and second.n_ok == 1
    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name("two").experiment_id], "tags.`hefsweep.role` = 'trial'")
    for r in runs:
        failed_stage = r.data.tags.get("hefsweep.failed_stage")
        for k, v in r.data.tags.items():
            if k.startswith("hefsweep.cached.") and k != f"hefsweep.cached.{failed_stage}":
                assert v == "true", (k, r.data.tags.get("hefsweep.signature"))
        if failed_stage:
            assert r.data.metrics[f"time_{failed_stage}_s"] < 0.25  # milliseconds in practice; slack for a busy machine
            arts = [a.path for a in client.list_artifacts(r.info.run_id, f"failed_{failed_stage}")]
            assert f"failed_{failed_stage}/cached_failure.json" in arts
    assert len(cache.scan(("failure",))) == 2 and not cache.scan(("failed", "tmp"))

    # info
    code, out, err = hefsweep(["cache", "info", "--root", str(tmp_path / "mlruns")], capsys)
    assert code == 0, err
    rows = {line.split()[0]: line.split() for line in out.splitlines()[2:] if line.strip()}
    assert rows["export"][1:3] == ["1", "0"] and rows["calibrate"][1:3] == ["1", "1"]
    assert rows["optimize"][1:3] == ["1", "1"] and rows["emulate"][1:3] == ["1", "0"]
    assert rows["noise"][1:3] == ["1", "0"]  # the per-layer noise table of the one passing trial
    assert rows["original"][1:3] == ["1", "0"]  # the original float model's outputs (the objective's reference)
    assert rows["total"][1:3] == ["9", "2"]
    assert "reuse/" in out and "failed/ 0" in out
    # HEFSWEEP_CACHE_DIR and --cache-dir point elsewhere
    monkeypatch.setenv(CACHE_DIR_ENV, str(tmp_path / "mlruns" / "cache"))
    code, out2, _ = hefsweep(["cache", "info", "--root", str(tmp_path / "nowhere")], capsys)
    assert code == 0 and out2 == out
    monkeypatch.delenv(CACHE_DIR_ENV)
    code, _, err = hefsweep(["cache", "info", "--cache-dir", str(tmp_path / "nowhere")], capsys)
    assert code == 1 and len(err.splitlines()) == 1
    assert "nowhere: does not exist; expected a cache written by `hefsweep sweep`" in err

    # prune: bad input is one line
    code, _, err = hefsweep(["cache", "prune", "--root", str(tmp_path / "mlruns"), "--stage", "exprot"], capsys)
    assert code == 1 and "--stage exprot: unknown stage; expected one of" in err and len(err.splitlines()) == 1
    code, _, err = hefsweep(["cache", "prune", "--root", str(tmp_path / "mlruns"), "--older-than", "-1"], capsys)
    assert code == 1 and "--older-than" in err

    # prune: leftovers only, dry run, failures only, one stage
    stale = cache.root / "tmp" / "export-0123456789ab-deadbeef"
    stale.mkdir()
    (stale / "model.onnx").write_bytes(b"x" * 1000)
    old = time.time() - 7200
    os.utime(stale / "model.onnx", (old, old))
    os.utime(stale, (old, old))
    code, out, _ = hefsweep(["cache", "prune", "--root", str(tmp_path / "mlruns")], capsys)
    assert code == 0 and "removed tmp" in out and "removed 0 entries, 0 failure records, 1 leftovers" in out
    assert "freed 1000 B" in out and not stale.exists()

    code, out, _ = hefsweep(["cache", "prune", "--root", str(tmp_path / "mlruns"), "--failures-only", "--dry-run"], capsys)
    assert code == 0 and out.count("would remove failure") == 2
    assert len(cache.scan(("failure",))) == 2
    code, out, _ = hefsweep(["cache", "prune", "--root", str(tmp_path / "mlruns"), "--failures-only"], capsys)
    assert out.count("removed failure") == 2 and not cache.scan(("failure",))
    assert len(cache.scan(("entry",))) == 9  # untouched by --failures-only (with the original-model stage)

    code, out, _ = hefsweep(
        ["cache", "prune", "--root", str(tmp_path / "mlruns"), "--stage", "export", "--older-than", "0"], capsys
    )
    assert code == 0 and "removed 1 entries" in out and not cache.scan(("trash",))
    assert [i.stage for i in cache.scan(("entry",))].count("export") == 0

    # after pruning, the failures run again (and are recorded again); export is rebuilt
    third = _sweep(tmp_path, tiny_checkpoint, demo_data, "three")
    assert third.signatures == first.signatures
    runs = client.search_runs([client.get_experiment_by_name("three").experiment_id], "tags.`hefsweep.role` = 'trial'")
    assert sorted(r.data.tags.get("hefsweep.cached.export") for r in runs) == ["false", "true", "true"]
    assert len(cache.scan(("failure",))) == 2
