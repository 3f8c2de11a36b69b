"""load_eval_set: LibriMix layout, aligned fitting of mixtures and sources, key, errors."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from harness.audio import load_eval_set
from harness.errors import AudioError

SR = 1000
W = 8


def _write(path: Path, values: np.ndarray, sr: int = SR) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), np.asarray(values, dtype=np.int16), sr, subtype="PCM_16", format="WAV")


def _signals(seed: int, n: int, n_src: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    src = rng.integers(-9000, 9000, size=(n_src, n)).astype(np.int16)
    src[:, 0] = 1000  # never silent
    return src.sum(axis=0).astype(np.int16), src


def _make(root: Path, lengths: dict[str, int], n_src: int = 2, with_sources: bool = True) -> dict[str, tuple]:
    """Write mixture/<name> and s1..s<n_src>/<name>; return name -> (mixture, sources) as float."""
    out = {}
    for i, (name, n) in enumerate(lengths.items()):
        mix, src = _signals(i, n, n_src)
        _write(root / "mixture" / name, mix)
        if with_sources:
            for k in range(n_src):
                _write(root / f"s{k + 1}" / name, src[k])
        out[name] = (mix / 32768.0, src / 32768.0)
    return out


def test_loads_and_fits_mixture_and_sources_alike(tmp_path: Path) -> None:
    # b: longer than W (11 -> centre crop from sample 1), a: shorter (5 -> zeros appended), c: exact
    truth = _make(tmp_path, {"b.wav": 11, "a.wav": 5, "c.wav": 8})
    es = load_eval_set(tmp_path, sample_rate=SR, width=W, n_src=2)
    assert es.names == ("a.wav", "b.wav", "c.wav") and len(es) == 3
    assert es.mixtures.shape == (3, W) and es.mixtures.dtype == np.float32
    assert es.sources is not None and es.sources.shape == (3, 2, W) and es.sources.dtype == np.float32
    assert es.lengths == (5, 8, 8)

    mix_a, src_a = truth["a.wav"]
    np.testing.assert_array_equal(es.mixtures[0], np.concatenate([mix_a, np.zeros(3)]).astype(np.float32))
    np.testing.assert_array_equal(es.sources[0, 1], np.concatenate([src_a[1], np.zeros(3)]).astype(np.float32))
    mix_b, src_b = truth["b.wav"]
    np.testing.assert_array_equal(es.mixtures[1], mix_b[1:9].astype(np.float32))
    np.testing.assert_array_equal(es.sources[1], src_b[:, 1:9].astype(np.float32))
    np.testing.assert_array_equal(es.mixtures[2], truth["c.wav"][0].astype(np.float32))
    assert not es.mixtures.flags.writeable and not es.sources.flags.writeable


def test_without_source_folders_sources_is_none(tmp_path: Path) -> None:
    _make(tmp_path, {"a.wav": 8}, with_sources=False)
    es = load_eval_set(tmp_path, sample_rate=SR, width=W, n_src=2)
    assert es.sources is None and es.mixtures.shape == (1, W)


def test_limit_takes_the_first_names(tmp_path: Path) -> None:
    _make(tmp_path, {"c.wav": 8, "a.wav": 8, "b.wav": 8})
    es = load_eval_set(tmp_path, sample_rate=SR, width=W, n_src=2, limit=2)
    assert es.names == ("a.wav", "b.wav") and es.sources is not None and es.sources.shape == (2, 2, W)


def test_key_stable_and_content_addressed(tmp_path: Path) -> None:
    root = tmp_path / "eval"
    _make(root, {"a.wav": 8, "b.wav": 9})
    key = load_eval_set(root, sample_rate=SR, width=W, n_src=2).key
    assert load_eval_set(root, sample_rate=SR, width=W, n_src=2).key == key
    moved = root.rename(tmp_path / "moved")
    assert load_eval_set(moved, sample_rate=SR, width=W, n_src=2).key == key
    assert load_eval_set(moved, sample_rate=SR, width=W - 1, n_src=2).key != key
    _write(moved / "s2" / "b.wav", _signals(7, 9, 1)[1][0])
    assert load_eval_set(moved, sample_rate=SR, width=W, n_src=2).key != key


def _assert_one_line(exc: pytest.ExceptionInfo[AudioError], path: Path, *parts: str) -> None:
    msg = str(exc.value)
    assert "\n" not in msg and str(path) in msg
    for part in parts:
        assert part in msg, f"{part!r} not in {msg!r}"


def test_missing_folder_and_mixture_folder(tmp_path: Path) -> None:
    with pytest.raises(AudioError) as exc:
        load_eval_set(tmp_path / "nope", sample_rate=SR, width=W, n_src=2)
    _assert_one_line(exc, tmp_path / "nope", "no such folder", "mixture/")
    (tmp_path / "s1").mkdir()
    with pytest.raises(AudioError) as exc:
        load_eval_set(tmp_path, sample_rate=SR, width=W, n_src=2)
    _assert_one_line(exc, tmp_path / "mixture", "no such folder", "expected mixture/")


def test_empty_mixture_folder(tmp_path: Path) -> None:
    (tmp_path / "mixture").mkdir()
    with pytest.raises(AudioError) as exc:
        load_eval_set(tmp_path, sample_rate=SR, width=W, n_src=2)
    _assert_one_line(exc, tmp_path / "mixture", "no .wav or .flac files")


def test_missing_source_file(tmp_path: Path) -> None:
    _make(tmp_path, {"a.wav": 8, "b.wav": 8})
    (tmp_path / "s2" / "b.wav").unlink()
    with pytest.raises(AudioError) as exc:
        load_eval_set(tmp_path, sample_rate=SR, width=W, n_src=2)
    _assert_one_line(exc, tmp_path / "s2" / "b.wav", "missing (mixture/b.wav has no s2/ file)", "s1/, s2/")


def test_source_length_differs_from_mixture(tmp_path: Path) -> None:
    _make(tmp_path, {"a.wav": 8})
    _write(tmp_path / "s1" / "a.wav", _signals(3, 6, 1)[1][0])
    with pytest.raises(AudioError) as exc:
        load_eval_set(tmp_path, sample_rate=SR, width=W, n_src=2)
    _assert_one_line(exc, tmp_path / "s1" / "a.wav", "6 samples; expected 8 samples like mixture/a.wav")


@pytest.mark.parametrize(
    ("folders", "n_src", "seen"),
    [
        (["s1", "s2", "s3"], 2, "3 source folders (s1, s2, s3); expected 2 (s1, s2) for n_src=2"),
        (["s1"], 2, "1 source folders (s1); expected 2 (s1, s2)"),
        (["s1", "s3"], 2, "2 source folders (s1, s3); expected 2 (s1, s2)"),
    ],
)
def test_source_folder_count_must_match_n_src(tmp_path: Path, folders: list[str], n_src: int, seen: str) -> None:
    _make(tmp_path, {"a.wav": 8}, n_src=3)
    for d in {"s1", "s2", "s3"} - set(folders):
        shutil.rmtree(tmp_path / d)
    with pytest.raises(AudioError) as exc:
        load_eval_set(tmp_path, sample_rate=SR, width=W, n_src=n_src)
    _assert_one_line(exc, tmp_path, seen)


def test_bad_file_is_named(tmp_path: Path) -> None:
    _make(tmp_path, {"a.wav": 8})
    _write(tmp_path / "s1" / "a.wav", _signals(0, 8, 1)[1][0], sr=8000)
    with pytest.raises(AudioError) as exc:
        load_eval_set(tmp_path, sample_rate=SR, width=W, n_src=2)
    _assert_one_line(exc, tmp_path / "s1" / "a.wav", "8000 Hz; expected 1000 Hz")


@pytest.mark.parametrize("kw", [{"width": 0}, {"n_src": 0}, {"limit": 0}])
def test_bad_arguments(tmp_path: Path, kw: dict[str, int]) -> None:
    _make(tmp_path, {"a.wav": 8})
    args = {"sample_rate": SR, "width": W, "n_src": 2, **kw}
    with pytest.raises(ValueError):
        load_eval_set(tmp_path, **args)
