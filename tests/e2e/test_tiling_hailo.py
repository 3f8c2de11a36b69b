"""Time-tiled deployment through the Hailo backend on the fake DFC (in .venv-dfc): the model compiles at the tile
width, the emulation runs the full clips tile by tile and is scored, stitched, against the original float model on
the whole clip; ``compiled/tiling.json`` is logged beside the HEF and ``promote`` / ``pull`` verify it."""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path

import numpy as np
import pytest

from harness import cli
from harness.space import load_space
from harness.sweep import run_sweep
from harness.tiling import TilePlan, plan_tiles

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _runs(root: Path, study: str) -> list:
    from mlflow import MlflowClient

    client = MlflowClient(f"sqlite:///{root / 'mlflow.db'}")
    exp = client.get_experiment_by_name(study)
    return client.search_runs([exp.experiment_id], "tags.`hefsweep.role` = 'trial'", order_by=["start_time ASC"])


def test_a_tiled_trial_is_scored_on_whole_clips_promoted_and_pulled(
    tiny_checkpoint: Path, demo_data: Path, dfc_python: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    from mlflow import MlflowClient

    from harness.model import load_checkpoint

    monkeypatch.delenv("PYTHONPATH", raising=False)  # the fake is on .venv-dfc's path only
    monkeypatch.setenv("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    p = tmp_path / "t.yaml"
    p.write_text(f"""
study: tiled
checkpoint: {tiny_checkpoint}
backend: hailo
backend_options: {{hw_arch: hailo8, python: {dfc_python}}}
data: {{calibration: {demo_data / 'calib'}, evaluation: {demo_data / 'eval'}, eval_clips: 2, min_calibration_clips: 2}}
stage_timeout: 120
dimensions:
  norm: cLN
  decoder: per_source
  mask_mul: per_source
  width: 8000
  tile_width: [1024, 9000]
  calib_size: 2
""")
    root = tmp_path / "mlruns"
    combos = [{"tile_width": 1024}, {"tile_width": 9000}]
    summary = run_sweep(load_space(p), trials=2, root=root, stream=io.StringIO(), enqueue=combos)
    assert summary.n_ok == 2
    runs = {r.data.params["tile_width"]: r for r in _runs(root, "tiled")}
    tiled, untiled = runs["1024"], runs["9000"]
    client = MlflowClient(f"sqlite:///{root / 'mlflow.db'}")

    # the tiled trial: compiled at 1024 samples, scored on the whole 8000-sample clips
    trial = json.loads(Path(client.download_artifacts(tiled.info.run_id, "trial.json")).read_text())
    plan = plan_tiles(8000, 1024, None, load_checkpoint(tiny_checkpoint).config)
    assert trial["tiling"]["n_tiles"] == plan.n_tiles == tiled.data.metrics["tiles_per_clip"] > 1
    assert trial["tiling"]["context"] == plan.context == 40 and trial["tiling"]["covers_receptive_field"]
    assert np.isfinite(tiled.data.metrics["si_snr_db"]) and np.isfinite(tiled.data.metrics["quant_si_snr_db"])
    # cLN with the receptive field as context: the float model tiled equals it untiled
    assert tiled.data.metrics["tiling_float_si_snr_db"] >= 60
    assert tiled.data.tags["hefsweep.artifact"] == "compiled/model.hef"
    recipe = Path(client.download_artifacts(tiled.info.run_id, "compiled/tiling.json"))
    assert _sha(recipe) == trial["tiling"]["sha256"] and TilePlan.from_json(json.loads(recipe.read_text())) == plan
    per_clip = json.loads(Path(client.download_artifacts(tiled.info.run_id, "metrics/per_clip.json")).read_text())
    assert all(row["length"] == 8000 for row in per_clip)  # whole clips, not tiles
    # a tile width at least the clip's runs untiled, and says so
    utrial = json.loads(Path(client.download_artifacts(untiled.info.run_id, "trial.json")).read_text())
    assert utrial["tiling"] == {"tiled": False, "reason": "tile_width 9000 >= width 8000: runs untiled"}
    assert "tiles_per_clip" not in untiled.data.metrics

    # promote re-emulates the HAR tile by tile and recomputes the objective; pull brings the recipe back verified
    store = ["--root", str(root)]
    capsys.readouterr()
    assert cli.main(["promote", "--run", tiled.info.run_id, *store]) == 0
    out = capsys.readouterr().out
    assert "[ok] tiling" in out and f"{plan.n_tiles} tiles of 1024" in out and "[ok] emulation" in out, out
    mv = client.get_model_version_by_alias("hefsweep-tiled", "champion")
    assert mv.tags["hefsweep.tiling_sha256"] == trial["tiling"]["sha256"]
    assert cli.main(["pull", "hefsweep-tiled@champion", "--out", str(tmp_path / "pulled"), *store]) == 0
    pulled = tmp_path / "pulled"
    assert sorted(x.name for x in pulled.iterdir()) == ["model.hef", "tiling.json"]
    assert _sha(pulled / "model.hef") == tiled.data.tags["hefsweep.artifact_sha256"]
    assert _sha(pulled / "tiling.json") == trial["tiling"]["sha256"]

    # a changed recipe is refused by pull and by promote, in one line each, and nothing is written
    (stored,) = (root / "artifacts").rglob(f"{tiled.info.run_id}/artifacts/compiled/tiling.json")
    stored.write_text(stored.read_text().replace('"hop": ', '"hop": 8 + '))
    capsys.readouterr()
    assert cli.main(["pull", "hefsweep-tiled@champion", "--out", str(tmp_path / "again"), *store]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "tiling.json" in err and "hefsweep.tiling_sha256" in err, err
    assert not (tmp_path / "again").exists()
    assert cli.main(["promote", "--run", tiled.info.run_id, "--alias", "edge", *store]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "compiled/tiling.json" in err and "tiling.sha256" in err, err


def test_the_shipped_fit_space_deploys_tiled_where_whole_clips_do_not_compile(
    demo_data_full: Path, dfc_python: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    """search_spaces/convtasnet_hailo_fit.yaml on the demo checkpoint: untiled at W=16000 the fake DFC's allocation
    fails (Agent infeasible); the enqueued start point (cLN tiled at 3200, the receptive field as context) compiles,
    scores finitely against the original float model on the whole clips, and is promoted and pulled verified; so is
    the same start point split in two HEFs (segments 2: every tile runs through the chain)."""
    shipped = ROOT / "search_spaces" / "convtasnet_hailo_fit.yaml"
    text = shipped.read_text().replace("../assets/", f"{ROOT / 'assets'}/").replace("../data/demo/", f"{demo_data_full}/")
    space = tmp_path / "fit.yaml"
    space.write_text(text)
    monkeypatch.setenv("HEFSWEEP_HAILO_PYTHON", str(dfc_python))
    monkeypatch.setenv("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    root = tmp_path / "mlruns"
    loaded = load_space(space)
    start = dict(loaded.enqueue[0])
    assert start["tile_width"] == 3200 and start["norm"] == "cLN"
    combos = [{**start, "tile_width": None}, start, {**start, "segments": 2}]  # whole clips, the start point, split
    loaded = loaded.model_copy(update={"enqueue": ()})
    assert run_sweep(loaded, trials=3, root=root, stream=io.StringIO(), enqueue=combos).n_trials == 3
    whole, tiled, split = _runs(root, "convtasnet_hailo_fit")
    assert whole.data.tags["hefsweep.signature"] == "compile:BackendAllocatorException:agent_infeasible"
    assert tiled.data.tags["hefsweep.status"] == "ok" and tiled.data.tags["hefsweep.artifact"] == "compiled/model.hef"
    m = tiled.data.metrics
    assert np.isfinite(m["si_snr_db"]) and m["tiles_per_clip"] == 13 and m["tiling_float_si_snr_db"] >= 60
    print(f"fit space: tiled cLN at 3200 si_snr_db {m['si_snr_db']:.2f} dB (quant {m['quant_si_snr_db']:.2f} dB, "
          f"tiling gap {m['tiling_float_si_snr_db']:.2f} dB) on whole 16000-sample clips")
    store = ["--root", str(root)]
    capsys.readouterr()
    assert cli.main(["promote", "--run", tiled.info.run_id, *store]) == 0
    out = capsys.readouterr().out
    assert "[ok] tiling" in out and "[ok] emulation" in out and "[ok] har_sha256" in out, out
    model = "hefsweep-convtasnet_hailo_fit"
    assert cli.main(["pull", f"{model}@champion", "--out", str(tmp_path / "o"), *store]) == 0
    assert sorted(x.name for x in (tmp_path / "o").iterdir()) == ["model.hef", "tiling.json"]
    assert _sha(tmp_path / "o" / "model.hef") == tiled.data.tags["hefsweep.artifact_sha256"]

    # tiled and split: the bundle and the recipe, promoted and pulled with every hash verified
    ms = split.data.metrics
    assert split.data.tags["hefsweep.status"] == "ok" and split.data.tags["hefsweep.artifact"] == "compiled/bundle.json"
    assert np.isfinite(ms["si_snr_db"]) and ms["tiles_per_clip"] == 13 and ms["tiling_float_si_snr_db"] >= 60
    capsys.readouterr()
    assert cli.main(["promote", "--run", split.info.run_id, "--alias", "split", *store]) == 0
    out = capsys.readouterr().out
    assert "[ok] tiling" in out and "[ok] bundle" in out and "[ok] emulation" in out, out
    assert cli.main(["pull", f"{model}@split", "--out", str(tmp_path / "s"), *store]) == 0
    assert {"bundle.json", "tiling.json", "seg1", "seg2"} <= {x.name for x in (tmp_path / "s").iterdir()}
    assert _sha(tmp_path / "s" / "tiling.json") == _sha(tmp_path / "o" / "tiling.json")  # one recipe, both shapes
