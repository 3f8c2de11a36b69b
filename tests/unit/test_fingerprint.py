"""The study fingerprint covers the checkpoint's and the data folders' content: resuming a study after either
changed is a one-line error (exit 1) naming the study and what changed."""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path
from typing import Any

import pytest
import soundfile as sf

from harness.errors import ConfigError


@pytest.fixture
def inputs(tiny_checkpoint: Path, demo_data: Path, tmp_path: Path) -> dict[str, Path]:
    """Copies the test may change: the checkpoint, the data and a space file over them."""
    ckpt = tmp_path / "in" / "tiny.pt"
    ckpt.parent.mkdir()
    shutil.copyfile(tiny_checkpoint, ckpt)
    data = tmp_path / "in" / "data"
    shutil.copytree(demo_data, data)
    space = tmp_path / "in" / "fp.yaml"
    space.write_text(
        f"study: fp\ncheckpoint: {ckpt}\n"
        f"data: {{calibration: {data / 'calib'}, evaluation: {data / 'eval'}, eval_clips: 3, min_calibration_clips: 2}}\n"
        "trials: 1\ndimensions: {width: 4000, calib_clip_length: 4000, calib_size: 2}\n"
    )
    return {"ckpt": ckpt, "data": data, "space": space, "root": tmp_path / "mlruns"}


def _resave_checkpoint(path: Path) -> None:
    """Same architecture and weights, other bytes (what a retrained or re-exported checkpoint looks like)."""
    from harness.model import load_checkpoint
    from harness.model._checkpoint import save_checkpoint

    save_checkpoint(load_checkpoint(path), path, infos={"note": "saved again"})


def _touch_audio(path: Path) -> None:
    x, rate = sf.read(path, dtype="float32")
    sf.write(path, 0.5 * x, rate, subtype="PCM_16")


def _first(folder: Path) -> Path:
    return sorted(p for p in folder.iterdir() if p.suffix == ".wav")[0]


def _open(inputs: dict[str, Path], study: str | None = None) -> Any:
    from harness.space import load_space
    from harness.sweep import run_sweep

    return run_sweep(load_space(inputs["space"]), trials=0, root=inputs["root"], study_name=study, stream=io.StringIO())


def test_content_fingerprint_follows_file_content_not_paths(inputs: dict[str, Path], tmp_path: Path) -> None:
    from harness.space import load_space

    first = load_space(inputs["space"]).content_fingerprint()
    assert set(first) == {"checkpoint", "calibration", "evaluation"}
    assert load_space(inputs["space"]).content_fingerprint() == first  # stable (and memoized) in one process
    moved = tmp_path / "moved"
    shutil.copytree(inputs["space"].parent, moved)
    text = inputs["space"].read_text().replace(str(inputs["space"].parent), str(moved))
    (moved / "fp.yaml").write_text(text)
    assert load_space(moved / "fp.yaml").content_fingerprint() == first  # same bytes elsewhere: same hashes

    _touch_audio(_first(inputs["data"] / "calib"))
    changed = load_space(inputs["space"]).content_fingerprint()
    assert changed["calibration"] != first["calibration"]
    assert {k: changed[k] for k in ("checkpoint", "evaluation")} == {k: first[k] for k in ("checkpoint", "evaluation")}
    _touch_audio(_first(inputs["data"] / "eval" / "s1"))  # a clean source counts too
    assert load_space(inputs["space"]).content_fingerprint()["evaluation"] != first["evaluation"]
    (inputs["data"] / "calib" / "notes.txt").write_text("not audio")  # only audio files count
    assert load_space(inputs["space"]).content_fingerprint()["calibration"] == changed["calibration"]
    _resave_checkpoint(inputs["ckpt"])
    assert load_space(inputs["space"]).content_fingerprint()["checkpoint"] != first["checkpoint"]


@pytest.mark.parametrize("what", ["checkpoint", "calibration", "evaluation"])
def test_resuming_after_the_inputs_changed_is_a_one_line_error(inputs: dict[str, Path], what: str) -> None:
    _open(inputs)
    _open(inputs)  # unchanged: the study resumes
    labels = {
        "checkpoint": f"checkpoint {inputs['ckpt']}",
        "calibration": f"calibration data {inputs['data'] / 'calib'}",
        "evaluation": f"evaluation data {inputs['data'] / 'eval'}",
    }
    if what == "checkpoint":
        _resave_checkpoint(inputs["ckpt"])
    elif what == "calibration":
        _touch_audio(_first(inputs["data"] / "calib"))
    else:
        _touch_audio(_first(inputs["data"] / "eval" / "mixture"))
    with pytest.raises(ConfigError) as err:
        _open(inputs)
    msg = err.value.message
    assert "\n" not in msg
    for part in ("study 'fp'", "changed since the study was created", labels[what], "use --study NAME for a new study"):
        assert part in msg, (part, msg)
    assert not any(labels[o] in msg for o in set(labels) - {what}), msg
    _open(inputs, study="fp2")  # a new study over the changed inputs is fine


def test_cli_exits_1_with_one_line(inputs: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    from harness.cli import main

    argv = ["sweep", str(inputs["space"]), "--trials", "0", "--root", str(inputs["root"])]
    assert main(argv) == 0
    _resave_checkpoint(inputs["ckpt"])
    _touch_audio(_first(inputs["data"] / "calib"))
    capsys.readouterr()
    assert main(argv) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert err[0].startswith("hefsweep sweep: error: study 'fp' in ")
    assert "checkpoint" in err[0] and "calibration data" in err[0] and "use --study NAME for a new study" in err[0]


def test_a_study_from_before_the_content_hashes_resumes_and_gets_them(inputs: dict[str, Path]) -> None:
    import optuna

    from harness.space import load_space

    _open(inputs)
    storage = f"sqlite:///{inputs['root'] / 'optuna.db'}"
    study = optuna.load_study(study_name="fp", storage=storage)
    stored = json.loads(study.user_attrs["hefsweep.space"])
    assert stored["content"] == load_space(inputs["space"]).content_fingerprint()
    old = {k: v for k, v in stored.items() if k != "content"}  # what older versions wrote
    study.set_user_attr("hefsweep.space", json.dumps(old, sort_keys=True))
    _open(inputs)  # same space: resumes, and records the hashes from now on
    assert json.loads(optuna.load_study(study_name="fp", storage=storage).user_attrs["hefsweep.space"]) == stored
    _resave_checkpoint(inputs["ckpt"])
    with pytest.raises(ConfigError, match="changed since the study was created"):
        _open(inputs)


def test_another_space_is_still_reported_as_such(inputs: dict[str, Path]) -> None:
    _open(inputs)
    inputs["space"].write_text(inputs["space"].read_text().replace("calib_size: 2", "calib_size: 3"))
    with pytest.raises(ConfigError, match="exists with a different search space"):
        _open(inputs)
