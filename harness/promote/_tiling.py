"""A time-tiled run's deployment recipe (``compiled/tiling.json``, :mod:`harness.tiling`): checked against its
trial at promotion (:class:`_Tiling`, whose plan the emulation check runs) and restored verified by pull
(:func:`_pull_tiling`)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from harness.errors import HarnessError
from harness.promote._records import Check
from harness.promote._store import _check_sha256, _download


@dataclass(frozen=True)
class _Tiling:
    """A tiled run's ``compiled/tiling.json`` (:mod:`harness.tiling`), checked against the sha256 its trial recorded
    (``trial.json`` ``tiling.sha256``); promotion tags the version with it so :func:`pull` brings it back verified."""

    plan: Any
    sha256: str
    check: Check

    ARTIFACT = "compiled/tiling.json"

    @classmethod
    def of_run(cls, run: Any, workdir: Path, tracking_uri: str) -> _Tiling | None:
        """None for an untiled run (no ``tiling`` in ``trial.json``, or a tile width that ran untiled).

        Raises:
            HarnessError: ``tiling.json`` missing, changed since the trial, or not a plan for the run's width.
        """
        from harness.tiling import TilePlan

        if run.data.params.get("tile_width") in (None, "None", ""):
            return None
        rid, base = run.info.run_id, run.info.artifact_uri
        trial = _download(f"{base}/trial.json", workdir / "trial_tiling", tracking_uri, f"trial.json of run {rid}")
        try:
            info = json.loads(trial.read_text()).get("tiling") or {}
        except (ValueError, AttributeError) as exc:
            raise HarnessError(f"trial.json of run {rid}", f"unreadable ({type(exc).__name__}: {exc})",
                               "the JSON a sweep logs") from None  # fmt: skip
        if not info.get("tiled"):
            return None
        obj = f"artifact {cls.ARTIFACT} of run {rid}"
        local = _download(f"{base}/{cls.ARTIFACT}", workdir / "tiling", tracking_uri, obj)
        sha = _check_sha256(local, str(info.get("sha256")), obj, "as recorded in the trial's trial.json (tiling.sha256)")
        try:
            plan = TilePlan.from_json(json.loads(local.read_text()))
        except ValueError as exc:
            raise HarnessError(obj, str(exc), "the tiling plan the trial ran") from None
        if plan.width != int(run.data.params["width"]):
            raise HarnessError(obj, f"width {plan.width}", f"the run's width {run.data.params['width']}")
        detail = (f"{sha[:16]}... matches the trial's; {plan.n_tiles} tiles of {plan.tile_width} "
                  f"(context {plan.context}, hop {plan.hop}) per {plan.width}-sample clip")  # fmt: skip
        return cls(plan, sha, Check("tiling", "ok", detail))

    def inputs(self, ev: Any, base: str, workdir: Path, tracking_uri: str, rid: str) -> tuple[np.ndarray, np.ndarray]:
        """The evaluation clips as this plan's tiles ``[n * n_tiles, 1, 1, T]`` and the float tile model's outputs on
        them (``export_tile/model.onnx``: what a shorter backend output is aligned against, as in the trial)."""
        from harness.backends._ort import run_onnx

        tiles = np.ascontiguousarray(self.plan.split(ev.mixtures)[:, None, None, :], dtype=np.float32)
        onnx_path = _download(f"{base}/export_tile/model.onnx", workdir / "export_tile", tracking_uri,
                              f"export_tile/model.onnx of run {rid}")  # fmt: skip
        return tiles, run_onnx(onnx_path, tiles)

    def tags(self) -> dict[str, str]:
        """The model version's tags naming the recipe and its hash."""
        return {"hefsweep.tiling": self.ARTIFACT, "hefsweep.tiling_sha256": self.sha256}


def _pull_tiling(source: str, tags: dict[str, str], tmp: Path, tracking_uri: str, what: str) -> Path | None:
    """A tiled version's ``tiling.json`` (beside its artifact), downloaded into ``tmp`` and checked against the
    version's ``hefsweep.tiling_sha256``; None for an untiled version."""
    expected = tags.get("hefsweep.tiling_sha256")
    if not expected:
        return None
    uri = f"{source.rsplit('/', 1)[0]}/{Path(tags.get('hefsweep.tiling', 'tiling.json')).name}"
    local = _download(uri, tmp / "tiling", tracking_uri, f"tiling.json of {what}")
    _check_sha256(local, expected, f"tiling.json {uri} of {what}",
                  "as recorded on the version (hefsweep.tiling_sha256; the stored file was changed; refused)")  # fmt: skip
    return local
