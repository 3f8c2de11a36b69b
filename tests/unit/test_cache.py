from __future__ import annotations

from pathlib import Path

import pytest

from harness.cache import CachedBuildError, StageCache, file_sha256, stage_key


def test_key_is_canonical_and_sensitive() -> None:
    a = stage_key("export", 1, {"x": 1, "y": [1, 2]}, ("u",))
    assert a == stage_key("export", 1, {"y": [1, 2], "x": 1}, ("u",))
    assert a != stage_key("export", 2, {"x": 1, "y": [1, 2]}, ("u",))
    assert a != stage_key("export", 1, {"x": 2, "y": [1, 2]}, ("u",))
    assert a != stage_key("export", 1, {"x": 1, "y": [1, 2]}, ("v",))


def test_build_once_then_hit(tmp_path: Path) -> None:
    cache = StageCache(tmp_path / "c")
    calls = []

    def build(d: Path) -> dict:
        calls.append(d)
        (d / "out.txt").write_text("hello")
        return {"n": 1}

    first = cache.build("s", "k1", build)
    second = cache.build("s", "k1", build)
    assert len(calls) == 1
    assert not first.hit and second.hit
    assert (second.path / "out.txt").read_text() == "hello"
    assert second.meta["n"] == 1
    assert not list((tmp_path / "c" / "tmp").iterdir())


def test_failed_build_is_kept_and_not_published(tmp_path: Path) -> None:
    cache = StageCache(tmp_path / "c")

    def build(d: Path) -> dict:
        (d / "stage.log").write_text("boom log")
        raise ValueError("boom")

    with pytest.raises(CachedBuildError) as err:
        cache.build("s", "k", build)
    assert isinstance(err.value.cause, ValueError)
    assert (err.value.failed_dir / "stage.log").read_text() == "boom log"
    assert cache.lookup("s", "k") is None


def test_file_sha256(tmp_path: Path) -> None:
    p = tmp_path / "f.bin"
    p.write_bytes(b"abc")
    assert file_sha256(p) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
