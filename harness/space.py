"""The sweep's search space: a YAML file, validated on load into frozen models.

Schema (every key optional unless marked; unknown keys are rejected)::

    study: demo                        # default study name (CLI --study overrides)
    checkpoint: ../assets/demo.pt      # asteroid-format Conv-TasNet checkpoint; exactly one of checkpoint and model
    model: {onnx: ../m.onnx, sample_rate: 16000}   # or an existing ONNX as the model (harness/onnx_model): 4-D
                                       #   [N,1,1,T] as is, 3-D [N,1,T] / [N,T] converted; sources from its output
                                       #   shape, the sample rate given here; only the exact dimensions apply
    backend: ort                       # ort (default) | hailo
    backend_options: {}                # backend constructor options, e.g. {hw_arch: hailo8} for hailo
    data:
      calibration: ../data/demo/calib  # REQUIRED; folder of WAV/FLAC mixtures, or an .npz/.npy file of clips
                                       #   ({path: FILE.npz, key: calib_data} names the .npz array)
      evaluation: ../data/demo/eval    # REQUIRED; mixture/ (+ s1/, s2/ ...) folders, or a LibriMix split:
                                       #   {path: DIR, layout: librimix, mix: mix_clean} (or mix_both, mix_single)
      eval_clips: 8                    # how many evaluation mixtures to score
      min_calibration_clips: 4         # fewer available clips is an input error
      resample: false                  # true: audio at another rate is resampled to the model's (soxr)
      channel: null                    # which channel of multi-channel files to use (0-based); null refuses them
    trials: 12                         # default number of trials (CLI --trials overrides)
    timeout: 600                       # sweep time budget in seconds (CLI --timeout overrides)
    stage_timeout: 300                 # per isolated stage (optimize, compile, emulate), seconds
    seed: 0                            # sampler seed
    fidelity_gate_db: 60               # export gate: SI-SNR(torch, ONNX float) must reach this
    max_repairs: null                  # repair loop after optimize/compile failures (default: hailo 6, ort 0)
    repair_trials: true                # enqueue follow-up trials after a failure (harness/followups.py)
    goal_db: null                      # stop the study when a feasible trial reaches this si_snr_db
    worst_clip_floor_db: null          # constraint: the worst clip's SI-SNR must reach this
    heartbeat: {interval: 10, grace: 60, max_retry: 2}   # crash safety: stale trials are retried
    pruner: null                       # {kind: wilcoxon, p_threshold: 0.1}: stop emulating clearly worse trials
    screen: null                       # {keep_fraction: 0.5, min_screened: 4}: screen trials on ort first
    compile_top_k: null                # compile only trials whose emulated si_snr_db is in the top k so far
    layer_noise_clips: 1               # per-layer SQNR table per trial over this many eval clips (0 = off)
    dimensions:                        # each: a list (categorical), {low, high[, step, log]} or a scalar (fixed)
      prelu: [keep, relu, maxmin]
      norm: [gLN, cLN, affine, identity]
      clamp: [null, 8.0]
      gln_stats: [joint, split]        # exact: gLN mean/variance as one ReduceMean over (C, H, W) | two single-axis
                                       #   ReduceMeans (time, then channels), the form the real DFC parsed
      decoder: [grouped, per_source]   # exact: one grouped ConvTranspose | one ungrouped ConvTranspose per source
                                       #   (the DFC: "Super deconv is not supported with groups")
      mask_mul: [repeat, per_source]   # exact: masks * cat([w] * n_src) | mask conv split per source, each mask * w
                                       #   (the DFC: "Reshape is needed for layers: ... shortcut1, concat1, ew_mult1")
      width: [8000, 16000]             # input length W in samples
      calib_clip_length: [3200, 16000] # samples cut from each calibration file
      calib_fill: [pad, repeat, crop]
      calib_size: {low: 8, high: 16, step: 8}
      calib_method: [minmax, percentile]
      override_set: [none, io16]
      recover_steps: [0, 500]          # distillation steps after lossy substitutions (0 = off; harness/recover.py)
      tile_width: [null, 3200]         # time tiling: the model is built at this W and run over `width`-long audio
                                       #   as overlapping windows (null = untiled; harness/tiling.py)
      tile_context: [null, 512]        # samples of context each side of a tile (null = the receptive field)
      segments: [1, 3]                 # split HEFs: K consecutive segments at module boundaries (1 = one HEF;
                                       #   harness/segments.py)
      n_filters: null                  # capacity (mode: frontier): asteroid model_args; null = the checkpoint's
      bn_chan: null                    #   (also hid_chan, skip_chan, n_blocks, n_repeats)
    recover_seconds: 300               # time budget of one recover stage (training stops when it is reached)
    mode: search                       # search (maximise si_snr_db) | frontier (maximise capacity subject to
                                       #   compiling: "what is the largest model this chip can take")
    enqueue:                           # configurations to try first (dimension -> value; others sampled)
      - {prelu: keep, calib_fill: pad}
    override_sets:                     # names used by dimensions.override_set
      none: []
      io16:
        - {kind: precision16, layers: [input, output, "*Sigmoid*"]}

Relative paths are resolved against the YAML file's folder.

Data formats (:mod:`harness.audio`): an ``.npz`` calibration file is read with ``allow_pickle=False`` (an object
array such as a list of source paths is never unpickled); its clips are ``(N, T)``, NHWC ``(N, 1, T, 1)`` or NCHW
``(N, 1, 1, T)``, its ``sample_rate`` entry is checked against the model's (a ``.npy``, or an ``.npz`` without
one, is taken at the model's rate), and each row counts as one file of a folder. The calibration manifest
names every clip's source: file (``row`` and ``key`` for an array) and offset. ``resample`` and ``channel`` apply
to calibration and evaluation alike; both may also be given per entry (``{path: ..., channel: 1}``).

The three exact dimensions (``gln_stats``, ``decoder``, ``mask_mul``; :mod:`harness.substitutions`) rewrite how the
graph is written, never the function or the weights; their defaults (``joint``, ``grouped``, ``repeat``) are the
model's own forms. ``mask_mul: per_source`` with ``decoder: grouped`` concatenates the per-source masked encodings
(distinct tensors) into the grouped decoder; with ``decoder: per_source`` each goes to its own decoder. At their
defaults they are left out of :meth:`SearchSpace.fingerprint`, so studies made before they existed stay valid.

``recover_steps`` (an integer >= 0, default 0 = off) adds the ``recover`` stage before the export
(:mod:`harness.recover`): the substituted model is fine-tuned for that many Adam steps to reproduce the original
checkpoint's outputs on the calibration audio (teacher-student distillation, no labels), within
``recover_seconds``. Trials whose substitutions are all exact (``prelu: maxmin``, the topology rewrites, ``norm``
equal to the checkpoint's) skip it. At 0 it is left out of the fingerprint like the exact dimensions.
"""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from harness.audio._sources import CalibrationData, EvaluationData
from harness.backends import BackendSpec, Override, OverrideSet
from harness.backends._protocol import OverrideKind
from harness.errors import ConfigError

