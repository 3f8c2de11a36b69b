"""A sweep through the Hailo backend with the fake DFC (tests/fakes): repairs, signatures, a HEF."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from harness.space import load_space
from harness.sweep import run_sweep

pytestmark = pytest.mark.slow

FAKES = Path(__file__).resolve().parents[1] / "fakes"


def test_hailo_sweep_repairs_and_produces_a_hef(
    tiny_checkpoint: Path, demo_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mlflow import MlflowClient

    monkeypatch.syspath_prepend(str(FAKES))
    monkeypatch.setenv("PYTHONPATH", str(FAKES))  # the stage worker imports the fake too
    p = tmp_path / "h.yaml"
    p.write_text(f"""
study: h
checkpoint: {tiny_checkpoint}
backend: hailo
backend_options: {{hw_arch: hailo8}}
data: {{calibration: {demo_data / 'calib'}, evaluation: {demo_data / 'eval'}, eval_clips: 2, min_calibration_clips: 2}}
stage_timeout: 120
dimensions:
  norm: [gLN, cLN]
  width: 2048
  calib_size: 4
  override_set: [none, ghost]
override_sets:
  none: []
  ghost:
    - {{kind: precision16, layers: [ne_activation_avgpool2]}}
""")
    combos = [{"norm": "gLN", "override_set": "none"}, {"norm": "cLN", "override_set": "none"},
              {"norm": "gLN", "override_set": "ghost"}]  # fmt: skip
    summary = run_sweep(load_space(p), trials=3, root=tmp_path / "mlruns", stream=io.StringIO(), enqueue=combos)
    assert summary.n_trials == 3

    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}")
    exp = client.get_experiment_by_name("h")
    runs = client.search_runs([exp.experiment_id], "tags.`hefsweep.role` = 'trial'", order_by=["start_time ASC"])
    by_norm = {(r.data.params["norm"], r.data.params["override_set"]): r for r in runs}
    gln, cln = by_norm[("gLN", "none")], by_norm[("cLN", "none")]

    # gLN and cLN fail first in different places, as the seed reports
    assert gln.data.tags["hefsweep.repair.first_signature"].startswith(
        "optimize:NegativeSlopeExponentNonFixable:convtas/ne_activation_avgpool"
    )
    assert not cln.data.tags["hefsweep.repair.first_signature"].startswith("optimize:NegativeSlope")

    # the repair loop moves gLN past its optimize failures: the signature changes across iterations
    log = json.loads(Path(client.download_artifacts(gln.info.run_id, "compile_failure.json")).read_text())
    sigs = [e["signature"] for e in log["entries"] if e.get("signature")]
    assert len(set(sigs)) >= 2 and log["signature_changed"] is True
    assert gln.data.tags["hefsweep.repair.signature_changed"] == "true"

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
    tiny_checkpoint: Path, demo_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Multi-fidelity: trials are screened on ONNX Runtime first; of the rest, only the top-1 so far compiles."""
    from mlflow import MlflowClient

    monkeypatch.syspath_prepend(str(FAKES))
    monkeypatch.setenv("PYTHONPATH", str(FAKES))
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
  width: 2048
  calib_size: [2, 4, 6]
  calib_fill: [repeat, pad]
""")
    combos = [{"calib_size": c, "calib_fill": f} for c in (2, 4, 6) for f in ("repeat", "pad")]
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
