"""The Conv-TasNet hyper-parameters, named exactly as asteroid's ``ConvTasNet`` ``model_args``.

A checkpoint written by asteroid's ``torch.save(model.serialize())`` stores ``model_args`` as the merge of the
filterbank config (``fb_name``, ``n_filters``, ``kernel_size``, ``stride``, ``sample_rate``), the masker config
(``in_chan``, ``out_chan``, ``bn_chan``, ``hid_chan``, ``skip_chan``, ``conv_kernel_size``, ``n_blocks``,
``n_repeats``, ``n_src``, ``norm_type``, ``mask_act``, ``causal``) and ``encoder_activation``
(``asteroid/models/base_models.py::BaseEncoderMaskerDecoder.get_model_args``). :class:`ConvTasNetConfig` has one
field per key, with asteroid's ``ConvTasNet.__init__`` defaults.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from harness.errors import CheckpointError

__all__ = ["DEMO_CONFIG", "IGNORED_MODEL_ARGS", "PAPER_CONFIG", "ConvTasNetConfig"]

_NORM_TYPES = ("gLN", "cLN")
_MASK_ACTS = ("sigmoid", "relu", "softmax", "linear")
_ENCODER_ACTIVATIONS = (None, "linear", "relu")
# asteroid_filterbanks resolves both the alias and the class name (``free = FreeFB``); ``serialize()`` writes the
# class name.
_FB_NAMES = ("free", "FreeFB")

#: Keys that may appear in a ``model_args`` dict but are not config fields, with the only value that leaves the
#: graph unchanged. They are asteroid ``make_enc_dec``/``Encoder`` arguments (``is_pinv`` is in
#: ``Encoder.get_config()``; the others are ``**fb_kwargs`` of ``ConvTasNet``) that a hand-written or recipe
#: config can carry. Any other value changes the encoder/decoder and is rejected.
IGNORED_MODEL_ARGS: dict[str, Any] = {
    "is_pinv": False,
    "who_is_pinv": None,
    "padding": 0,
    "output_padding": 0,
}

_INT_FIELDS = (
    "n_src",
    "n_blocks",
    "n_repeats",
    "bn_chan",
    "hid_chan",
    "conv_kernel_size",
    "kernel_size",
    "n_filters",
)


@dataclass(frozen=True)
class ConvTasNetConfig:
    """Hyper-parameters of a (non-causal, free-filterbank) asteroid Conv-TasNet.

    Field names and defaults are those of asteroid's ``ConvTasNet``. ``out_chan`` and ``in_chan`` of ``None``
    resolve to ``n_filters``, ``stride`` of ``None`` to ``kernel_size // 2`` and ``skip_chan`` of ``None`` to ``0``
    (no skip path); ``fb_name`` ``"FreeFB"`` is stored as ``"free"``.

    Args:
        n_src: Number of sources (masks).
        out_chan: Mask bins per source.
        n_blocks: Blocks per repeat (X); dilations are ``2**0 .. 2**(X-1)``.
        n_repeats: Repeats (R).
        bn_chan: Bottleneck channels (B).
        hid_chan: Channels inside a block (H).
        skip_chan: Skip-path channels (Sc); 0 means masks come from the residual path.
        conv_kernel_size: Depthwise kernel size (P), odd.
        norm_type: ``"gLN"`` or ``"cLN"``.
        mask_act: ``"sigmoid"``, ``"relu"``, ``"softmax"`` (over sources) or ``"linear"``.
        in_chan: Masker input channels; must equal ``n_filters``.
        causal: Only ``False`` is supported.
        fb_name: Only the free filterbank is supported.
        kernel_size: Encoder/decoder filter length (L).
        n_filters: Encoder filters (N).
        stride: Encoder hop.
        encoder_activation: ``None``/``"linear"`` (identity) or ``"relu"``.
        sample_rate: Operating sample rate in Hz (metadata only; ``None`` if unknown, as asteroid allows).

    Raises:
        CheckpointError: a value is of the wrong type or not supported; the object is ``model_args.<key>``.
    """

    n_src: int
    out_chan: int | None = None
    n_blocks: int = 8
    n_repeats: int = 3
    bn_chan: int = 128
    hid_chan: int = 512
    skip_chan: int | None = 128
    conv_kernel_size: int = 3
    norm_type: str = "gLN"
    mask_act: str = "sigmoid"
    in_chan: int | None = None
    causal: bool = False
    fb_name: str = "free"
    kernel_size: int = 16
    n_filters: int = 512
    stride: int | None = 8
    encoder_activation: str | None = None
    sample_rate: float | None = 8000.0

    def __post_init__(self) -> None:
        for name in _INT_FIELDS:
            _check_positive_int(name, getattr(self, name))
        if self.stride is None:
            object.__setattr__(self, "stride", self.kernel_size // 2)
        _check_positive_int("stride", self.stride)
        if self.out_chan is None:
            object.__setattr__(self, "out_chan", self.n_filters)
        _check_positive_int("out_chan", self.out_chan)
        if self.out_chan != self.n_filters:
            # asteroid multiplies masks [B, n_src, out_chan, T] by the encoding [B, 1, n_filters, T].
            raise CheckpointError("model_args.out_chan", repr(self.out_chan), f"None or n_filters ({self.n_filters})")
        if self.in_chan is None:
            object.__setattr__(self, "in_chan", self.n_filters)
        if self.in_chan != self.n_filters:
            raise CheckpointError("model_args.in_chan", repr(self.in_chan), f"n_filters ({self.n_filters})")
        if self.skip_chan is None:
            object.__setattr__(self, "skip_chan", 0)
        if isinstance(self.skip_chan, bool) or not isinstance(self.skip_chan, int) or self.skip_chan < 0:
            raise CheckpointError("model_args.skip_chan", repr(self.skip_chan), "an int >= 0 (0 or None: no skip)")
        if self.conv_kernel_size % 2 == 0:
            # asteroid pads (P-1)*d//2 on both sides: an even P shortens the dilation-1 block's output by one
            # frame and the residual sum fails.
            raise CheckpointError("model_args.conv_kernel_size", self.conv_kernel_size, "an odd kernel size")
        _check_choice("norm_type", self.norm_type, _NORM_TYPES)
        _check_choice("mask_act", self.mask_act, _MASK_ACTS)
        _check_choice("encoder_activation", self.encoder_activation, _ENCODER_ACTIVATIONS)
        _check_choice("fb_name", self.fb_name, _FB_NAMES)
        object.__setattr__(self, "fb_name", "free")
        if self.causal is not False:
            raise CheckpointError(
                "model_args.causal", repr(self.causal), "False", hint="causal Conv-TasNet is not supported"
            )
        sample_rate = self.sample_rate
        if sample_rate is not None:
            if isinstance(sample_rate, bool) or not isinstance(sample_rate, int | float) or not sample_rate > 0:
                raise CheckpointError("model_args.sample_rate", repr(sample_rate), "a number > 0 or None")
            object.__setattr__(self, "sample_rate", float(sample_rate))

    @property
    def n_layers(self) -> int:
        """Number of TCN blocks (``n_blocks * n_repeats``)."""
        return self.n_blocks * self.n_repeats

    @classmethod
    def from_model_args(cls, model_args: Mapping[str, Any], source: str | None = None) -> ConvTasNetConfig:
        """Build a config from an asteroid ``model_args`` dict.

        Missing keys take asteroid's defaults (``n_src`` has none). Keys in :data:`IGNORED_MODEL_ARGS` are
        accepted only with their neutral value.

        Args:
            model_args: The ``model_args`` of an asteroid checkpoint.
            source: Prefix for the error object, e.g. the checkpoint path.

        Returns:
            The validated config.

        Raises:
            CheckpointError: ``model_args`` is not a dict, has an unknown key, lacks ``n_src``, or has an
                unsupported value; the message names the key.
        """
        prefix = f"{source}: " if source else ""
        if not isinstance(model_args, Mapping):
            raise CheckpointError(f"{prefix}model_args", f"a {type(model_args).__name__}", "a dict")
        fields = {f.name for f in dataclasses.fields(cls)}
        kwargs: dict[str, Any] = {}
        for key, value in model_args.items():
            if key in fields:
                kwargs[key] = value
            elif key in IGNORED_MODEL_ARGS:
                if value != IGNORED_MODEL_ARGS[key] or type(value) is not type(IGNORED_MODEL_ARGS[key]):
                    raise CheckpointError(
                        f"{prefix}model_args.{key}",
                        repr(value),
                        repr(IGNORED_MODEL_ARGS[key]),
                        hint="other values change the filterbank and are not supported",
                    )
            else:
                raise CheckpointError(
                    f"{prefix}model_args.{key}", "unknown key", f"one of {sorted(fields | set(IGNORED_MODEL_ARGS))}"
                )
        if "n_src" not in kwargs:
            raise CheckpointError(f"{prefix}model_args.n_src", "missing", "an int >= 1")
        try:
            return cls(**kwargs)
        except CheckpointError as err:
            if not source:
                raise
            raise CheckpointError(f"{prefix}{err.obj}", err.seen, err.expected, err.hint) from err

    def to_model_args(self) -> dict[str, Any]:
        """The ``model_args`` dict asteroid's ``ConvTasNet.get_model_args()`` would write for this config.

        Returns:
            A plain dict (``fb_name`` as ``"FreeFB"``, as asteroid's ``serialize()`` writes it).
        """
        args = dataclasses.asdict(self)
        args["fb_name"] = "FreeFB"
        return args


def _check_positive_int(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise CheckpointError(f"model_args.{name}", repr(value), "an int >= 1")


def _check_choice(name: str, value: Any, choices: tuple[Any, ...]) -> None:
    if value not in choices or isinstance(value, bool):
        raise CheckpointError(f"model_args.{name}", repr(value), f"one of {list(choices)}")


#: The harness's default demo model (~326k parameters): a small 16 kHz two-speaker separator.
DEMO_CONFIG = ConvTasNetConfig(
    n_src=2,
    n_filters=64,
    kernel_size=16,
    stride=8,
    bn_chan=64,
    hid_chan=128,
    skip_chan=64,
    conv_kernel_size=3,
    n_blocks=6,
    n_repeats=2,
    norm_type="gLN",
    mask_act="sigmoid",
    encoder_activation="relu",
    sample_rate=16000,
)

#: The Conv-TasNet paper's best non-causal configuration (Luo & Mesgarani 2019, Table 3), at 16 kHz.
PAPER_CONFIG = ConvTasNetConfig(
    n_src=2,
    n_filters=512,
    kernel_size=16,
    stride=8,
    bn_chan=128,
    hid_chan=512,
    skip_chan=128,
    conv_kernel_size=3,
    n_blocks=8,
    n_repeats=3,
    norm_type="gLN",
    mask_act="sigmoid",
    sample_rate=16000,
)
