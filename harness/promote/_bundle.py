"""A split run's bundle (:mod:`harness.bundle`): its segment files checked against the manifest at promotion
(:class:`_Bundle`, whose chain the emulation check runs), and restored verified by pull (:func:`_pull_bundle`,
:func:`_place_bundle`)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from harness.promote._records import Check
from harness.promote._store import _download


class _Bundle:
    """A split run's bundle (:mod:`harness.bundle`): its manifest (already checked against the run's
    ``hefsweep.artifact_sha256``) and every segment file, downloaded and checked against the manifest."""

    def __init__(self, manifest: dict[str, Any], root: Path, check: Check) -> None:
        self.manifest, self.root, self.check = manifest, root, check

    @classmethod
    def of_run(cls, artifact: str, local: Path, base: str, workdir: Path, tracking_uri: str, rid: str) -> _Bundle | None:
        """None unless the run's artifact is a ``bundle.json``.

        Raises:
            HarnessError: a segment file missing or changed (its sha256 differs from the manifest's).
        """
        from harness.bundle import fetch_files, is_bundle, read_bundle, verify_files

        if not is_bundle(artifact):
            return None
        manifest = read_bundle(local)
        folder = artifact.rsplit("/", 1)[0]
        root = workdir / "bundle"

        def download(rel: str, dest: Path) -> Path:
            return _download(f"{base}/{folder}/{rel}", dest, tracking_uri, f"{folder}/{rel} of run {rid}")

        fetch_files(manifest, download, root)
        files = verify_files(manifest, root, f"run {rid}")
        n = len(manifest["segments"])
        return cls(manifest, root, Check("bundle", "ok", f"{n} segments, {len(files)} files match bundle.json"))

    def emulate(self, spec: Any, inputs: np.ndarray, workdir: Path, timeout: float) -> np.ndarray:
        """The chain of the bundle's segments on ``inputs`` (:func:`harness.bundle.emulate_bundle`)."""
        from harness.bundle import emulate_bundle

        return emulate_bundle(spec, self.manifest, self.root, inputs, workdir, timeout)


def _pull_bundle(source: str, local: Path, tmp: Path, tracking_uri: str, what: str) -> list[tuple[Path, str]]:
    """A split version's segment files (beside its verified ``bundle.json``), downloaded into ``tmp`` and checked
    against the manifest: (local file, path relative to the manifest); empty for a version that is not a bundle."""
    from harness.bundle import fetch_files, is_bundle, read_bundle, verify_files

    if not is_bundle(source):
        return []
    manifest = read_bundle(local)
    folder = source.rsplit("/", 1)[0]
    root = tmp / "bundle"

    def download(rel: str, dest: Path) -> Path:
        return _download(f"{folder}/{rel}", dest, tracking_uri, f"{rel} of {what}")

    fetch_files(manifest, download, root)
    return [(root / rel, rel) for rel, _ in verify_files(manifest, root, what)]


def _place_bundle(files: list[tuple[Path, str]], out: Path) -> list[Path]:
    """Write verified bundle files into ``out`` at their paths relative to the manifest (``seg1/model.hef`` ...)."""
    written = []
    for src, rel in files:
        dest = out / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        staging = dest.with_name(f".{dest.name}.{os.getpid()}.partial")
        shutil.copyfile(src, staging)
        os.replace(staging, dest)
        written.append(dest)
    return written
