"""The deployable of a split trial (:mod:`harness.segments`): a bundle of segments described by one manifest.

``bundle.json`` (logged as ``compiled/bundle.json``, the trial's ``hefsweep.artifact``; its sha256 is
``hefsweep.artifact_sha256``) holds:

- ``format`` (``hefsweep-bundle``) and ``version`` (:data:`BUNDLE_VERSION`), the ``backend``;
- ``model_input`` / ``model_output``: the whole model's input and output tensors;
- ``segments`` in chain order, each with its ``label`` (``seg i/K``), start / end node names, ``inputs`` and
  ``outputs`` (tensor name, NCHW shape; every input also says where it comes ``from``: ``model_input`` or the
  label of the segment that produces it) and its ``files`` (paths relative to the manifest, with sha256):
  ``deployable`` (the HEF, or the QDQ ONNX for ONNX Runtime), ``emulate`` (what emulation runs: the quantized HAR
  for Hailo, the QDQ ONNX for ONNX Runtime) and, for Hailo, ``io`` (``segment_io.json``: which HN input layer takes
  which tensor, which tensor each HN output is);
- ``glue``: per boundary tensor, its producer and its consumers (the host-side code between the HEFs passes it on);
- ``tiling``: a copy of the trial's tiling record when the trial was tiled, else null.

``hefsweep promote`` checks the manifest's own hash, then every file's sha256 against the manifest
(:func:`verify_files`), then re-emulates the chain (:func:`emulate_bundle`) for its objective check; ``hefsweep pull``
downloads every file (:func:`fetch_files`), verifies the hashes the same way and only then writes them next to the
manifest (``seg1/model.hef`` ...).
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from harness.cache import file_sha256
from harness.errors import HarnessError

__all__ = ["BUNDLE_FORMAT", "BUNDLE_VERSION", "emulate_bundle", "fetch_files", "is_bundle", "read_bundle",
           "verify_files", "write_bundle"]  # fmt: skip

BUNDLE_FORMAT = "hefsweep-bundle"
BUNDLE_VERSION = 1
_IO_FILE = "segment_io.json"


def is_bundle(artifact: str) -> bool:
    """Whether a trial's ``hefsweep.artifact`` is a bundle manifest."""
    return artifact.rsplit("/", 1)[-1] == "bundle.json"


