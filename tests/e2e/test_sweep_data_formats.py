"""A sweep from data as users have it: the real DFC .npz calibration set (real speech, NHWC) and a LibriMix-layout
evaluation folder (mix_clean/, mix_both/, s1/, s2/, noise/), on the ONNX Runtime backend; the calibration manifests
name the npz and row of every clip."""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from harness.audio import load_array
from harness.space import load_space
from harness.sweep import run_sweep
from support.real_dfc import REAL_DFC

pytestmark = pytest.mark.slow

NPZ = REAL_DFC / "calibration_200ms_16k_8.npz"


def _librimix(demo_eval: Path, root: Path) -> Path:
    """The demo evaluation mixtures in LibriMix's names: mix_clean = the mixtures, mix_both = plus noise."""
    for name in ("s1", "s2"):
        shutil.copytree(demo_eval / name, root / name)
    shutil.copytree(demo_eval / "mixture", root / "mix_clean")
    (root / "noise").mkdir()
    (root / "mix_both").mkdir()
    rng = np.random.default_rng(3)
    for f in sorted((demo_eval / "mixture").iterdir()):
        x, sr = sf.read(str(f), dtype="float32")
        noise = (0.01 * rng.standard_normal(x.shape)).astype(np.float32)
        sf.write(str(root / "noise" / f.name), noise, sr, subtype="FLOAT")
        sf.write(str(root / "mix_both" / f.name), x + noise, sr, subtype="FLOAT")
    return root


@pytest.mark.skipif(not NPZ.is_file(), reason="the real DFC calibration sets are not here")
def test_sweep_from_npz_and_librimix(tiny_checkpoint: Path, demo_data: Path, tmp_path: Path) -> None:
    from mlflow import MlflowClient

    split = _librimix(demo_data / "eval", tmp_path / "Libri2Mix" / "wav16k" / "min" / "test")
    space_file = tmp_path / "s.yaml"
    space_file.write_text(f"""
study: formats
checkpoint: {tiny_checkpoint}
data:
  calibration: {NPZ}
  evaluation: {{path: {split}, layout: librimix, mix: mix_both}}
  eval_clips: 2
  min_calibration_clips: 2
trials: 2
stage_timeout: 120
seed: 0
dimensions:
  width: 4000
  calib_clip_length: [1600, null]
  calib_fill: repeat
  calib_size: 6
enqueue:
  - {{calib_clip_length: 1600}}
  - {{calib_clip_length: null}}
""")
    space = load_space(space_file)
    out = io.StringIO()
    summary = run_sweep(space, trials=2, root=tmp_path / "mlruns", stream=out)
    assert summary.n_trials == 2 and summary.n_ok == 2, out.getvalue()

    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}")
    exp = client.get_experiment_by_name("formats")
    children = [r for r in client.search_runs([exp.experiment_id]) if r.data.tags.get("hefsweep.role") != "parent"]
    assert len(children) == 2
    rows, _ = load_array(NPZ, "calib_data")
    seen_lengths = set()
    for run in children:
        local = client.download_artifacts(run.info.run_id, "calibration/calibration_manifest.json", str(tmp_path))
        manifest = json.loads(Path(local).read_text())
        clips = manifest["clips"]
        assert len(clips) == 6
        # every clip names the npz, its array and row, round-robin over the 8 rows
        assert all(c["file"] == NPZ.name and c["key"] == "calib_data" for c in clips)
        assert [c["row"] for c in clips] == [0, 1, 2, 3, 4, 5]
        assert all(c["source_samples"] == 3200 and c["offset"] == 0 for c in clips)
        seen_lengths.add(manifest["clip_length"])
        # the separation metrics come from the LibriMix references (s1/, s2/)
        assert "orig_float_si_snri_db" in run.data.metrics and np.isfinite(run.data.metrics["si_snr_db"])
        local = client.download_artifacts(run.info.run_id, "metrics/per_clip.json", str(tmp_path))
        mixtures = sorted(p.name for p in split.glob("mix_both/*"))
        assert [c["clip"] for c in json.loads(Path(local).read_text())] == mixtures[:2]
        # the clips are the npz rows: 1600-sample halves repeated to W, or the whole 3200-sample rows
        assert all(c["clip_samples"] == (manifest["clip_length"] or 3200) for c in clips)
    assert seen_lengths == {1600, None}
    assert rows.shape == (8, 3200)


def _space(tmp_path: Path, ckpt: Path, calibration: str, evaluation: str, extra: str = "") -> Path:
    f = tmp_path / "bad.yaml"
    f.write_text(f"checkpoint: {ckpt}\ndata:\n  calibration: {calibration}\n  evaluation: {evaluation}\n"
                 f"  min_calibration_clips: 2\n{extra}trials: 1\ndimensions: {{width: 4000}}\n")  # fmt: skip
    return f


def test_sweep_refuses_another_rate_or_stereo_in_one_line(
    tiny_checkpoint: Path, demo_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from harness.cli import main

    root = ["--root", str(tmp_path / "mlruns")]
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "c8k.npz", calib_data=rng.uniform(-0.5, 0.5, (4, 8000)).astype(np.float32),
             sample_rate=np.int32(8000))  # fmt: skip
    assert main(["sweep", str(_space(tmp_path, tiny_checkpoint, str(tmp_path / "c8k.npz"), str(demo_data / "eval"))),
                 *root]) == 1  # fmt: skip
    err = capsys.readouterr().err.strip()
    assert err == (f"hefsweep sweep: error: {tmp_path}/c8k.npz: sample_rate 8000 Hz; expected 16000 Hz (the model's "
                   "rate) (set data.resample: true in the space to resample with soxr)")  # fmt: skip

    stereo = tmp_path / "stereo"
    stereo.mkdir()
    for f in sorted((demo_data / "calib").iterdir())[:3]:
        x, sr = sf.read(str(f), dtype="float32")
        sf.write(str(stereo / f.name), np.stack([x, 0.5 * x], axis=1), sr, subtype="FLOAT")
    first = sorted(stereo.iterdir())[0]
    assert main(["sweep", str(_space(tmp_path, tiny_checkpoint, str(stereo), str(demo_data / "eval"))), *root]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"hefsweep sweep: error: {first}: 2 channels; expected mono (choose one with data.channel: 0")
    assert "\n" not in err
    # with the options the messages name, the same data passes validation (--trials 0: the study only)
    ok = _space(tmp_path, tiny_checkpoint, f"{{path: {stereo}, channel: 1}}", str(demo_data / "eval"))
    assert main(["sweep", str(ok), "--trials", "0", *root]) == 0, capsys.readouterr().err
    ok = _space(tmp_path, tiny_checkpoint, str(tmp_path / "c8k.npz"), str(demo_data / "eval"), "  resample: true\n")
    assert main(["sweep", str(ok), "--trials", "0", "--study", "resampled", *root]) == 0, capsys.readouterr().err
