"""Conv-TasNet in 4-D "horizontal" form: every 1-D op runs on ``[N, C, 1, W]``.

The network is asteroid's ``ConvTasNet`` (``asteroid/models/conv_tasnet.py``) with each ``Conv1d`` replaced by a
``Conv2d`` with a ``(1, k)`` kernel, so that accelerator compilers see plain NCHW convolutions. Module names
mirror asteroid's (``masker.bottleneck``, ``masker.TCN.{i}.shared_block``, ``masker.mask_net`` ...) so that
checkpoint keys map one to one (see :mod:`harness.model._checkpoint`).

The forward pass never moves data between the channel axis and the time axis (no reshape, view, transpose or
flatten): where asteroid views the mask scores as ``[B, n_src, out_chan, T]`` and broadcasts the encoding over
sources, this model keeps ``n_src * out_chan`` channels (source-major, channel ``s * out_chan + c``), multiplies by
``cat([w] * n_src)`` and decodes with one grouped transposed convolution.

Export-time topology rewrites (:mod:`harness.substitutions._topology`) may change two of those forms without
changing the function: the separator may return its masks as a *tuple* of ``n_src`` tensors ``[N, out_chan, 1, F]``
(then each is multiplied by ``w`` directly, no concat), and the decoder may be a module other than the grouped
``ConvTranspose2d``, called as ``decoder(masked, output_padding)`` with ``masked`` a tensor or such a tuple.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from harness.model._config import ConvTasNetConfig
from harness.model._norms import NORM_CLASSES, NormBase

__all__ = ["Conv1DBlock4D", "ConvTasNet4D", "Masks", "SourceSoftmax", "TDConvNet4D", "separate", "softmax_over_sources"]

#: What the separator returns: one source-major tensor ``[N, n_src * C, 1, F]`` or one tensor ``[N, C, 1, F]`` per
#: source (after the per-source mask rewrite).
Masks = torch.Tensor | tuple[torch.Tensor, ...]


def _norm(norm_type: str, channels: int) -> NormBase:
    return NORM_CLASSES[norm_type](channels)


class Conv1DBlock4D(nn.Module):
    """One TCN block (asteroid ``Conv1DBlock``, non-causal) on ``[N, C, 1, W]``.

    ``shared_block`` = 1x1 conv -> PReLU -> norm -> depthwise dilated ``(1, P)`` conv -> PReLU -> norm; then a 1x1
    residual conv and (if ``skip_out_chan``) a 1x1 skip conv.

    Args:
        in_chan: Block input/residual channels (B).
        hid_chan: Hidden channels (H).
        skip_out_chan: Skip channels (Sc); 0 for none.
        kernel_size: Depthwise kernel size (P).
        padding: Symmetric time padding of the depthwise conv.
        dilation: Time dilation of the depthwise conv.
        norm_type: ``"gLN"`` or ``"cLN"``.
    """

    def __init__(
        self,
        in_chan: int,
        hid_chan: int,
        skip_out_chan: int,
        kernel_size: int,
        padding: int,
        dilation: int,
        norm_type: str = "gLN",
    ) -> None:
        super().__init__()
        self.skip_out_chan = skip_out_chan
        self.shared_block = nn.Sequential(
            nn.Conv2d(in_chan, hid_chan, 1),
            nn.PReLU(),
            _norm(norm_type, hid_chan),
            nn.Conv2d(
                hid_chan,
                hid_chan,
                (1, kernel_size),
                padding=(0, padding),
                dilation=(1, dilation),
                groups=hid_chan,
            ),
            nn.PReLU(),
            _norm(norm_type, hid_chan),
        )
        self.res_conv = nn.Conv2d(hid_chan, in_chan, 1)
        if skip_out_chan:
            self.skip_conv = nn.Conv2d(hid_chan, skip_out_chan, 1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Returns ``(residual, skip)``; ``skip`` is ``None`` without a skip path."""
        shared_out = self.shared_block(x)
        res_out = self.res_conv(shared_out)
        if not self.skip_out_chan:
            return res_out, None
        return res_out, self.skip_conv(shared_out)


