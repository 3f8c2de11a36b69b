"""build_calibration_set: cutting, round-robin selection, fill, manifest, content key, the W-mismatch warning and
errors."""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from harness.audio import FillPolicyError, MANIFEST_FORMAT, CalibrationSet, build_calibration_set
from harness.errors import AudioError

SR = 1000  # tiny files: 1 kHz, W = 8
W = 8


def _write(path: Path, values: np.ndarray | list[int], sr: int = SR) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), np.asarray(values, dtype=np.int16), sr, subtype="PCM_16", format="WAV")
    return path


def _ramp(start: int, n: int) -> np.ndarray:
    return (np.arange(start, start + n) * 100).astype(np.int16)  # distinct, non-zero per file


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """a.wav: 25 samples, b.wav: 7 samples (shorter than a clip), c.flac: 16 samples."""
    root = tmp_path / "calib"
    _write(root / "a.wav", _ramp(1, 25))
    _write(root / "b.wav", _ramp(101, 7))
    root.mkdir(exist_ok=True)
    sf.write(str(root / "c.flac"), _ramp(201, 16), SR, subtype="PCM_16")
    return root


def _build(folder: Path, **kw: object) -> CalibrationSet:
    args: dict[str, object] = {"sample_rate": SR, "width": W, "clip_length": 8, "policy": "pad", "size": 6}
    args.update(kw)
    return build_calibration_set(folder, **args)  # type: ignore[arg-type]


def test_clips_are_taken_round_robin_and_fitted(folder: Path) -> None:
    cs = _build(folder)
    a, b, c = _ramp(1, 25) / 32768.0, _ramp(101, 7) / 32768.0, _ramp(201, 16) / 32768.0
    expected = np.stack(
        [
            a[0:8],  # round 0: the first clip of every file
            np.concatenate([b, [0.0]]),  # short file: one clip of its own 7 samples, zero-padded
            c[0:8],
            a[8:16],  # round 1: the second clip of the files that have one
            c[8:16],
            a[16:24],  # round 2; the 1-sample tail of a is dropped
        ]
    )
    assert cs.data.dtype == np.float32 and cs.data.shape == (6, W)
    np.testing.assert_array_equal(cs.data, expected.astype(np.float32))
    assert len(cs) == 6
    assert not cs.data.flags.writeable


def _clip_folder(root: Path, n_files: int, n: int) -> Path:
    for i in range(n_files):
        _write(root / f"f{i:02d}.wav", _ramp(1 + 100 * i, n))
    return root


def test_clip_length_and_source_diversity_are_separate(tmp_path: Path) -> None:
    """Short and long clips of one size come from the same files: clip length is the only thing that varies."""
    root = _clip_folder(tmp_path / "calib", 6, 32)
    for clip_length in (8, 16, 32):  # 4, 2 and 1 clips per file
        cs = _build(root, clip_length=clip_length, size=4)
        files = [e["file"] for e in cs.manifest["clips"]]
        assert files == ["f00.wav", "f01.wav", "f02.wav", "f03.wav"], (clip_length, files)
        assert all(e["offset"] == 0 for e in cs.manifest["clips"])
    # more clips than files: one clip per file per round, in name order, at increasing offsets
    cs = _build(root, clip_length=8, size=9)
    assert [(e["file"], e["offset"]) for e in cs.manifest["clips"]] == [
        (f"f{i:02d}.wav", 0) for i in range(6)
    ] + [("f00.wav", 8), ("f01.wav", 8), ("f02.wav", 8)]
    # deterministic
    assert _build(root, clip_length=8, size=9).key == cs.key


def test_manifest_contents(folder: Path) -> None:
    cs = _build(folder)
    sha = {n: hashlib.sha256((folder / n).read_bytes()).hexdigest() for n in ["a.wav", "b.wav", "c.flac"]}
    m = cs.manifest
    assert {k: m[k] for k in ["format", "sample_rate", "width", "clip_length", "policy"]} == {
        "format": MANIFEST_FORMAT,
        "sample_rate": SR,
        "width": W,
        "clip_length": 8,
        "policy": "pad",
    }
    rows = [(e["file"], e["source_samples"], e["offset"], e["clip_samples"], e["fill"]) for e in m["clips"]]
    assert rows == [
        ("a.wav", 25, 0, 8, "none"),
        ("b.wav", 7, 0, 7, "pad"),
        ("c.flac", 16, 0, 8, "none"),
        ("a.wav", 25, 8, 8, "none"),
        ("c.flac", 16, 8, 8, "none"),
        ("a.wav", 25, 16, 8, "none"),
    ]
    assert [e["sha256"] for e in m["clips"]] == [sha[n] for n in ["a.wav", "b.wav", "c.flac", "a.wav", "c.flac", "a.wav"]]
    assert str(folder) not in json.dumps(m)  # no absolute paths


