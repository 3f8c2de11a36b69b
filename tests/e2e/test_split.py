"""Split HEFs end to end: an ONNX Runtime split trial through the sweep (finite si_snr_db, per-segment stages, the
bundle), its promote and pull (every hash verified, a tampered segment refused), and a Hailo split trial on the fake
DFC whose failing segment is named in the signature."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest

from harness.space import load_space
from harness.sweep import run_sweep

pytestmark = pytest.mark.slow


def _space(tmp: Path, ckpt: Path, data: Path, extra: str = "", dims: str = "") -> Path:
    p = tmp / "s.yaml"
    p.write_text(f"""
study: s
checkpoint: {ckpt}
data: {{calibration: {data / 'calib'}, evaluation: {data / 'eval'}, eval_clips: 2, min_calibration_clips: 2}}
{extra}
dimensions:
  width: 2048
  calib_size: 4
  segments: 3
{dims}
""")
    return p


def _runs(root: Path, study: str = "s") -> list:
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{root / 'mlflow.db'}")
    exp = client.get_experiment_by_name(study)
    return client, client.search_runs([exp.experiment_id], "tags.`hefsweep.role` = 'trial'")


def test_ort_split_trial_runs_segments_and_logs_a_bundle(tiny_checkpoint: Path, demo_data: Path, tmp_path: Path) -> None:
    root = tmp_path / "mlruns"
    summary = run_sweep(load_space(_space(tmp_path, tiny_checkpoint, demo_data)), trials=1, root=root,
                        stream=io.StringIO())  # fmt: skip
    assert summary.n_trials == 1
    client, (run,) = _runs(root)
    assert run.data.tags["hefsweep.status"] == "ok", run.data.tags.get("hefsweep.signature")
    si = run.data.metrics["si_snr_db"]
    assert np.isfinite(si) and si > 5.0  # 8-bit QDQ of the tiny model, chained: far above noise
    for i in (1, 2, 3):
        for stage in ("translate", "optimize", "compile"):
            assert f"time_{stage}.seg{i}_s" in run.data.metrics
    assert run.data.tags["hefsweep.artifact"] == "compiled/bundle.json"
    bundle = json.loads(Path(client.download_artifacts(run.info.run_id, "compiled/bundle.json")).read_text())
    assert [s["label"] for s in bundle["segments"]] == ["seg 1/3", "seg 2/3", "seg 3/3"]
    assert bundle["segments"][0]["inputs"] == [{"name": "input", "shape": [1, 1, 1, 2048], "from": "model_input"}]
    w = next(g for g in bundle["glue"] if g["tensor"] == "/enc_activation/Relu_output_0")
    assert w["from"] == "seg 1/3" and "seg 3/3" in w["to"]
    for seg in bundle["segments"]:
        local = Path(client.download_artifacts(run.info.run_id, f"compiled/{seg['files']['deployable']['file']}"))
        from harness.cache import file_sha256

        assert file_sha256(local) == seg["files"]["deployable"]["sha256"]


def test_hailo_split_trial_on_the_fake_dfc(
    tiny_checkpoint: Path, demo_data: Path, dfc_python: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Segments with several inputs run through the fake DFC in .venv-dfc: a chain of quantized HARs emulated end to
    end (finite si_snr_db, HEFs in the bundle); at a width where a layer's row exceeds the fake allocator's budget, the
    first segment that holds such a layer fails and the signature names it."""
    monkeypatch.delenv("PYTHONPATH", raising=False)  # the fake is on .venv-dfc's path only
    extra = f"backend: hailo\nbackend_options: {{hw_arch: hailo8, python: {dfc_python}}}\nstage_timeout: 120"
    dims = "  gln_stats: split\n  decoder: per_source\n  mask_mul: per_source\n  norm: cLN"
    p = _space(tmp_path, tiny_checkpoint, demo_data, extra, dims).read_text().replace("width: 2048", "width: [2048, 20000]")
    (tmp_path / "h.yaml").write_text(p)
    root = tmp_path / "mlruns"
    run_sweep(load_space(tmp_path / "h.yaml"), trials=2, root=root, stream=io.StringIO(),
              enqueue=[{"width": 2048}, {"width": 20000}])  # fmt: skip
    client, runs = _runs(root)
    by_width = {r.data.params["width"]: r for r in runs}
    ok, wide = by_width["2048"], by_width["20000"]
    assert ok.data.tags["hefsweep.status"] == "ok", ok.data.tags.get("hefsweep.signature")
    assert np.isfinite(ok.data.metrics["si_snr_db"]) and ok.data.metrics["si_snr_db"] > 0.0
    bundle = json.loads(Path(client.download_artifacts(ok.info.run_id, "compiled/bundle.json")).read_text())
    assert [Path(s["files"]["deployable"]["file"]).name for s in bundle["segments"]] == ["model.hef"] * 3
    assert all(Path(s["files"]["emulate"]["file"]).suffix == ".har" for s in bundle["segments"])
    multi = [s for s in bundle["segments"] if len(s["inputs"]) > 1]
    assert multi  # a cut inside the masker passes several tensors
    sig = wide.data.tags["hefsweep.signature"]
    assert wide.data.tags["hefsweep.status"] == "failed"
    assert sig.startswith("compile[seg ") and sig.endswith("/3]:BackendAllocatorException:agent_infeasible"), sig