__all__ = ["Dimension", "IntRange", "SearchSpace", "load_space"]

_FROZEN = ConfigDict(extra="forbid", frozen=True)

PRELU = ("keep", "relu", "maxmin")
NORMS = ("gLN", "cLN", "affine", "identity")
FILLS = ("pad", "repeat", "crop")
METHODS = ("minmax", "percentile", "entropy")
GLN_STATS = ("joint", "split")
DECODERS = ("grouped", "per_source")
MASK_MULS = ("repeat", "per_source")
#: The exact topology dimensions at their defaults (the model's own forms).
EXACT_DEFAULTS: dict[str, str] = {"gln_stats": "joint", "decoder": "grouped", "mask_mul": "repeat"}
#: Dimensions left out of the fingerprint at these defaults (studies made before they existed stay valid).
#: The capacity dimensions (``mode: frontier``; null = the checkpoint's own value), asteroid ``model_args`` names.
ARCH_DIMS = ("n_filters", "bn_chan", "hid_chan", "skip_chan", "n_blocks", "n_repeats")
#: The deployment-shape dimensions at their defaults (monolithic, untiled).
DEPLOY_DEFAULTS: dict[str, Any] = {"tile_width": None, "tile_context": None, "segments": 1}
#: Dimensions left out of the fingerprint at these defaults (studies made before they existed stay valid).
FINGERPRINT_DEFAULTS: dict[str, Any] = {
    **EXACT_DEFAULTS, "recover_steps": 0, **DEPLOY_DEFAULTS, **dict.fromkeys(ARCH_DIMS),
}