def test_key_is_sha256_of_canonical_manifest_and_write_manifest_round_trips(folder: Path, tmp_path: Path) -> None:
    cs = _build(folder)
    canonical = json.dumps(cs.manifest, sort_keys=True, separators=(",", ":"))
    assert cs.key == hashlib.sha256(canonical.encode()).hexdigest()
    out = cs.write_manifest(tmp_path / "out" / "manifest.json")
    assert json.loads(out.read_text()) == cs.manifest
    assert [p.name for p in out.parent.iterdir()] == ["manifest.json"]  # no temp files left


def test_size_stops_reading_and_whole_files(folder: Path) -> None:
    (folder / "c.flac").write_bytes(b"not audio")  # never read: two clips come from the first two files
    cs = _build(folder, size=2)
    assert [(e["file"], e["offset"]) for e in cs.manifest["clips"]] == [("a.wav", 0), ("b.wav", 0)]
    sf.write(str(folder / "c.flac"), _ramp(201, 16), SR, subtype="PCM_16")
    whole = _build(folder, clip_length=None, policy="repeat", size=10)
    assert [(e["file"], e["clip_samples"], e["fill"]) for e in whole.manifest["clips"]] == [
        ("a.wav", 25, "centre-crop"),
        ("b.wav", 7, "repeat"),
        ("c.flac", 16, "centre-crop"),
    ]
    b = _ramp(101, 7) / 32768.0
    np.testing.assert_array_equal(whole.data[1], np.concatenate([b, b[:1]]).astype(np.float32))
    np.testing.assert_array_equal(whole.data[0], (_ramp(1, 25)[8:16] / 32768.0).astype(np.float32))


def test_key_stable_across_builds_and_moves(folder: Path, tmp_path: Path) -> None:
    first = _build(folder)
    second = _build(folder)
    assert first.key == second.key
    np.testing.assert_array_equal(first.data, second.data)
    moved = folder.rename(tmp_path / "elsewhere")
    assert _build(moved).key == first.key


def test_key_changes_with_content_policy_and_cut(folder: Path) -> None:
    base = _build(folder).key
    assert _build(folder, policy="repeat").key != base
    assert _build(folder, clip_length=4).key != base
    assert _build(folder, size=5).key != base
    _write(folder / "b.wav", _ramp(102, 7))  # same length, other samples
    assert _build(folder).key != base


@pytest.mark.parametrize("clip_length", [8, 12, None])
def test_fill_policies_that_fill_nothing_share_one_key(tmp_path: Path, clip_length: int | None) -> None:
    """Every clip is at least W long, so pad/repeat/crop give the same data: the same set, the same key."""
    root = tmp_path / "calib"
    _write(root / "a.wav", _ramp(1, 25))
    _write(root / "b.wav", _ramp(101, 12))
    sets = {p: _build(root, clip_length=clip_length, policy=p, size=4) for p in ("pad", "repeat", "crop")}
    for cs in sets.values():
        np.testing.assert_array_equal(cs.data, sets["pad"].data)
    assert len({cs.key for cs in sets.values()}) == 1
    assert len({json.dumps(cs.manifest, sort_keys=True) for cs in sets.values()}) == 1
    assert sets["pad"].manifest["policy"] is None  # no fill was applied
    assert {e["fill"] for e in sets["pad"].manifest["clips"]} <= {"none", "centre-crop"}