def test_a_split_bundle_is_promoted_and_pulled_with_every_hash_verified(
    tiny_checkpoint: Path, demo_data: Path, tmp_path: Path
) -> None:
    from harness.cache import file_sha256
    from harness.errors import HarnessError
    from harness.promote import promote, pull

    root = tmp_path / "mlruns"
    run_sweep(load_space(_space(tmp_path, tiny_checkpoint, demo_data)), trials=1, root=root, stream=io.StringIO())
    client, (run,) = _runs(root)
    uri = f"sqlite:///{root / 'mlflow.db'}"
    lines: list[str] = []
    promoted = promote(uri, run_id=run.info.run_id, root=root, progress=lines.append)
    text = "\n".join(lines)
    assert "[ok] bundle" in text and "3 segments" in text and "[ok] emulation" in text, text
    assert (promoted.action, promoted.version) == ("promote", "1")
    mv = client.get_model_version("hefsweep-s", "1")
    assert mv.source.endswith("/compiled/bundle.json")

    got = pull(uri, "hefsweep-s@champion", tmp_path / "pulled")
    manifest = json.loads(got.path.read_text())
    assert got.path.name == "bundle.json" and got.sha256 == run.data.tags["hefsweep.artifact_sha256"]
    for seg in manifest["segments"]:
        f = seg["files"]["deployable"]
        assert file_sha256(tmp_path / "pulled" / f["file"]) == f["sha256"]
    assert len(got.extra) == len({s["files"]["deployable"]["file"] for s in manifest["segments"]})

    # a tampered segment: promote and pull refuse it, naming the file; nothing is written
    stored = Path(run.info.artifact_uri.removeprefix("file://")) / "compiled" / manifest["segments"][1]["files"]["deployable"]["file"]
    original = stored.read_bytes()
    try:
        stored.write_bytes(original[:-16] + bytes(16))
        with pytest.raises(HarnessError, match=r"seg2/.*\(seg 2/3\).*sha256.*refused"):
            pull(uri, "hefsweep-s@champion", tmp_path / "tampered")
        assert not (tmp_path / "tampered").exists()
        with pytest.raises(HarnessError, match=r"seg 2/3.*sha256"):
            promote(uri, run_id=run.info.run_id, alias="candidate", root=root)
    finally:
        stored.write_bytes(original)


