"""Resized Conv-TasNets for the capacity frontier: other widths and depths, weights from the checkpoint where they fit.

``mode: frontier`` (:mod:`harness.space`) searches the architecture itself -- ``n_filters`` (N), ``bn_chan`` (B),
``hid_chan`` (H), ``skip_chan`` (Sc), ``n_blocks`` (X), ``n_repeats`` (R) -- to map the largest model a chip takes.
:func:`resize_model` builds such a model from the checkpoint's:

- every parameter of the resized :class:`~harness.model.ConvTasNet4D` first gets a fresh initialisation (torch's
  defaults and asteroid's filterbank init, under a fixed seed, without touching the global RNG);
- then the leading slice of the checkpoint's tensor of the same name is copied over it, dimension by dimension
  (the overlap ``[:min(new, old)]`` of every axis): fewer channels keep the leading channels, more channels keep
  all of the checkpoint's and add fresh ones. The source-major tensors (``mask_net.1`` out channels, the decoder's
  ``n_src * N`` filters) are sliced per source, so source ``s`` keeps source ``s``'s channels;
- TCN block ``x`` of repeat ``r`` (dilation ``2**x``) comes from the checkpoint's block ``x`` of repeat ``r``
  (the same dilation); blocks beyond the checkpoint's ``n_blocks`` or ``n_repeats`` are fresh. With fewer blocks
  and one repeat these are the first blocks.

The result is a model that needs retraining (its separation is poor until then): :class:`Resized` says how many of
its parameters came from the checkpoint. Capacity figures (:func:`capacity`) are computed from the config alone, so
a trial that fails before export still has them: ``params`` counts the module's parameters (the decoder holds its
filterbank once per source, as the exported graph does), ``macs`` the multiply-accumulates of the convolutions of
one forward pass over an input of W samples (F = (W - L) // stride + 1 latent frames: encoder, bottleneck, each
block's 1x1 / depthwise / residual / skip convolutions, the mask convolution and the decoder; norms, activations and
the mask multiply are elementwise and not counted).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from harness.model._config import ConvTasNetConfig
from harness.model._convtasnet import ConvTasNet4D

__all__ = [
    "CAPACITY_DIMS", "RESIZE_VERSION", "Capacity", "Resized", "capacity", "changed_values", "resize_model", "resized_config",
]  # fmt: skip

#: The architecture dimensions a frontier trial sets (asteroid ``model_args`` names; None = the checkpoint's).
CAPACITY_DIMS = ("n_filters", "bn_chan", "hid_chan", "skip_chan", "n_blocks", "n_repeats")
#: Part of the export's cache key for a resized model: bump when the weight transfer or the init changes.
RESIZE_VERSION = 1

_TCN = "masker.TCN."
_SOURCE_MAJOR = ("masker.mask_net.1.weight", "masker.mask_net.1.bias", "decoder.weight")


@dataclass(frozen=True)
class Capacity:
    """What a configuration holds: parameters, and MACs of one forward pass over ``width`` samples."""

    params: int
    macs: int
    width: int
    frames: int

    def metrics(self) -> dict[str, float]:
        """The trial metrics ``capacity_params``, ``capacity_macs`` (per input of W samples) and ``capacity_frames``."""
        return {"capacity_params": float(self.params), "capacity_macs": float(self.macs),
                "capacity_frames": float(self.frames)}  # fmt: skip


@dataclass(frozen=True)
class Resized:
    """A resized model and where its weights came from."""

    model: ConvTasNet4D
    config: ConvTasNetConfig
    params_total: int
    params_from_checkpoint: int
    tensors_copied: int
    tensors_fresh: int

    def info(self) -> dict[str, Any]:
        """For ``trial.json``: the resized ``model_args`` that changed and the weight provenance."""
        return {
            "params_total": self.params_total,
            "params_from_checkpoint": self.params_from_checkpoint,
            "fraction_from_checkpoint": round(self.params_from_checkpoint / max(self.params_total, 1), 6),
            "tensors_copied": self.tensors_copied,
            "tensors_fresh": self.tensors_fresh,
        }


def resized_config(base: ConvTasNetConfig, values: Mapping[str, int | None]) -> ConvTasNetConfig:
    """``base`` with the capacity ``values`` that are set (None keeps the checkpoint's).

    Raises:
        CheckpointError: a value the config refuses (e.g. ``n_blocks: 0``); the object names the key.
        KeyError: a key that is not a capacity dimension (a bug).
    """
    changes = {k: int(v) for k, v in values.items() if v is not None}
    unknown = set(changes) - set(CAPACITY_DIMS)
    if unknown:
        raise KeyError(f"not capacity dimensions: {sorted(unknown)}")
    if "n_filters" in changes:  # out_chan and in_chan are resolved to n_filters by the config
        changes["out_chan"] = changes["in_chan"] = changes["n_filters"]
    return dataclasses.replace(base, **changes)


def changed_values(base: ConvTasNetConfig, values: Mapping[str, int | None]) -> dict[str, int]:
    """The capacity values that differ from the checkpoint's (what makes a model resized; sorted by name)."""
    return {k: int(v) for k, v in sorted(values.items()) if v is not None and int(v) != getattr(base, k)}


def _frames(config: ConvTasNetConfig, width: int) -> int:
    assert config.stride is not None
    return max((width - config.kernel_size) // config.stride + 1, 0)


def capacity(config: ConvTasNetConfig, width: int) -> Capacity:
    """Parameters and MACs of ``ConvTasNet4D(config)`` on an input of ``width`` samples (module docstring)."""
    c = config
    n, b, h, sc, p, k, s = c.n_filters, c.bn_chan, c.hid_chan, c.skip_chan or 0, c.conv_kernel_size, c.kernel_size, c.n_src
    norm = 2  # gamma and beta per channel, gLN and cLN alike
    mask_in = sc if sc else b
    block_params = (b * h + h) + 1 + norm * h + (h * p + h) + 1 + norm * h + (h * b + b) + ((h * sc + sc) if sc else 0)
    params = (
        n * k  # encoder
        + norm * n + (n * b + b)  # bottleneck: norm + 1x1 conv
        + c.n_layers * block_params
        + 1 + (mask_in * s * n + s * n)  # mask_net: PReLU + 1x1 conv
        + s * n * k  # decoder: one filterbank per source
    )
    f = _frames(c, width)
    block_macs = b * h + h * p + h * b + h * sc
    macs = f * (n * k + n * b + c.n_layers * block_macs + mask_in * s * n + s * n * k)
    return Capacity(params=params, macs=macs, width=int(width), frames=f)


def _block_source(name: str, new: ConvTasNetConfig, old: ConvTasNetConfig) -> str | None:
    """The checkpoint's name for a TCN parameter of the resized model (None: no such block in the checkpoint)."""
    index, rest = name[len(_TCN) :].split(".", 1)
    r, x = divmod(int(index), new.n_blocks)
    if r >= old.n_repeats or x >= old.n_blocks:
        return None
    return f"{_TCN}{r * old.n_blocks + x}.{rest}"


def _overlap(dst: Any, src: Any, n_src: int, source_major: bool) -> int:
    """Copy the leading overlap of ``src`` into ``dst`` (in place); per source along axis 0 when source-major."""
    if dst.dim() != src.dim():
        return 0
    if source_major:
        d = dst.reshape(n_src, dst.shape[0] // n_src, *dst.shape[1:])
        s_ = src.reshape(n_src, src.shape[0] // n_src, *src.shape[1:])
        return _overlap(d, s_, n_src, False)  # a view of dst: written through
    region = tuple(slice(0, min(a, b_)) for a, b_ in zip(dst.shape, src.shape, strict=True))
    dst[region] = src[region]
    return int(dst[region].numel())


def resize_model(base: ConvTasNet4D, values: Mapping[str, int | None], seed: int = 0) -> Resized:
    """The checkpoint model ``base`` resized to the capacity ``values`` (module docstring).

    Args:
        base: The model as loaded from the checkpoint (not modified).
        values: Capacity dimension -> value (None = the checkpoint's).
        seed: Seeds the fresh initialisation (the global torch RNG is left as it was).

    Returns:
        The :class:`Resized` model, in eval mode, with ``model.config`` the resized config.
    """
    import torch

    old = base.config
    new = resized_config(old, values)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = ConvTasNet4D(new)
    source = base.state_dict()
    state = model.state_dict()
    copied = fresh = from_ckpt = 0
    with torch.no_grad():
        for name, tensor in state.items():
            src_name: str | None = _block_source(name, new, old) if name.startswith(_TCN) else name
            src = source.get(src_name) if src_name is not None else None
            n = _overlap(tensor, src, new.n_src, name in _SOURCE_MAJOR) if src is not None else 0
            from_ckpt += n
            copied, fresh = (copied + 1, fresh) if n else (copied, fresh + 1)
    model.load_state_dict(state)
    total = sum(int(p.numel()) for p in model.parameters())
    return Resized(model.eval(), new, total, from_ckpt, copied, fresh)