def test_effective_policy_matches_the_built_set(folder: Path, tmp_path: Path) -> None:
    """What the calibrate stage keys on: the policy only when some selected clip is shorter than W."""
    from harness.audio._calibration import effective_policy

    def both(root: Path, **kw: object) -> tuple[object, object]:
        args: dict[str, object] = {"sample_rate": SR, "width": W, "clip_length": 8, "policy": "pad", "size": 6}
        args.update(kw)
        return effective_policy(root, **args), _build(root, **kw).manifest["policy"]  # type: ignore[arg-type]

    assert both(folder) == ("pad", "pad")  # b.wav gives a 7-sample clip
    assert both(folder, policy="repeat", size=1) == (None, None)  # only a.wav's first clip is selected
    assert both(folder, policy="repeat", clip_length=None, size=10) == ("repeat", "repeat")
    assert both(folder, policy="crop", size=1) == (None, None)
    root = _clip_folder(tmp_path / "long", 3, 20)
    for policy in ("pad", "repeat", "crop"):
        assert both(root, policy=policy) == (None, None)
    assert both(root, clip_length=4) == ("pad", "pad")
    # unreadable input: the policy as given (the stage itself reports the file)
    assert effective_policy(tmp_path / "nope", sample_rate=SR, width=W, clip_length=8, policy="crop", size=2) == "crop"
    assert effective_policy(root, sample_rate=2 * SR, width=W, clip_length=8, policy="crop", size=2) == "crop"


def test_width_mismatch_warns_once_with_both_numbers(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    sr = 16000
    for name in ["x.wav", "y.wav"]:
        _write(tmp_path / "c" / name, np.full(6400, 1000), sr=sr)
    with caplog.at_level(logging.WARNING, logger="harness.audio"):
        cs = build_calibration_set(
            tmp_path / "c", sample_rate=sr, width=16000, clip_length=3200, policy="pad", size=4
        )
    assert cs.data.shape == (4, 16000)
    msgs = [r.getMessage() for r in caplog.records if r.name == "harness.audio"]
    assert len(msgs) == 1, msgs
    assert "calibration clips are 3200 samples (200.0 ms) but the model input is W=16000 (1000.0 ms)" in msgs[0]
    assert "policy 'pad'" in msgs[0]


def test_no_warning_when_clips_match_width(folder: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="harness.audio"):
        _build(folder, size=1)  # a.wav's first clip only (b.wav's 7 samples would be the second)
    assert caplog.records == []


def test_short_supply_between_min_clips_and_size_warns(folder: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="harness.audio"):
        cs = _build(folder, size=10, min_clips=6)
    assert len(cs) == 6
    assert any("6 of 10 requested clips" in r.getMessage() for r in caplog.records)


def _assert_one_line(exc: pytest.ExceptionInfo[AudioError], path: Path, *parts: str) -> None:
    msg = str(exc.value)
    assert "\n" not in msg and str(path) in msg
    for part in parts:
        assert part in msg, f"{part!r} not in {msg!r}"


def test_too_few_clips(folder: Path) -> None:
    with pytest.raises(AudioError) as exc:
        _build(folder, clip_length=None, size=5, min_clips=4)
    _assert_one_line(exc, folder, "3 whole files from 3 files", "expected at least 4 clips")
    with pytest.raises(AudioError) as exc:
        _build(folder, size=10, min_clips=7)
    _assert_one_line(exc, folder, "6 clips of 8 samples from 3 files", "expected at least 7 clips")


def test_crop_on_short_clip_names_the_file(folder: Path) -> None:
    with pytest.raises(FillPolicyError) as exc:
        _build(folder, policy="crop")
    _assert_one_line(
        exc, folder / "b.wav", "clip of 7 samples at offset 0 is shorter than W=8", "expected clips of at least 8"
    )


def test_folder_and_file_errors(folder: Path, tmp_path: Path) -> None:
    with pytest.raises(AudioError) as exc:
        _build(tmp_path / "nope")
    _assert_one_line(exc, tmp_path / "nope", "no such folder")
    (tmp_path / "empty").mkdir()
    with pytest.raises(AudioError) as exc:
        _build(tmp_path / "empty")
    _assert_one_line(exc, tmp_path / "empty", "no .wav or .flac files")
    _write(folder / "a.wav", _ramp(1, 25), sr=8000)
    with pytest.raises(AudioError) as exc:
        _build(folder)
    _assert_one_line(exc, folder / "a.wav", "8000 Hz; expected 1000 Hz")


@pytest.mark.parametrize(
    "kw",
    [{"policy": "zero"}, {"size": 0}, {"clip_length": 0}, {"width": 0}, {"min_clips": 7, "size": 6}],
)
def test_bad_arguments_are_value_errors(folder: Path, kw: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        _build(folder, **kw)