class SourceSoftmax(nn.Module):
    """Softmax over sources for source-major channels ``[N, n_src * C, 1, W]``.

    Equals asteroid's ``Softmax(dim=1)`` on ``[N, n_src, C, W]`` but uses only channel slices, elementwise ops and
    a concat, so no data crosses between channels and time.

    Args:
        n_src: Number of sources.
        channels: Channels per source ``C``.
    """

    def __init__(self, n_src: int, channels: int) -> None:
        super().__init__()
        self.n_src = n_src
        self.channels = channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # Constant slice bounds (torch.chunk would export Shape/Gather to size the chunks).
        c = self.channels
        parts = [x[:, s * c : (s + 1) * c] for s in range(self.n_src)]
        return torch.cat(softmax_over_sources(parts), dim=1)


def softmax_over_sources(parts: list[torch.Tensor] | tuple[torch.Tensor, ...]) -> list[torch.Tensor]:
    """Softmax across sources of per-source scores (elementwise Max, Sub, Exp, Add, Div; no layout op).

    Args:
        parts: One score tensor per source, all of the same shape.

    Returns:
        One mask per source, ``exp(p - max) / sum(exp(q - max))``.
    """
    peak = parts[0]
    for part in parts[1:]:
        peak = torch.maximum(peak, part)
    exps = [torch.exp(part - peak) for part in parts]
    total = exps[0]
    for e in exps[1:]:
        total = total + e
    return [e / total for e in exps]


def _mask_activation(mask_act: str, n_src: int, channels: int) -> nn.Module:
    if mask_act == "sigmoid":
        return nn.Sigmoid()
    if mask_act == "relu":
        return nn.ReLU()
    if mask_act == "softmax":
        return SourceSoftmax(n_src, channels)
    return nn.Identity()


class TDConvNet4D(nn.Module):
    """The separator (asteroid ``TDConvNet``, non-causal) on ``[N, C, 1, W]``.

    Args:
        config: Model hyper-parameters.

    Shape:
        ``[N, n_filters, 1, F] -> [N, n_src * out_chan, 1, F]`` (masks, source-major channels), or a tuple of
        ``n_src`` tensors ``[N, out_chan, 1, F]`` once the per-source mask rewrite replaced ``mask_net``'s conv
        and ``output_act``.
    """

    def __init__(self, config: ConvTasNetConfig) -> None:
        super().__init__()
        c = config
        assert c.in_chan is not None and c.out_chan is not None and c.skip_chan is not None  # resolved by config
        self.n_src = c.n_src
        self.out_chan = c.out_chan
        self.skip_chan = c.skip_chan
        self.bottleneck = nn.Sequential(_norm(c.norm_type, c.in_chan), nn.Conv2d(c.in_chan, c.bn_chan, 1))
        self.TCN = nn.ModuleList(
            Conv1DBlock4D(
                c.bn_chan,
                c.hid_chan,
                c.skip_chan,
                c.conv_kernel_size,
                padding=(c.conv_kernel_size - 1) * 2**x // 2,
                dilation=2**x,
                norm_type=c.norm_type,
            )
            for _ in range(c.n_repeats)
            for x in range(c.n_blocks)
        )
        mask_conv_inp = c.skip_chan if c.skip_chan else c.bn_chan
        self.mask_net = nn.Sequential(nn.PReLU(), nn.Conv2d(mask_conv_inp, c.n_src * c.out_chan, 1))
        self.output_act = _mask_activation(c.mask_act, c.n_src, c.out_chan)

    def forward(self, mixture_w: torch.Tensor) -> Masks:
        output = self.bottleneck(mixture_w)
        skip_sum: torch.Tensor | None = None
        for layer in self.TCN:
            residual, skip = layer(output)
            if skip is not None:
                # asteroid starts the sum at tensor([0.0]); 0.0 + skip == skip exactly.
                skip_sum = skip if skip_sum is None else skip_sum + skip
            output = output + residual
        mask_inp = skip_sum if skip_sum is not None else output
        score = self.mask_net(mask_inp)
        est_mask: Masks = self.output_act(score)
        return est_mask


