"""The records of one trial: what it is asked (:class:`TrialConfig`), what it produced (:class:`TrialResult`),
the stage names and their cache-key versions, and the exceptions that end a stage early (:class:`StagePruned`,
:class:`_NoiseUnavailable`, :class:`_StageFailed`)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.failures import Failure

_CLIPS_PER_CALL = 2  # emulation granularity when a pruner watches per-clip SI-SNR
STAGES = (
    "recover", "export", "calibrate", "original", "reference", "translate", "optimize", "compile", "emulate", "noise"
)
_VERSIONS = {"export": 1, "calibrate": 1, "original": 1, "reference": 1, "translate": 2, "optimize": 2, "compile": 1, "emulate": 4}


@dataclass(frozen=True)
class TrialConfig:
    """The values of one trial's dimensions.

    ``gln_stats``, ``decoder`` and ``mask_mul`` are the exact topology rewrites (:mod:`harness.substitutions`);
    their defaults are the model's own forms, and they enter the export's cache key only when not default.
    """

    prelu: str = "keep"
    norm: str | None = None
    clamp: float | None = None
    gln_stats: str = "joint"
    decoder: str = "grouped"
    mask_mul: str = "repeat"
    width: int = 16000
    calib_clip_length: int | None = None
    calib_fill: str = "repeat"
    calib_size: int = 16
    calib_method: str = "minmax"
    override_set: str = "none"
    recover_steps: int = 0
    tile_width: int | None = None
    tile_context: int | None = None
    segments: int = 1
    n_filters: int | None = None
    bn_chan: int | None = None
    hid_chan: int | None = None
    skip_chan: int | None = None
    n_blocks: int | None = None
    n_repeats: int | None = None

    def to_dict(self) -> dict[str, Any]:
        """Flat parameters (for MLflow params and cache keys)."""
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class TrialResult:
    """What a trial produced.

    Attributes:
        status: ``ok`` or ``failed``.
        metrics: SI-SNR metrics and seconds per stage.
        failure: The classified failure of the first failing stage.
        artifacts: (local path, artifact folder) pairs to log.
        stages: Per stage: cache key, whether it was a cache hit, seconds.
        info: Substitutions that fired, export op counts, compile facts ...
    """

    status: str
    metrics: dict[str, float] = field(default_factory=dict)
    failure: Failure | None = None
    artifacts: tuple[tuple[Path, str], ...] = ()
    stages: dict[str, dict[str, Any]] = field(default_factory=dict)
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """True when every stage passed."""
        return self.status == "ok"


class StagePruned(Exception):
    """Emulation stopped early: the trial's per-clip SI-SNR is significantly worse than the best trial's.

    Marked ``transient`` so the stage cache does not record it as the stage's outcome.
    """

    transient = True

    def __init__(self, clips: int) -> None:
        self.clips = clips
        super().__init__(f"pruned after {clips} clips")


class _NoiseUnavailable(Exception):
    """The noise stage hung or its worker died: this trial reports "not available" (``summary``, files in
    ``folder``, outside the stage cache), and the cache does not publish it (``transient``): a passing hiccup must
    not stand for every later trial of the key."""

    transient = True

    def __init__(self, summary: dict[str, Any], folder: Path) -> None:
        self.summary = summary
        self.folder = folder
        super().__init__(str(summary.get("reason", "not available")))


class _StageFailed(Exception):
    """A stage failed: its classified failure, the failed build's folder (its files become the trial's
    ``failed_<stage>`` artifacts; None when there is none) and the traceback. Ends the trial: :meth:`Pipeline.run`
    turns it into a ``failed`` result."""

    def __init__(self, failure: Failure, failed_dir: Path | None, traceback_text: str) -> None:
        self.failure = failure
        self.failed_dir = failed_dir
        self.traceback_text = traceback_text
        super().__init__(failure.signature)
