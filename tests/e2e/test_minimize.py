"""``hefsweep minimize RUN_ID`` on a real small ONNX Runtime sweep.

The trial's override set has three overrides, four atoms: 16-bit on the output tensor and on the mask's
Sigmoid, plus two Hailo-only overrides that the ONNX Runtime backend ignores (so they are removable). On the
tiny model, 8-bit everywhere scores about 31.3 dB, 16-bit on the output about 32.8 dB, 16-bit on the Sigmoid
alone about 31.3 dB: with a floor of 32.3 dB only sets that keep ``precision16:output`` pass, and the minimal
set is exactly that atom.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from harness.cli.minimize import Minimize
from harness.space import load_space
from harness.sweep import run_sweep

pytestmark = pytest.mark.slow

FLOOR = 32.3

SPACE = """
study: mini
checkpoint: {ckpt}
data: {{calibration: {data}/calib, evaluation: {data}/eval, eval_clips: 3, min_calibration_clips: 2}}
trials: 1
stage_timeout: 120
dimensions:
  width: 4000
  calib_size: 4
  calib_fill: [repeat, crop]
  calib_clip_length: [null, 3200]
  override_set: [mix, none]
override_sets:
  none: []
  mix:
    - {{kind: precision16, layers: [output, "*Sigmoid*"]}}
    - {{kind: activation_clipping, layers: [input], value: 99.9}}
    - {{kind: negative_exponent, layers: [output]}}
"""


@pytest.fixture(autouse=True)
def _registered(monkeypatch: pytest.MonkeyPatch) -> None:
    import harness.cli

    if Minimize not in harness.cli.COMMANDS:
        monkeypatch.setattr(harness.cli, "COMMANDS", (*harness.cli.COMMANDS, Minimize))


def test_minimize_a_passing_trial(
    tiny_checkpoint: Path, demo_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from mlflow import MlflowClient

    from harness.cli import main

    space_file = tmp_path / "mini.yaml"
    space_file.write_text(SPACE.format(ckpt=tiny_checkpoint, data=demo_data))
    root = tmp_path / "mlruns"
    combos = [
        {"calib_fill": "repeat", "calib_clip_length": None, "override_set": "mix"},
        {"calib_fill": "crop", "calib_clip_length": 3200, "override_set": "none"},  # crop cannot lengthen: fails
    ]
    summary = run_sweep(load_space(space_file), trials=2, root=root, stream=io.StringIO(), enqueue=combos)
    assert summary.n_ok == 1 and summary.n_failed == 1
    client = MlflowClient(tracking_uri=f"sqlite:///{root / 'mlflow.db'}")
    exp = client.get_experiment_by_name("mini")
    trials = client.search_runs([exp.experiment_id], "tags.`hefsweep.role` = 'trial'")
    ok = next(r for r in trials if r.data.tags["hefsweep.status"] == "ok")
    bad = next(r for r in trials if r.data.tags["hefsweep.status"] == "failed")
    assert ok.data.metrics["si_snr_db"] >= FLOOR
    capsys.readouterr()

    # a failed run is refused with one line
    assert main(["minimize", bad.info.run_id, "--root", str(root)]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "trial did not pass (status failed, signature calibrate:FillPolicyError:crop)" in err and "expected a passing trial" in err
    assert main(["minimize", "0" * 32, "--root", str(root)]) == 1
    assert "not found" in capsys.readouterr().err
    # a floor the trial itself does not reach: nothing to minimize
    assert main(["minimize", ok.info.run_id, "--root", str(root), "--min-si-snr-db", "80"]) == 1
    assert "does not pass with its own override set 'mix'" in capsys.readouterr().err

    code = main(["minimize", ok.info.run_id, "--root", str(root), "--min-si-snr-db", str(FLOOR)])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "4 atoms [precision16:output, precision16:*Sigmoid*, activation_clipping:input, negative_exponent:output]" in out
    assert "minimal override set: 1 of 4 atoms [precision16:output]" in out

    ok = client.get_run(ok.info.run_id)
    minimal = json.loads(ok.data.tags["hefsweep.minimal_override_set"])
    assert minimal == {"name": "mix", "overrides": [{"kind": "precision16", "layers": ["output"], "value": None}]}
    art = json.loads(Path(client.download_artifacts(ok.info.run_id, "minimize/minimal_override_set.json")).read_text())
    assert art["atoms_removed"] == ["precision16:*Sigmoid*", "activation_clipping:input", "negative_exponent:output"]
    assert art["criterion"]["min_si_snr_db"] == FLOOR

    # every probe of the successful minimization is a child run of the sweep's parent
    probes = client.search_runs([exp.experiment_id], f"tags.`hefsweep.minimize.of` = '{ok.info.run_id}'")
    ours = [p for p in probes if p.info.run_id in {e["run_id"] for e in art["probes"]}]
    assert len(ours) == art["n_probes"] == out.count("  probe ") >= 4
    parent = ok.data.tags["mlflow.parentRunId"]
    for p in ours:
        assert p.data.tags["hefsweep.role"] == "minimize-probe"
        assert p.data.tags["mlflow.parentRunId"] == parent
        assert {"atoms", "status", "signature", "verdict", "overrides"} <= set(p.data.params)
        atoms = json.loads(p.data.params["atoms"])
        passed = p.data.params["verdict"] == "pass"
        assert passed == ("precision16:output" in atoms)  # the honest criterion: 16-bit output reaches the floor
        assert passed == (p.data.metrics["si_snr_db"] >= FLOOR)
    first = next(e for e in art["probes"] if e["probe"] == 1)
    assert first["phase"] == "full" and first["passed"]
    # the full-set probe is the trial itself: every stage came from the cache
    full = next(p for p in ours if p.info.run_id == first["run_id"])
    assert all(v == "true" for k, v in full.data.tags.items() if k.startswith("hefsweep.cached."))
    # the sweep's own trial count is untouched (probes are not trials)
    assert len(client.search_runs([exp.experiment_id], "tags.`hefsweep.role` = 'trial'")) == 2