def test_tiled_and_split_compose_on_the_fake_dfc_and_promote(
    tiny_checkpoint: Path, demo_data: Path, dfc_python: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    """Each tile runs through the chain of segments; the whole clips are scored; the bundle carries the tiling
    record; promote checks both and re-emulates tiles x segments; pull restores every file verified."""
    from harness import cli

    monkeypatch.delenv("PYTHONPATH", raising=False)
    monkeypatch.setenv("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    extra = f"backend: hailo\nbackend_options: {{hw_arch: hailo8, python: {dfc_python}}}\nstage_timeout: 120"
    dims = "  decoder: per_source\n  mask_mul: per_source\n  norm: cLN\n  tile_width: 1024"
    text = _space(tmp_path, tiny_checkpoint, demo_data, extra, dims).read_text().replace("width: 2048", "width: 8000")
    (tmp_path / "ts.yaml").write_text(text)
    root = tmp_path / "mlruns"
    run_sweep(load_space(tmp_path / "ts.yaml"), trials=1, root=root, stream=io.StringIO())
    client, (run,) = _runs(root)
    assert run.data.tags["hefsweep.status"] == "ok", run.data.tags.get("hefsweep.signature")
    assert run.data.metrics["tiles_per_clip"] > 1 and np.isfinite(run.data.metrics["si_snr_db"])
    per_clip = json.loads(Path(client.download_artifacts(run.info.run_id, "metrics/per_clip.json")).read_text())
    assert all(row["length"] == 8000 for row in per_clip)  # whole clips
    bundle = json.loads(Path(client.download_artifacts(run.info.run_id, "compiled/bundle.json")).read_text())
    assert bundle["tiling"]["tiled"] is True and bundle["tiling"]["tile_width"] == 1024
    assert bundle["segments"][0]["inputs"][0]["shape"] == [1, 1, 1, 1024]  # built at the tile width

    store = ["--root", str(root)]
    capsys.readouterr()
    assert cli.main(["promote", "--run", run.info.run_id, *store]) == 0
    out = capsys.readouterr().out
    assert "[ok] tiling" in out and "[ok] bundle" in out and "[ok] emulation" in out, out
    assert cli.main(["pull", "hefsweep-s@champion", "--out", str(tmp_path / "pulled"), *store]) == 0
    pulled = tmp_path / "pulled"
    assert sorted(x.name for x in pulled.iterdir()) == ["bundle.json", "seg1", "seg2", "seg3", "tiling.json"]
    assert sorted(x.name for x in (pulled / "seg2").iterdir()) == ["model.hef", "model_quantized.har", "segment_io.json"]


def test_an_override_is_applied_where_its_layers_are_and_fails_only_when_no_segment_has_them(
    tiny_checkpoint: Path, demo_data: Path, tmp_path: Path
) -> None:
    """ORT: 16-bit on the model's input tensor exists in segment 1 only (the other segments leave it out and say so);
    a layer no segment has fails the trial as optimize:OverrideTargetNotFound."""
    sets = "override_sets:\n  none: []\n  in16:\n    - {kind: precision16, layers: [input]}\n  ghost:\n    - {kind: precision16, layers: [no_such_layer]}"
    p = _space(tmp_path, tiny_checkpoint, demo_data, sets, "  override_set: [in16, ghost]")
    root = tmp_path / "mlruns"
    run_sweep(load_space(p), trials=2, root=root, stream=io.StringIO(),
              enqueue=[{"override_set": "in16"}, {"override_set": "ghost"}])  # fmt: skip
    client, runs = _runs(root)
    by_set = {r.data.params["override_set"]: r for r in runs}
    ok, ghost = by_set["in16"], by_set["ghost"]
    assert ok.data.tags["hefsweep.status"] == "ok", ok.data.tags.get("hefsweep.signature")
    trial = json.loads(Path(client.download_artifacts(ok.info.run_id, "trial.json")).read_text())
    applied = [o["applied"] for o in trial["optimize"]]
    assert applied[0] and "precision16 on 1 tensors" in applied[0][0]
    assert all(not a for a in applied[1:]) and all(o["absent_overrides"] for o in trial["optimize"][1:])
    assert ghost.data.tags["hefsweep.signature"] == "optimize:OverrideTargetNotFound:no_such_layer"


def test_repairs_move_a_gln_split_trial_past_its_optimize_failures(
    tiny_checkpoint: Path, demo_data: Path, dfc_python: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """gLN at W=16000 fails optimize on a variance pool in whichever segment holds it; the repair loop's fixes
    (applied to every segment, left out where the pool is absent) get every segment optimized."""
    monkeypatch.delenv("PYTHONPATH", raising=False)
    extra = f"backend: hailo\nbackend_options: {{hw_arch: hailo8, python: {dfc_python}}}\nstage_timeout: 120"
    dims = "  gln_stats: split\n  decoder: per_source\n  mask_mul: per_source\n  norm: gLN\n  calib_clip_length: 3200"
    text = _space(tmp_path, tiny_checkpoint, demo_data, extra, dims).read_text().replace("width: 2048", "width: 16000")
    (tmp_path / "g.yaml").write_text(text)
    root = tmp_path / "mlruns"
    run_sweep(load_space(tmp_path / "g.yaml"), trials=1, root=root, stream=io.StringIO())
    client, (run,) = _runs(root)
    tags = run.data.tags
    assert tags["hefsweep.repair.first_signature"].startswith("optimize:NegativeSlopeExponentNonFixable:"), tags
    assert tags["hefsweep.status"] == "ok", tags.get("hefsweep.signature")
    assert np.isfinite(run.data.metrics["si_snr_db"])
