"""A sweep through the Hailo backend with the fake DFC (tests/fakes): repairs, signatures, a HEF."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest

from harness.space import load_space
from harness.sweep import run_sweep

pytestmark = pytest.mark.slow

FAKES = Path(__file__).resolve().parents[1] / "fakes"


def test_hailo_sweep_repairs_and_produces_a_hef(
    tiny_checkpoint: Path, demo_data: Path, dfc_python: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The DFC stages run in .venv-dfc (numpy 1.26.4, the fake SDK); the harness process never imports the SDK."""
    import sys

    from mlflow import MlflowClient

    monkeypatch.delenv("PYTHONPATH", raising=False)  # the fake is on .venv-dfc's path only
    assert "hailo_sdk_client" not in sys.modules
    p = tmp_path / "h.yaml"
    p.write_text(f"""
study: h
checkpoint: {tiny_checkpoint}
backend: hailo
backend_options: {{hw_arch: hailo8, python: {dfc_python}}}
data: {{calibration: {demo_data / 'calib'}, evaluation: {demo_data / 'eval'}, eval_clips: 2, min_calibration_clips: 2}}
stage_timeout: 120
dimensions:
  norm: [gLN, cLN]
  gln_stats: split
  decoder: per_source
  mask_mul: per_source
  width: [2048, 16000]
  calib_size: 4
  override_set: [none, ghost]
override_sets:
  none: []
  ghost:
    - {{kind: precision16, layers: [ne_activation_avgpool2]}}
""")
    combos = [{"norm": "gLN", "width": 16000, "override_set": "none"},
              {"norm": "cLN", "width": 2048, "override_set": "none"},
              {"norm": "gLN", "width": 2048, "override_set": "ghost"}]  # fmt: skip
    summary = run_sweep(load_space(p), trials=3, root=tmp_path / "mlruns", stream=io.StringIO(), enqueue=combos)
    assert summary.n_trials == 3
    assert "hailo_sdk_client" not in sys.modules  # versions, stages and diagnoses never loaded it here

    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}")
    exp = client.get_experiment_by_name("h")
    runs = client.search_runs([exp.experiment_id], "tags.`hefsweep.role` = 'trial'", order_by=["start_time ASC"])
    by_cfg = {(r.data.params["norm"], r.data.params["width"], r.data.params["override_set"]): r for r in runs}
    gln, cln = by_cfg[("gLN", "16000", "none")], by_cfg[("cLN", "2048", "none")]

    # gLN at W=16000 fails first on a variance pool's long kernel (the seed); cLN does not
    assert gln.data.tags["hefsweep.repair.first_signature"].startswith(
        "optimize:NegativeSlopeExponentNonFixable:convtas/ne_activation_avgpool"
    )
    assert not cln.data.tags["hefsweep.repair.first_signature"].startswith("optimize:NegativeSlope")

    # every DFC stage ran under .venv-dfc's interpreter, with the DFC environment's numpy
    trial = json.loads(Path(client.download_artifacts(cln.info.run_id, "trial.json")).read_text())
    text = json.dumps(trial)
    assert f'"executable": "{dfc_python}"' in text and '"numpy": "1.26.4"' in text and '"onnx": "1.16.0"' in text
    # the DFC's own log files were written into the stage's folder (the worker runs there), not here
    assert not list(Path.cwd().glob("*.log"))
    assert any((tmp_path / "mlruns" / "cache").rglob("allocator.log"))

    # the repair loop moves gLN past its optimize failure in one pass: the fix goes to the failing pool's role
    # (every GlobLN variance pool at once, role:gln_var_pool), not to the one named layer
    log = json.loads(Path(client.download_artifacts(gln.info.run_id, "compile_failure.json")).read_text())
    sigs = [e["signature"] for e in log["entries"] if e.get("signature")]
    assert sigs == ["optimize:NegativeSlopeExponentNonFixable:convtas/ne_activation_avgpool2"]
    assert log["entries"][0]["fix"] == "negative_exponent:role:gln_var_pool"
    assert gln.data.tags["hefsweep.repair.signature_changed"] == "true"
    assert gln.data.tags["hefsweep.repair.final_signature"] == "success"  # past optimize, and compiled

    # at least one trial ends with a HEF in its run
    hefs = [r for r in runs if any(a.path.endswith(".hef") for a in client.list_artifacts(r.info.run_id, "compiled"))]
    assert hefs and all(r.data.tags["hefsweep.status"] == "ok" for r in hefs)
    assert all("si_snr_db" in r.data.metrics for r in hefs)
    assert any(k.startswith("hefsweep.version.hailo") for k in runs[0].data.tags)

    # an override naming an optimizer-invented layer never reaches a model script as written
    for r in runs:
        for a in client.list_artifacts(r.info.run_id, "optimize"):
            if a.path.endswith(".alls"):
                assert "ne_activation" not in Path(client.download_artifacts(r.info.run_id, a.path)).read_text()