class IntRange(BaseModel):
    """An integer range dimension: ``{low, high, step, log}``."""

    model_config = _FROZEN
    low: int
    high: int
    step: int = 1
    log: bool = False

    @model_validator(mode="after")
    def _check(self) -> IntRange:
        if self.low > self.high:
            raise ValueError(f"low {self.low} > high {self.high}; expected low <= high")
        if self.step < 1:
            raise ValueError(f"step {self.step}; expected >= 1")
        if self.log and (self.low < 1 or self.step != 1):
            raise ValueError("log ranges need low >= 1 and step 1")
        return self


Scalar = int | float | str | None
Dimension = IntRange | list[Scalar] | Scalar


class Heartbeat(BaseModel):
    """Crash safety: a trial whose worker stops heartbeating for ``grace`` seconds is failed and retried."""

    model_config = _FROZEN
    interval: Annotated[int, Field(ge=1)] = 10
    grace: Annotated[int, Field(ge=2)] = 60
    max_retry: Annotated[int, Field(ge=0)] = 2

    @model_validator(mode="after")
    def _check(self) -> Heartbeat:
        if self.grace <= self.interval:
            raise ValueError(f"grace {self.grace} <= interval {self.interval}; expected grace > interval")
        return self


class Pruner(BaseModel):
    """Early stopping of emulation over clips (Optuna's WilcoxonPruner against the best trial's clips)."""

    model_config = _FROZEN
    kind: Literal["wilcoxon"] = "wilcoxon"
    p_threshold: Annotated[float, Field(gt=0, lt=1)] = 0.1
    n_startup_steps: Annotated[int, Field(ge=0)] = 2


class Screen(BaseModel):
    """Multi-fidelity: run each trial on the cheap ONNX Runtime backend first; only the promising go on."""

    model_config = _FROZEN
    keep_fraction: Annotated[float, Field(gt=0, le=1)] = 0.5
    min_screened: Annotated[int, Field(ge=1)] = 4


class Data(BaseModel):
    """Where the audio lives and how to read it (see the module docstring).

    ``calibration`` and ``evaluation`` are given as a path or a mapping (``{path: ..., key: ...}``,
    ``{path: ..., layout: librimix, mix: ...}``); ``resample`` and ``channel`` are copied into both unless an
    entry sets its own. ``os.fspath(data.calibration)`` is the path.
    """

    model_config = _FROZEN
    calibration: CalibrationData
    evaluation: EvaluationData
    eval_clips: Annotated[int, Field(ge=1, le=1000)] = 8
    min_calibration_clips: Annotated[int, Field(ge=1)] = 4
    resample: bool = False
    channel: Annotated[int, Field(ge=0)] | None = None

    @model_validator(mode="before")
    @classmethod
    def _entries(cls, raw: Any) -> Any:
        """A plain path is ``{path: PATH}``; the data-level read options are the entries' defaults."""
        if not isinstance(raw, dict):
            return raw
        out = dict(raw)
        shared = {k: raw[k] for k in ("resample", "channel") if k in raw}
        for name in ("calibration", "evaluation"):
            entry = raw.get(name)
            if isinstance(entry, str | Path):
                entry = {"path": entry}
            if isinstance(entry, dict):
                out[name] = {**shared, **entry}
        return out


