"""Time-tiled deployment: a model compiled at a tile width ``T`` runs over longer audio as overlapping windows,
stitched by overlap-save.

The network (asteroid Conv-TasNet, non-causal, :mod:`harness.model._convtasnet`) is convolutional in time: an
encoder ``Conv(1, N, L, stride S)`` without padding, a TCN of ``n_repeats x n_blocks`` depthwise convolutions
(kernel ``P``, dilation ``2**b``, zero-padded ``(P-1)*2**b/2`` frames each side) between 1x1 convolutions and norms,
and a transposed-convolution decoder (kernel ``L``, stride ``S``). With a *local* norm (``cLN``: per frame,
``affine``, ``identity``) an output sample depends only on the input within :func:`receptive_field` samples each
side: ``n_repeats * sum_b (P-1)*2**b/2`` frames through the TCN, times ``S``, plus the ``L`` samples of the encoder
and decoder kernels. ``gLN`` pools over the whole window, so a tile's statistics differ from the clip's and the
stitched output is not exact; the pipeline reports that gap (``tiling_float_si_snr_db``).

The plan (:func:`plan_tiles`): ``context`` samples of context each side (rounded up to a multiple of ``S``), hop
``T - 2*context`` (rounded down to a multiple of ``S``); every tile starts at a multiple of ``S`` so its encoder
frames are the clip's frames. Tile ``k`` starts at ``k*hop`` and keeps ``[k*hop + context, (k+1)*hop + context)``;
the first tile keeps from 0 (its left edge *is* the clip's, so it sees what the untiled model sees there); the last
tile is placed so that its last encoder frame is the clip's last frame (its right edge is the clip's) and keeps the
rest up to ``W``. Samples a tile reads past the clip's end (fewer than ``S``) are zeros, as the untiled model's
remainder past its last frame. With ``context >= receptive_field`` a local-norm model's stitched output equals the
untiled output (checked in tests/unit/test_tiling.py and bench/tiling.py).

numpy only: it imports under the DFC's environment too. ``tiling.json`` (:func:`TilePlan.to_json`) is the recipe a
deployment needs; :func:`TilePlan.from_json` reads it back.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["TILING_FORMAT", "TilePlan", "TilingError", "plan_tiles", "receptive_field"]

TILING_FORMAT = "hefsweep.tiling/1"

#: Norm types whose statistics are per frame (or absent): tiling is exact for them when the context covers the
#: receptive field.
LOCAL_NORMS = ("cLN", "affine", "identity")


class TilingError(ValueError):
    """The tile width cannot hold the context: no sample of a tile would be kept (hop <= 0)."""


def receptive_field(config: Any) -> int:
    """Samples each side of an output sample that it depends on (local norms), for an asteroid Conv-TasNet config
    (``kernel_size`` L, ``stride`` S, ``conv_kernel_size`` P, ``n_blocks``, ``n_repeats``)."""
    stride, kernel = int(config.stride), int(config.kernel_size)
    frames = int(config.n_repeats) * sum((int(config.conv_kernel_size) - 1) * 2**b // 2 for b in range(int(config.n_blocks)))
    return frames * stride + kernel


def _up(x: int, m: int) -> int:
    return -(-x // m) * m


@dataclass(frozen=True)
class TilePlan:
    """Where the tiles of one ``width``-sample clip sit and which part of each is kept.

    Attributes:
        width: Clip length ``W`` (samples).
        tile_width: The model's input length ``T``.
        context: Samples of context each side of the kept part (a multiple of ``stride``).
        hop: Kept samples of an interior tile (a multiple of ``stride``).
        stride: Encoder stride ``S`` (tile starts are multiples of it).
        kernel_size: Encoder/decoder kernel ``L``.
        receptive_field: :func:`receptive_field` of the model (samples each side).
        starts: Each tile's first sample in the clip.
        keep: Each tile's kept span ``[a, b)`` in clip samples (contiguous, covering ``[0, W)``).
        context_from: ``receptive_field`` (``tile_context`` null) or ``tile_context``.
    """

    width: int
    tile_width: int
    context: int
    hop: int
    stride: int
    kernel_size: int
    receptive_field: int
    starts: tuple[int, ...]
    keep: tuple[tuple[int, int], ...]
    context_from: str

    @property
    def n_tiles(self) -> int:
        """Tiles per clip."""
        return len(self.starts)

    @property
    def covers_receptive_field(self) -> bool:
        """True when the context reaches the receptive field (then a local-norm model is tiled exactly)."""
        return self.context >= self.receptive_field

    def key_params(self) -> dict[str, Any]:
        """What determines the stitched output (for stage cache keys)."""
        return {"tile_width": self.tile_width, "context": self.context, "hop": self.hop}

    def summary(self) -> dict[str, Any]:
        """A short form for ``info["tiling"]``."""
        return {
            "tile_width": self.tile_width, "context": self.context, "hop": self.hop, "n_tiles": self.n_tiles,
            "receptive_field": self.receptive_field, "context_from": self.context_from,
            "covers_receptive_field": self.covers_receptive_field,
        }  # fmt: skip

    def split(self, clips: np.ndarray) -> np.ndarray:
        """``[n, W]`` clips -> ``[n * n_tiles, T]`` windows (clip-major), zeros past the clip's end."""
        clips = np.asarray(clips)
        if clips.ndim != 2 or clips.shape[1] != self.width:
            raise ValueError(f"clips of shape {clips.shape}; expected [n, {self.width}]")
        padded = np.zeros((clips.shape[0], max(self.width, max(self.starts) + self.tile_width)), dtype=clips.dtype)
        padded[:, : self.width] = clips
        tiles = np.stack([padded[:, s : s + self.tile_width] for s in self.starts], axis=1)
        return tiles.reshape(-1, self.tile_width)

    def stitch(self, outputs: np.ndarray) -> np.ndarray:
        """``[n * n_tiles, ..., T]`` tile outputs (clip-major, as :meth:`split` made the inputs) -> ``[n, ..., W]``:
        each tile's kept span, overlap-save."""
        outputs = np.asarray(outputs)
        if outputs.shape[0] % self.n_tiles or outputs.shape[-1] != self.tile_width:
            raise ValueError(f"tile outputs of shape {outputs.shape}; expected [n * {self.n_tiles}, ..., {self.tile_width}]")
        per_clip = outputs.reshape((-1, self.n_tiles) + outputs.shape[1:])
        out = np.zeros(per_clip.shape[:1] + outputs.shape[1:-1] + (self.width,), dtype=outputs.dtype)
        for k, (s, (a, b)) in enumerate(zip(self.starts, self.keep, strict=True)):
            b = min(b, s + self.tile_width)  # past the last tile: fewer than S samples no frame reaches (zeros)
            out[..., a:b] = per_clip[:, k, ..., a - s : b - s]
        return out

    def to_json(self, sample_rate: int | None = None) -> dict[str, Any]:
        """``tiling.json``: everything a deployment needs to run the compiled model over longer audio."""
        return {
            "format": TILING_FORMAT,
            **{k: (list(map(list, v)) if k == "keep" else list(v) if k == "starts" else v) for k, v in asdict(self).items()},
            "sample_rate": sample_rate,
            "stitch": (
                "overlap-save: for audio of `width` samples, run the model on x[s : s + tile_width] for each s in "
                "`starts` (zeros past the end), and copy samples [a - s, b - s) of tile k's output to [a, b) of the "
                "result for (a, b) = keep[k]; for other lengths, plan_tiles(length, tile_width, context) in "
                "harness/tiling.py. Tile starts are multiples of `stride` so encoder frames line up."
            ),
        }

    def write(self, path: Path, sample_rate: int | None = None) -> None:
        """Write :meth:`to_json` to ``path``."""
        Path(path).write_text(json.dumps(self.to_json(sample_rate), indent=2) + "\n")

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> TilePlan:
        """The plan of a ``tiling.json`` (:meth:`to_json`).

        Raises:
            ValueError: another format, or fields that do not form a plan.
        """
        if data.get("format") != TILING_FORMAT:
            raise ValueError(f"format {data.get('format')!r}; expected {TILING_FORMAT!r}")
        try:
            plan = cls(
                width=int(data["width"]), tile_width=int(data["tile_width"]), context=int(data["context"]),
                hop=int(data["hop"]), stride=int(data["stride"]), kernel_size=int(data["kernel_size"]),
                receptive_field=int(data["receptive_field"]), starts=tuple(int(s) for s in data["starts"]),
                keep=tuple((int(a), int(b)) for a, b in data["keep"]), context_from=str(data["context_from"]),
            )  # fmt: skip
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"not a tiling plan ({type(exc).__name__}: {exc})") from None
        spans = [b - a for a, b in plan.keep]
        if (len(plan.starts) != len(plan.keep) or plan.keep[0][0] != 0 or plan.keep[-1][1] != plan.width
                or any(x[1] != y[0] for x, y in zip(plan.keep, plan.keep[1:])) or min(spans) <= 0
                or any(not s <= a < min(b, s + plan.tile_width) for s, (a, b) in zip(plan.starts, plan.keep))
                or plan.starts[-1] + plan.tile_width + plan.stride <= plan.width):  # fmt: skip
            raise ValueError("tiles' kept spans do not cover [0, width) contiguously within their tiles")
        return plan