def write_bundle(
    d: Path, backend: str, plan: Any, segments: Sequence[tuple[Any, Any]], tiling: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Copy every segment's files into ``d/seg<i>/`` and write ``d/bundle.json`` (a stage body: returns its meta).

    Args:
        d: The bundle stage's folder.
        backend: The backend's name.
        plan: The :class:`~harness.segments.SegmentPlan`.
        segments: Per segment, its (``Optimized``, compile stage entry).
        tiling: The trial's tiling record, if it was tiled.
    """
    from harness.backends import Compiled
    from harness.pipeline import _from_meta

    producer = {plan.model_input: "model_input"}
    for seg in plan.segments:
        producer.update({t: seg.label for t in seg.outputs})
    rows, files = [], []
    for seg, (optimized, comp) in zip(plan.segments, segments, strict=True):
        compiled = _from_meta(Compiled, comp.meta, comp.path)
        folder = d / f"seg{seg.index + 1}"
        folder.mkdir(parents=True, exist_ok=True)
        wanted = {"deployable": compiled.path}
        if optimized.path.suffix != ".onnx":  # Hailo: the quantized HAR runs the emulation; ORT: the QDQ deployable
            wanted["emulate"] = optimized.path
            io = optimized.path.parent / _IO_FILE
            if io.is_file():
                wanted["io"] = io
        entry: dict[str, Any] = {}
        for kind, src in wanted.items():
            dst = folder / src.name
            shutil.copyfile(src, dst)
            rel = dst.relative_to(d).as_posix()
            entry[kind] = {"file": rel, "sha256": file_sha256(dst), "size_bytes": dst.stat().st_size}
            files.append(rel)
        entry.setdefault("emulate", entry["deployable"])
        rows.append({
            "index": seg.index, "label": seg.label, "start_nodes": list(seg.start_nodes), "end_nodes": list(seg.end_nodes),
            "inputs": [{"name": t, "shape": list(s), "from": producer[t]} for t, s in zip(seg.inputs, seg.input_shapes, strict=True)],
            "outputs": [{"name": t, "shape": list(s)} for t, s in zip(seg.outputs, seg.output_shapes, strict=True)],
            "files": entry,
        })  # fmt: skip
    glue = [
        {"tensor": t, "from": producer[t], "to": [s.label for s in plan.segments if t in s.inputs]}
        for t in dict.fromkeys(t for s in plan.segments for t in s.inputs)
    ]
    manifest = {
        "format": BUNDLE_FORMAT, "version": BUNDLE_VERSION, "backend": backend, "model_input": plan.model_input,
        "model_output": plan.model_output, "cuts": list(plan.cuts), "segments": rows, "glue": glue, "tiling": tiling,
    }  # fmt: skip
    path = d / "bundle.json"
    path.write_text(json.dumps(manifest, indent=2))
    size = sum(r["files"]["deployable"]["size_bytes"] for r in rows)
    return {"sha256": file_sha256(path), "segments": len(rows), "files": files, "size_bytes": size}


def read_bundle(path: Path) -> dict[str, Any]:
    """The manifest at ``path``.

    Raises:
        HarnessError: not a bundle manifest of a version this hefsweep reads.
    """
    try:
        manifest = json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise HarnessError(f"bundle manifest {path}", f"unreadable ({type(exc).__name__}: {exc})", "a bundle.json") from None
    if not isinstance(manifest, dict) or manifest.get("format") != BUNDLE_FORMAT:
        raise HarnessError(f"bundle manifest {path}", f"format {manifest.get('format') if isinstance(manifest, dict) else manifest!r}",
                           f"{BUNDLE_FORMAT!r}")  # fmt: skip
    if manifest.get("version") != BUNDLE_VERSION:
        raise HarnessError(f"bundle manifest {path}", f"version {manifest.get('version')!r}", f"version {BUNDLE_VERSION}")
    return manifest


def _entries(manifest: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(segment label, file, sha256) of every file the manifest lists, each file once."""
    seen: dict[str, tuple[str, str, str]] = {}
    for seg in manifest["segments"]:
        for kind in ("deployable", "emulate", "io"):
            f = seg["files"].get(kind)
            if f is not None:
                seen.setdefault(f["file"], (seg["label"], f["file"], f["sha256"]))
    return list(seen.values())


def verify_files(manifest: dict[str, Any], root: Path, what: str) -> list[tuple[str, str]]:
    """Every file of the manifest, under ``root``, against its sha256.

    Returns:
        (file, sha256) per file.

    Raises:
        HarnessError: a file is missing or its hash differs from the manifest's (a tampered segment).
    """
    out = []
    for label, rel, expected in _entries(manifest):
        path = root / rel
        if not path.is_file():
            raise HarnessError(f"{rel} ({label}) of {what}", "missing", "every file the bundle manifest lists")
        actual = file_sha256(path)
        if actual != expected:
            raise HarnessError(f"{rel} ({label}) of {what}", f"sha256 {actual[:16]}...",
                               f"{expected[:16]}... as recorded in bundle.json (the file was changed; refused)")  # fmt: skip
        out.append((rel, actual))
    return out


def fetch_files(manifest: dict[str, Any], download: Callable[[str, Path], Path], root: Path) -> None:
    """Download every file of the manifest into ``root`` (``download(relative path, destination folder)``)."""
    for _, rel, _ in _entries(manifest):
        dest = root / Path(rel).parent
        dest.mkdir(parents=True, exist_ok=True)
        got = download(rel, dest)
        if got != dest / Path(rel).name:
            shutil.move(str(got), dest / Path(rel).name)


def emulate_bundle(spec: Any, manifest: dict[str, Any], root: Path, inputs: np.ndarray, workdir: Path,
                   timeout: float) -> np.ndarray:  # fmt: skip
    """The chain of the bundle's segments on ``inputs`` ``[n,1,1,W]`` in the backend's own interpreter.

    Raises:
        HarnessError: the emulation failed.
    """
    from harness.backends import Optimized
    from harness.backends._protocol import Segment, SegmentChain
    from harness.isolation import IsolatedFailure, run_isolated

    count = len(manifest["segments"])
    segments, optimized = [], []
    for row in manifest["segments"]:
        ins, outs = row["inputs"], row["outputs"]
        segments.append(Segment(
            int(row["index"]), count, tuple(row["start_nodes"]), tuple(row["end_nodes"]),
            tuple(i["name"] for i in ins), tuple(o["name"] for o in outs),
            tuple(tuple(i["shape"]) for i in ins), tuple(tuple(o["shape"]) for o in outs),
        ))  # fmt: skip
        optimized.append(Optimized(path=root / row["files"]["emulate"]["file"]))
    chain = SegmentChain(tuple(segments), tuple(optimized), manifest["model_input"], manifest["model_output"])
    x_npy, y_npy = workdir / "inputs.npy", workdir / "outputs.npy"
    np.save(x_npy, inputs)
    try:
        run_isolated("harness._stage_calls:emulate", spec, chain, x_npy, y_npy, timeout=timeout,
                     log_path=workdir / "emulate.log", python=spec.interpreter())  # fmt: skip
    except IsolatedFailure as exc:
        raise HarnessError("emulation of the bundle", f"{exc.exc_class}: {exc.message[:300]}", "a chain that runs") from None
    return np.load(y_npy)