# what an ONNX tensor/node name or a Hailo layer name is made of, plus glob characters: nothing that could close a
# model-script statement or argument list (quotes, ';', ',', '=', parentheses, braces, whitespace); or a Hailo HN
# selector, ``type:<glob>`` or ``role:<name>`` with a known role (harness/backends/hailo/_layers.py ROLES, kept equal
# by tests/unit/backends/test_hailo_roles.py)
_LAYER_PATTERN = re.compile(
    r"role:(?:gln_mean_pool|gln_var_pool|gln_stats|norm_stats|norm_rsqrt|norm_out|prelu|mask|decoder|encoder|io)"
    r"|type:[a-z_*?\[\]]{1,60}"
    r"|(?!role:|type:)[A-Za-z0-9_./:*?\[\]-]{1,200}"
)


class OverrideModel(BaseModel):
    """One override entry of an override set."""

    model_config = _FROZEN
    kind: OverrideKind
    layers: tuple[str, ...] = ()
    value: float | int | str | None = None

    @field_validator("layers")
    @classmethod
    def _names(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        for name in v:
            if not _LAYER_PATTERN.fullmatch(name):
                raise ValueError(
                    f"layer pattern {name!r}; expected a layer name or glob of letters, digits and _ . / : - * ? [ ] "
                    "(at most 200 characters)"
                )
        return v

    @model_validator(mode="after")
    def _lever(self) -> OverrideModel:
        """Compiler levers (performance_param, resources_param, ...) are global with a checked value."""
        from harness.backends._overrides import LEVER_KINDS, LeverValueError, lever_args

        if self.kind in LEVER_KINDS:
            if self.layers:
                raise ValueError(f"{self.kind} without layers (a global compiler lever)")
            try:
                lever_args(self.kind, self.value)
            except LeverValueError:
                raise ValueError(f"{self.kind} value: {LEVER_KINDS[self.kind][1]}") from None
        return self


class Dimensions(BaseModel):
    """The searched (or fixed) dimensions of a trial."""

    model_config = _FROZEN
    prelu: Dimension = "keep"
    norm: Dimension = None
    clamp: Dimension = None
    gln_stats: Dimension = "joint"
    decoder: Dimension = "grouped"
    mask_mul: Dimension = "repeat"
    width: Dimension = 16000
    calib_clip_length: Dimension = None
    calib_fill: Dimension = "repeat"
    calib_size: Dimension = 16
    calib_method: Dimension = "minmax"
    override_set: Dimension = "none"
    recover_steps: Dimension = 0
    tile_width: Dimension = None
    tile_context: Dimension = None
    segments: Dimension = 1
    n_filters: Dimension = None
    bn_chan: Dimension = None
    hid_chan: Dimension = None
    skip_chan: Dimension = None
    n_blocks: Dimension = None
    n_repeats: Dimension = None

    @model_validator(mode="after")
    def _check(self) -> Dimensions:
        allowed: dict[str, tuple[Any, ...]] = {
            "prelu": PRELU,
            "norm": (*NORMS, None),
            "calib_fill": FILLS,
            "calib_method": METHODS,
            "gln_stats": GLN_STATS,
            "decoder": DECODERS,
            "mask_mul": MASK_MULS,
        }
        for key, ok in allowed.items():
            for v in _values(getattr(self, key), key):
                if v not in ok:
                    raise ValueError(f"{key}: {v!r} is not allowed; expected one of {list(ok)}")
        for key in ("width", "calib_clip_length", "calib_size"):
            for v in _values(getattr(self, key), key):
                if v is None and key == "calib_clip_length":
                    continue
                if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                    raise ValueError(f"{key}: {v!r}; expected a positive integer")
                if key == "width" and v < 256:
                    raise ValueError(f"width: {v}; expected >= 256 samples")
        for v in _values(self.recover_steps, "recover_steps"):
            if not isinstance(v, int) or isinstance(v, bool) or v < 0:
                raise ValueError(f"recover_steps: {v!r}; expected an integer >= 0 (0 = no recovery)")
        for v in _values(self.tile_width, "tile_width"):
            if v is not None and (not isinstance(v, int) or isinstance(v, bool) or v < 256):
                raise ValueError(f"tile_width: {v!r}; expected null (untiled) or an integer >= 256 samples")
        for v in _values(self.tile_context, "tile_context"):
            if v is not None and (not isinstance(v, int) or isinstance(v, bool) or v < 0):
                raise ValueError(f"tile_context: {v!r}; expected null (the receptive field) or an integer >= 0 samples")
        for v in _values(self.segments, "segments"):
            if not isinstance(v, int) or isinstance(v, bool) or not 1 <= v <= 16:
                raise ValueError(f"segments: {v!r}; expected an integer in [1, 16] (1 = one HEF)")
        for key in ARCH_DIMS:
            for v in _values(getattr(self, key), key):
                low = 0 if key == "skip_chan" else 1
                if v is not None and (not isinstance(v, int) or isinstance(v, bool) or v < low):
                    raise ValueError(f"{key}: {v!r}; expected null (the checkpoint's) or an integer >= {low}")
        for v in _values(self.clamp, "clamp"):
            if v is not None and (not isinstance(v, int | float) or isinstance(v, bool) or v <= 0):
                raise ValueError(f"clamp: {v!r}; expected null or a positive number")
        return self


def _values(dim: Dimension, key: str) -> list[Any]:
    if isinstance(dim, IntRange):
        return [dim.low, dim.high]
    if isinstance(dim, list):
        if not dim:
            raise ValueError(f"{key}: empty list; expected at least one value")
        return list(dim)
    return [dim]


class OnnxModelSpec(BaseModel):
    """``model: {onnx: PATH, sample_rate: RATE}``: an existing ONNX as the model (:mod:`harness.onnx_model`)."""

    model_config = _FROZEN
    onnx: Path
    sample_rate: Annotated[int, Field(ge=1000, le=384000)]


#: With ``model.onnx`` only exact rewrites apply: the dimensions whose other values need the PyTorch model, and the
#: values they may take.
ONNX_EXACT_ONLY: dict[str, tuple[Any, ...]] = {
    "prelu": ("keep", "maxmin"), "norm": (None,), "clamp": (None,), "recover_steps": (0,), **dict.fromkeys(ARCH_DIMS, (None,)),
}  # fmt: skip


class SearchSpace(BaseModel):
    """A validated search space. See the module docstring for the schema."""

    model_config = _FROZEN
    study: str = "hefsweep"
    checkpoint: Path | None = None
    model: OnnxModelSpec | None = None
    backend: Literal["ort", "hailo"] = "ort"
    backend_options: dict[str, str | int | float | bool] = Field(default_factory=dict)
    data: Data
    trials: Annotated[int, Field(ge=1)] = 12
    timeout: Annotated[float, Field(gt=0)] | None = None
    stage_timeout: Annotated[float, Field(gt=0)] = 300.0
    seed: int | None = 0
    fidelity_gate_db: float = 60.0
    max_repairs: Annotated[int, Field(ge=0, le=50)] | None = None
    repair_trials: bool = True
    goal_db: float | None = None
    worst_clip_floor_db: float | None = None
    heartbeat: Heartbeat = Heartbeat()
    pruner: Pruner | None = None
    screen: Screen | None = None
    compile_top_k: Annotated[int, Field(ge=1)] | None = None
    layer_noise_clips: Annotated[int, Field(ge=0, le=16)] = 1
    recover_seconds: Annotated[float, Field(gt=0)] = 300.0
    mode: Literal["search", "frontier"] = "search"
    dimensions: Dimensions = Dimensions()
    override_sets: dict[str, tuple[OverrideModel, ...]] = Field(default_factory=lambda: {"none": ()})
    enqueue: tuple[dict[str, Scalar], ...] = ()
    source: Path | None = None

    @model_validator(mode="after")
    def _check_model(self) -> SearchSpace:
        if (self.checkpoint is None) == (self.model is None):
            seen = "both checkpoint and model given" if self.checkpoint is not None else "missing (and no model given)"
            raise ValueError(f"checkpoint: {seen}; expected exactly one of checkpoint (a PyTorch checkpoint) and "
                             "model: {onnx: PATH, sample_rate: RATE}")  # fmt: skip
        if self.model is not None:
            for key, ok in ONNX_EXACT_ONLY.items():
                for v in _values(getattr(self.dimensions, key), key):
                    if v not in ok:
                        raise ValueError(f"dimensions.{key}: {v} needs the PyTorch model; expected with model.onnx "
                                         f"only exact rewrites ({key}: {' | '.join('null' if o is None else str(o) for o in ok)})")  # fmt: skip
        return self

    @property
    def model_file(self) -> Path:
        """The model's file: the checkpoint or the ONNX of ``model.onnx``."""
        path = self.checkpoint if self.model is None else self.model.onnx
        assert path is not None
        return path

    @model_validator(mode="after")
    def _check_sets(self) -> SearchSpace:
        for name in _values(self.dimensions.override_set, "override_set"):
            if name not in self.override_sets:
                raise ValueError(
                    f"dimensions.override_set: {name!r} is not defined; expected one of {sorted(self.override_sets)}"
                )
        dims = dict(self.dimension_items())
        for i, entry in enumerate(self.enqueue):
            for key, value in entry.items():
                if key not in dims:
                    raise ValueError(f"enqueue[{i}]: {key!r} is not a dimension; expected one of {sorted(dims)}")
                dim = dims[key]
                ok = (
                    dim.low <= value <= dim.high  # type: ignore[operator]
                    if isinstance(dim, IntRange)
                    else value in (dim if isinstance(dim, list) else [dim])
                )
                if not ok:
                    raise ValueError(f"enqueue[{i}]: {key}={value!r} is outside the dimension; expected {_show(dim)}")
        return self

    def override_set(self, name: str) -> OverrideSet:
        """The named override set as the backend-neutral dataclass."""
        entries = self.override_sets[name]
        return OverrideSet(name, tuple(Override(e.kind, tuple(e.layers), e.value) for e in entries))

    def dimension_items(self) -> list[tuple[str, Dimension]]:
        """(name, dimension) pairs in a stable order."""
        return [(k, getattr(self.dimensions, k)) for k in Dimensions.model_fields]

    def fingerprint(self) -> dict[str, Any]:
        """The parts that define the study's search space (used to detect a study reused with another space)."""
        dims = self.dimensions.model_dump(mode="json")
        for key, default in FINGERPRINT_DEFAULTS.items():
            if dims[key] == default:  # not in the space's fingerprint at the default: older studies stay valid
                del dims[key]
        out: dict[str, Any] = {"mode": self.mode} if self.mode != "search" else {}
        return {
            **out,
            "dimensions": dims,
            "override_sets": {k: [o.model_dump(mode="json") for o in v] for k, v in self.override_sets.items()},
            "backend": self.backend,
            "backend_options": self.backend_options,
        }

    def content_fingerprint(self) -> dict[str, str]:
        """SHA-256 of the inputs the study's trials are computed from (part of the study fingerprint, with
        :meth:`fingerprint`: a study is not resumed over another checkpoint or other audio).

        ``checkpoint``: the checkpoint file's bytes. ``calibration`` / ``evaluation``: each data folder's audio, a
        hash over the sorted (name relative to the folder, sha256) of its ``.wav``/``.flac`` files -- the
        calibration folder's own, the evaluation folder's ``mixture/``, ``s1/`` ... files (a LibriMix split's
        ``mix`` folder and ``s1/`` ...) -- so the folders' locations do not count; an array file's bytes and key.
        Read options other than the defaults (``resample``, ``channel``, ``layout``, ``mix``) are hashed with them.
        File hashes are memoized per process (:func:`harness.cache.file_sha256`).
        """
        from harness.audio._fingerprint import content_sha256
        from harness.cache import file_sha256

        return {
            "checkpoint": file_sha256(self.model_file),
            "calibration": content_sha256(self.data.calibration),
            "evaluation": content_sha256(self.data.evaluation),
        }

    @property
    def repairs(self) -> int:
        """How many repairs a trial may apply (``max_repairs``, else the backend's default)."""
        if self.max_repairs is not None:
            return self.max_repairs
        return 6 if self.backend == "hailo" else 0

    def backend_spec(self) -> BackendSpec:
        """The picklable backend recipe for child processes."""
        return BackendSpec(self.backend, tuple(sorted(self.backend_options.items())))


def _err(path: Path, e: dict[str, Any]) -> ConfigError:
    loc = ".".join(str(p) for p in e.get("loc", ()) if not str(p).startswith(("function-after", "union[")))
    typ = e.get("type", "")
    if typ in ("extra_forbidden", "unexpected_keyword_argument"):  # (the latter: the data entries, dataclasses)
        return ConfigError(f"{path} key '{loc}'", "unknown key", "one of the documented keys (see harness/space.py)")
    if typ == "missing":
        return ConfigError(f"{path} key '{loc}'", "missing", "a value (required key)")
    seen = repr(e.get("input"))
    if len(seen) > 80:
        seen = seen[:77] + "..."
    msg = str(e.get("msg", "")).removeprefix("Value error, ")
    m = _WHOLE_SPACE_MSG.fullmatch(msg) if not loc else None
    if m:  # a check across keys names its key itself: "enqueue[0]: <seen>; expected <expected>"
        return ConfigError(f"{path} key '{m['loc']}'", m["seen"], m["expected"])
    return ConfigError(f"{path} key '{loc or '<top>'}'", f"got {seen}", msg)


_WHOLE_SPACE_MSG = re.compile(r"(?P<loc>[\w.]+(?:\[\d+\])?): (?P<seen>.+?); expected (?P<expected>.+)")


def _show(dim: Any) -> str:
    if isinstance(dim, IntRange):
        return f"an integer in [{dim.low}, {dim.high}]"
    return f"one of {dim!r}" if isinstance(dim, list) else repr(dim)


def load_space(path: str | Path) -> SearchSpace:
    """Load and validate a search-space YAML file.

    Args:
        path: The YAML file.

    Returns:
        The frozen :class:`SearchSpace`, with relative paths resolved against the file's folder.

    Raises:
        ConfigError: file missing or unreadable, malformed YAML, unknown keys, wrong types, impossible ranges.
    """
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(path, f"cannot read ({exc.strerror or exc})", "a readable YAML search-space file") from None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or "syntax error"
        raise ConfigError(path, f"malformed YAML{where}: {problem}", "valid YAML") from None
    if not isinstance(raw, dict):
        raise ConfigError(path, f"top level is {type(raw).__name__}", "a mapping of keys (see harness/space.py)")
    try:
        space = SearchSpace.model_validate(raw)
    except ValidationError as exc:
        raise _err(path, exc.errors()[0]) from None
    base = path.resolve().parent
    cal, ev = space.data.calibration, space.data.evaluation
    data = space.data.model_copy(
        update={"calibration": replace(cal, path=base / cal.path), "evaluation": replace(ev, path=base / ev.path)}
    )
    model = {"checkpoint": base / space.checkpoint} if space.model is None else {
        "model": space.model.model_copy(update={"onnx": base / space.model.onnx})
    }
    return space.model_copy(update={**model, "data": data, "source": path.resolve()})