class ConvTasNet4D(nn.Module):
    """asteroid's Conv-TasNet (free filterbank, non-causal) with every op on ``[N, C, 1, W]``.

    Encoder: ``Conv2d(1, N, (1, L), stride (1, stride), bias=False)`` + optional ReLU. Separator:
    :class:`TDConvNet4D`. Decoder: ``ConvTranspose2d(n_src * N, n_src, (1, L), stride (1, stride),
    groups=n_src, bias=False)`` whose weight is asteroid's decoder filterbank repeated once per source; its
    output is right-padded with zeros to the input length, as asteroid's ``pad_x_to_y`` (via the transposed
    convolution's ``output_padding``, fixed per traced input length).

    Args:
        config: Model hyper-parameters (asteroid ``model_args`` names).

    Attributes:
        config: The config the model was built from.
        substitutions: Labels of substitution rules applied to this model (empty for a plain model).

    Shape:
        ``[N, 1, 1, W]`` float32 -> ``[N, n_src, 1, W]``.
    """

    def __init__(self, config: ConvTasNetConfig) -> None:
        super().__init__()
        self.config = config
        #: Labels of the export-time substitutions applied to this model (see :mod:`harness.substitutions`).
        self.substitutions: tuple[str, ...] = ()
        assert config.stride is not None  # resolved by config
        kernel, stride = (1, config.kernel_size), (1, config.stride)
        self.encoder = nn.Conv2d(1, config.n_filters, kernel, stride=stride, bias=False)
        self.enc_activation: nn.Module = nn.ReLU() if config.encoder_activation == "relu" else nn.Identity()
        self.masker = TDConvNet4D(config)
        self.decoder: nn.Module = nn.ConvTranspose2d(
            config.n_src * config.n_filters,
            config.n_src,
            kernel,
            stride=stride,
            groups=config.n_src,
            bias=False,
        )
        self.reset_filterbanks()

    @torch.no_grad()
    def reset_filterbanks(self) -> None:
        """Initialize encoder and decoder filters as asteroid's ``FreeFB`` does (Xavier normal on ``[N, 1, L]``).

        The decoder gets one filterbank, repeated for every source, so that the model stays expressible as an
        asteroid checkpoint.
        """
        n, length = self.config.n_filters, self.config.kernel_size
        self.encoder.weight.copy_(nn.init.xavier_normal_(torch.empty(n, 1, length)).unsqueeze(2))
        dec = nn.init.xavier_normal_(torch.empty(n, 1, length)).unsqueeze(2)
        self.decoder.weight.copy_(dec.repeat(self.config.n_src, 1, 1, 1))

    def forward(self, wav: torch.Tensor) -> torch.Tensor:
        """Separate a batch of mixtures.

        Args:
            wav: Mixtures, float32 ``[N, 1, 1, W]``.

        Returns:
            Estimated sources, ``[N, n_src, 1, W]``.
        """
        tf_rep = self.enc_activation(self.encoder(wav))
        est_masks = self.masker(tf_rep)
        masked: Masks
        if isinstance(est_masks, torch.Tensor):
            masked = est_masks * torch.cat([tf_rep] * self.config.n_src, dim=1)
        else:  # per-source masks: each multiplies the encoding itself (no repeated concat)
            masked = tuple(mask * tf_rep for mask in est_masks)
        return self._decode(masked, wav.shape[-1])

    def _decode(self, masked: Masks, width: int) -> torch.Tensor:
        # asteroid decodes to (F - 1) * stride + L samples, then pad_x_to_y right-pads zeros up to W; that is
        # (W - L) % stride zeros (always >= 0 and < stride). The transposed conv's output_padding appends exactly
        # those zeros (no bias, no frame reaches them) and exports as one ConvTranspose attribute, whereas
        # F.pad exports with Reshape/Transpose nodes on the pads.
        assert self.config.stride is not None
        extra = (width - self.config.kernel_size) % self.config.stride
        dec = self.decoder
        if not isinstance(dec, nn.ConvTranspose2d):  # a rewritten decoder (e.g. one ConvTranspose per source)
            out: torch.Tensor = dec(masked, (0, extra))
            return out
        if not isinstance(masked, torch.Tensor):  # per-source masked encodings into the grouped decoder
            masked = torch.cat(masked, dim=1)
        return nn.functional.conv_transpose2d(masked, dec.weight, None, dec.stride, 0, (0, extra), dec.groups, 1)


def separate(model: nn.Module, mixtures: np.ndarray, batch: int = 4) -> np.ndarray:
    """``model`` on mixtures ``[n, W]`` -> float32 ``[n, n_src, 1, W]``, without gradients, ``batch`` clips at a time."""
    x = torch.from_numpy(np.array(mixtures[:, None, None, :], dtype=np.float32))  # a writable copy
    with torch.no_grad():
        out = np.concatenate([model(x[i : i + batch]).numpy() for i in range(0, len(x), batch)])
    return out.astype(np.float32, copy=False)