def plan_tiles(width: int, tile_width: int, context: int | None, config: Any) -> TilePlan:
    """The overlap-save plan for ``width``-sample clips with a model built at ``tile_width`` (see the module
    docstring); ``context`` None takes the receptive field.

    Raises:
        ValueError: ``tile_width >= width`` (nothing to tile: the trial runs untiled).
        TilingError: the context leaves no hop (``tile_width - 2 * context < stride``).
    """
    stride, kernel = int(config.stride), int(config.kernel_size)
    rf = receptive_field(config)
    if tile_width >= width:
        raise ValueError(f"tile_width {tile_width} >= width {width}: nothing to tile")
    ctx = _up(rf if context is None else int(context), stride)
    hop = (tile_width - 2 * ctx) // stride * stride
    if hop <= 0:
        raise TilingError(
            f"tile_width {tile_width} with context {ctx} samples each side (receptive field {rf}) leaves hop {hop}; "
            f"expected tile_width >= 2 * context + stride = {2 * ctx + stride}"
        )
    frames, tile_frames = (width - kernel) // stride + 1, (tile_width - kernel) // stride + 1
    last = (frames - tile_frames) * stride  # its last encoder frame is the clip's last frame
    starts, keep, end = [0], [(0, ctx + hop)], ctx + hop
    while end < last + ctx:
        starts.append(end - ctx)
        keep.append((end, end + hop))
        end += hop
    # the last tile keeps the rest; a regular tile reaching past the clip's end would have read zeros where the
    # untiled model has none, so it hands over at `last + ctx` instead (still inside its exact span)
    cut = end if end < width else last + ctx
    keep[-1] = (keep[-1][0], cut)
    starts.append(last)
    keep.append((cut, width))
    return TilePlan(
        width=width, tile_width=tile_width, context=ctx, hop=hop, stride=stride, kernel_size=kernel,
        receptive_field=rf, starts=tuple(starts), keep=tuple(keep),
        context_from="receptive_field" if context is None else "tile_context",
    )  # fmt: skip
