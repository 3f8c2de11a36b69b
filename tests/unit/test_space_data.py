"""The space's data section: plain paths keep their meaning, mappings describe .npz/.npy files and LibriMix splits,
read options are inherited, bad values are one-line errors naming the key, and the content fingerprint hashes what
is read."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from harness.audio import CalibrationData, EvaluationData
from harness.errors import ConfigError
from harness.audio._fingerprint import folder_sha256
from harness.space import load_space


def _space(tmp_path: Path, data: str) -> Path:
    (tmp_path / "ck.pt").write_bytes(b"checkpoint bytes")
    f = tmp_path / "space.yaml"
    f.write_text(f"checkpoint: ck.pt\ndata:\n{data}")
    return f


def _wav(path: Path, seed: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    x = np.random.default_rng(seed).uniform(-0.5, 0.5, 64).astype(np.float32)
    sf.write(str(path), x, 8000, subtype="FLOAT")


def test_plain_paths_keep_their_meaning(tmp_path: Path) -> None:
    space = load_space(_space(tmp_path, "  calibration: cal\n  evaluation: ev\n"))
    assert space.data.calibration == CalibrationData(tmp_path / "cal")
    assert space.data.evaluation == EvaluationData(tmp_path / "ev")
    assert os.fspath(space.data.calibration) == str(tmp_path / "cal") == str(space.data.calibration)


def test_mappings_and_inherited_options(tmp_path: Path) -> None:
    text = (
        "  calibration: {path: c.npz, key: mine}\n"
        "  evaluation: {path: lm, layout: librimix, mix: mix_both, channel: 0}\n"
        "  resample: true\n  channel: 1\n"
    )
    data = load_space(_space(tmp_path, text)).data
    assert data.calibration == CalibrationData(tmp_path / "c.npz", key="mine", resample=True, channel=1)
    assert data.evaluation == EvaluationData(tmp_path / "lm", "librimix", "mix_both", resample=True, channel=0)
    assert data.evaluation.mix_folder == "mix_both"


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ("  calibration: c\n  evaluation: {path: e, layout: librimix, mix: mixture}\n",
         "key 'data.evaluation.mix': got 'mixture'; expected Input should be 'mix_clean', 'mix_both' or 'mix_single'"),
        ("  calibration: {path: c, keys: x}\n  evaluation: e\n", "key 'data.calibration.keys': unknown key"),
        ("  calibration: c\n  evaluation: e\n  channel: -1\n",
         "key 'data.calibration': got {'channel': -1, 'path': 'c'}; "
         "expected channel null or a channel index >= 0, not -1"),
        ("  calibration: {path: c, key: x}\n  evaluation: e\n", "expected key only for an .npz file, not for 'c'"),
        ("  calibration: c\n  evaluation: {path: e, mix: mix_clean}\n",
         "expected mix only with layout librimix, not with layout 'hefsweep'"),
    ],
)  # fmt: skip
def test_bad_data_is_one_line_naming_the_key(tmp_path: Path, data: str, message: str) -> None:
    with pytest.raises(ConfigError) as err:
        load_space(_space(tmp_path, data))
    assert message in str(err.value) and "\n" not in str(err.value)


def test_fingerprint_hashes_what_is_read(tmp_path: Path) -> None:
    for i, name in enumerate(["a.wav", "b.wav"]):
        _wav(tmp_path / "cal" / name, i)
        for j, folder in enumerate(["mix_clean", "mix_both", "s1", "s2", "noise"]):
            _wav(tmp_path / "lm" / folder / name, 10 * i + j)
    plain = load_space(_space(tmp_path, "  calibration: cal\n  evaluation: lm\n"))
    # a plain folder hashes as before this option existed (studies stay resumable)
    assert plain.content_fingerprint()["calibration"] == folder_sha256(tmp_path / "cal", subfolders=False)
    assert plain.content_fingerprint()["evaluation"] == folder_sha256(tmp_path / "lm", subfolders=True)
    lm = load_space(_space(tmp_path, "  calibration: cal\n  evaluation: {path: lm, layout: librimix}\n"))
    before = lm.content_fingerprint()
    assert before["evaluation"] != plain.content_fingerprint()["evaluation"]
    _wav(tmp_path / "lm" / "noise" / "a.wav", 99)  # not read for mix_clean
    _wav(tmp_path / "lm" / "mix_both" / "a.wav", 98)
    assert lm.content_fingerprint() == before
    _wav(tmp_path / "lm" / "s2" / "b.wav", 97)  # a reference: read
    assert lm.content_fingerprint()["evaluation"] != before["evaluation"]
    ch = load_space(_space(tmp_path, "  calibration: cal\n  evaluation: lm\n  channel: 0\n"))
    assert ch.content_fingerprint()["calibration"] != plain.content_fingerprint()["calibration"]

    np.savez(tmp_path / "c.npz", calib_data=np.ones((2, 8), np.float32), other=np.zeros((2, 8), np.float32))
    npz = load_space(_space(tmp_path, "  calibration: c.npz\n  evaluation: lm\n")).content_fingerprint()
    other = load_space(_space(tmp_path, "  calibration: {path: c.npz, key: other}\n  evaluation: lm\n"))
    assert npz["calibration"] != other.content_fingerprint()["calibration"]
    np.savez(tmp_path / "c.npz", calib_data=np.ones((2, 8), np.float32) / 2, other=np.zeros((2, 8), np.float32))
    again = load_space(_space(tmp_path, "  calibration: c.npz\n  evaluation: lm\n")).content_fingerprint()
    assert again["calibration"] != npz["calibration"]
    missing = load_space(_space(tmp_path, "  calibration: gone.npz\n  evaluation: lm\n"))
    assert len(missing.content_fingerprint()["calibration"]) == 64  # reported by validation, not here