def test_screen_on_ort_and_compile_only_the_top_k(
    tiny_checkpoint: Path, demo_data: Path, dfc_python: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Multi-fidelity: trials are screened on ONNX Runtime first; of the rest, only the top-1 so far compiles."""
    from mlflow import MlflowClient

    monkeypatch.setenv("HEFSWEEP_HAILO_PYTHON", str(dfc_python))
    p = tmp_path / "mf.yaml"
    p.write_text(f"""
study: mf
checkpoint: {tiny_checkpoint}
backend: hailo
data: {{calibration: {demo_data / 'calib'}, evaluation: {demo_data / 'eval'}, eval_clips: 2, min_calibration_clips: 2}}
stage_timeout: 120
screen: {{keep_fraction: 0.5, min_screened: 2}}
compile_top_k: 1
dimensions:
  norm: cLN
  decoder: per_source
  mask_mul: per_source
  width: 2048
  calib_size: [2, 4, 6]
  calib_fill: [repeat, pad]
""")
    # best-calibrated first, so later trials rank below an earlier one and are not compiled (deterministic fake)
    combos = [{"calib_size": c, "calib_fill": f} for c in (6, 4, 2) for f in ("pad", "repeat")]
    summary = run_sweep(load_space(p), trials=6, root=tmp_path / "mlruns", stream=io.StringIO(), enqueue=combos)
    assert summary.n_trials == 6

    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}")
    exp = client.get_experiment_by_name("mf")
    runs = client.search_runs([exp.experiment_id], "tags.`hefsweep.role` = 'trial'", order_by=["start_time ASC"])
    assert all("screen_si_snr_db" in r.data.metrics for r in runs)  # every trial was screened on ort
    screened_out = [r for r in runs if r.data.tags.get("hefsweep.screen") == "screened_out"]
    ran = [r for r in runs if r.data.tags.get("hefsweep.status") == "ok"]
    assert screened_out and ran and len(screened_out) + len(ran) == 6
    compiled = [r for r in ran if r.data.tags["hefsweep.compiled"] == "true"]
    skipped = [r for r in ran if r.data.tags["hefsweep.compiled"] == "false"]
    assert compiled and skipped  # optimize many, compile few
    for r in compiled:
        assert [a.path for a in client.list_artifacts(r.info.run_id, "compiled")] == ["compiled/model.hef"]
    for r in skipped:
        assert client.list_artifacts(r.info.run_id, "compiled") == []
        # a trial is compiled only when it is the best so far: the skipped ones rank below an earlier one
        earlier = [c for c in ran if c.info.start_time < r.info.start_time]
        assert any(c.data.metrics["si_snr_db"] >= r.data.metrics["si_snr_db"] for c in earlier)


def test_the_shipped_hailo_space_reaches_hefs_with_no_manual_step(
    demo_data_full: Path, dfc_python: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    """`hefsweep sweep search_spaces/convtasnet_hailo.yaml --backend hailo --trials 8` on the demo checkpoint: the seed
    (gLN, W=16000) gets past optimize by repairs, the follow-ups reach the per-source head, >= 2 HEFs."""
    from mlflow import MlflowClient

    from harness.cli import main

    shipped = Path(__file__).resolve().parents[2] / "search_spaces" / "convtasnet_hailo.yaml"
    text = shipped.read_text().replace("../assets/", f"{shipped.parents[1] / 'assets'}/")
    text = text.replace("../data/demo/", f"{demo_data_full}/")
    space = tmp_path / "convtasnet_hailo.yaml"
    space.write_text(text)
    monkeypatch.setenv("HEFSWEEP_HAILO_PYTHON", str(dfc_python))
    root = tmp_path / "mlruns"
    assert main(["sweep", str(space), "--backend", "hailo", "--trials", "8", "--root", str(root)]) == 0
    out = capsys.readouterr().out
    client = MlflowClient(tracking_uri=f"sqlite:///{root / 'mlflow.db'}")
    exp = client.get_experiment_by_name("convtasnet_hailo")
    runs = client.search_runs([exp.experiment_id], "tags.`hefsweep.role` = 'trial'", order_by=["start_time ASC"])
    assert len(runs) == 8, out
    hefs = [r for r in runs if any(a.path.endswith(".hef") for a in client.list_artifacts(r.info.run_id, "compiled"))]
    print(f"shipped Hailo space, 8 trials: {len(hefs)} with a HEF; signatures "
          f"{sorted(r.data.tags.get('hefsweep.signature', 'ok') for r in runs)}")
    assert len(hefs) >= 2
    assert all(np.isfinite(r.data.metrics["si_snr_db"]) for r in hefs)
    sigs = [r.data.tags.get("hefsweep.signature", "") for r in runs]
    assert not any("OverrideTargetNotFound" in s or s.endswith(":unclassified") for s in sigs), sigs
    seed = [r for r in runs if r.data.params["norm"] == "gLN" and r.data.params["width"] == "16000"]
    assert seed and seed[0].data.tags["hefsweep.repair.first_signature"].startswith(
        "optimize:NegativeSlopeExponentNonFixable:convtas/ne_activation_avgpool"
    )
    assert all(not r.data.tags["hefsweep.repair.final_signature"].startswith("optimize:") for r in seed)
