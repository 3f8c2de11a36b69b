"""Exact topology rewrites of the mask head: ``mask_mul:per_source`` and ``decoder:per_source``.

The real Hailo DFC 3.33 rejected two forms of the 4-D model's head (``/work/shared/real_dfc/README.md``):

- ``masks * cat([w] * n_src)`` lowers to ``shortcut1`` + ``concat1`` + ``ew_mult1`` and compile failed with
  "Reshape is needed for layers: ... shortcut1, concat1, ew_mult1, but adding a reshape has failed.";
- the grouped decoder ``ConvTranspose2d(n_src * N, n_src, groups=n_src)`` failed with "Super deconv is not
  supported with groups".

Both rewrites keep the function and the weights (split per source, nothing retrained):

``mask_mul:per_source`` (:class:`PerSourceMask`) splits the 1x1 mask conv ``masker.mask_net.1`` into ``n_src`` convs
of ``out_chan`` outputs each (weight and bias rows of source ``s``), applies the mask activation per source
(sigmoid/relu/linear elementwise; softmax across sources from the per-source scores with Max/Exp/Add/Div, as
:class:`~harness.model.SourceSoftmax`) and returns the masks as a tuple; the model then multiplies each mask by the
encoding itself (no concat of the encoding).

``decoder:per_source`` (:class:`PerSourceDecoding`) replaces the grouped decoder with one ungrouped
``ConvTranspose2d(N, 1, (1, L), stride (1, stride))`` per source (weight rows of source ``s``) and concatenates the
outputs on channels; the ``output_padding`` that right-pads to the input width is passed in as for the grouped
form. Fed the repeated-multiply tensor, it slices each source's channels with constant bounds (Slice nodes, no
Shape/Gather).

Combinations: per-source masks with the *grouped* decoder are concatenated (one Concat of ``n_src`` distinct
masked tensors) and decoded grouped -- still no ``cat([w] * n_src)``; per-source masks with the per-source decoder
go straight into their own decoder (no Concat before the decoders at all).
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

import torch
from torch import nn

from harness.model import SourceSoftmax, TDConvNet4D, softmax_over_sources

__all__ = ["PerSourceActivation", "PerSourceConv", "PerSourceDecoder", "PerSourceDecoding", "PerSourceMask"]


class PerSourceConv(nn.Module):
    """A conv whose ``n_src * C`` source-major outputs are computed by ``n_src`` convs of ``C`` outputs each.

    Args:
        conv: The conv to split (its weight/bias rows ``s * C : (s + 1) * C`` go to ``convs[s]``).
        n_src: Number of sources.

    Shape: ``[N, Cin, 1, W] -> tuple of n_src [N, C, 1, W]``.
    """

    def __init__(self, conv: nn.Conv2d, n_src: int) -> None:
        super().__init__()
        if conv.groups != 1 or conv.out_channels % n_src:
            raise ValueError(f"cannot split {conv} into {n_src} sources")
        c = conv.out_channels // n_src
        self.convs = nn.ModuleList()
        for s in range(n_src):
            part = nn.Conv2d(
                conv.in_channels,
                c,
                conv.kernel_size,  # type: ignore[arg-type]
                stride=conv.stride,  # type: ignore[arg-type]
                padding=conv.padding,  # type: ignore[arg-type]
                dilation=conv.dilation,  # type: ignore[arg-type]
                bias=conv.bias is not None,
            )
            with torch.no_grad():
                part.weight.copy_(conv.weight[s * c : (s + 1) * c])
                if conv.bias is not None:
                    part.bias.copy_(conv.bias[s * c : (s + 1) * c])
            part.train(conv.training)
            self.convs.append(part)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return tuple(conv(x) for conv in self.convs)


class PerSourceActivation(nn.Module):
    """The mask non-linearity on per-source scores (a tuple in, a tuple out).

    Args:
        act: The original ``output_act``: an elementwise activation (``Sigmoid``, ``ReLU``, ``Identity``), applied
            to each source, or a :class:`~harness.model.SourceSoftmax`, computed across the per-source scores.
    """

    def __init__(self, act: nn.Module) -> None:
        super().__init__()
        self.softmax = isinstance(act, SourceSoftmax)
        self.act = nn.Identity() if self.softmax else act

    def extra_repr(self) -> str:
        return "softmax over sources" if self.softmax else ""

    def forward(self, parts: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...]:
        if self.softmax:
            return tuple(softmax_over_sources(parts))
        return tuple(self.act(p) for p in parts)


class PerSourceMask:
    """``mask_mul:per_source`` -- the separator returns one mask per source (see the module docstring).

    Matches the model's :class:`~harness.model.TDConvNet4D` (a direct child, ``masker``) whose mask conv is not split
    yet and returns a copy with ``mask_net[-1]`` a :class:`PerSourceConv` and ``output_act`` a
    :class:`PerSourceActivation`. Exact. Module paths change (``masker.mask_net.1.convs.<s>.weight``), so the
    rewritten model is for export only, not for :func:`~harness.model.save_checkpoint`.
    """

    name = "mask_mul:per_source"
    scope: tuple[str, ...] = ("",)
    exact = True

    def matches(self, module: nn.Module) -> bool:
        """True for a separator whose last mask-net module is still one conv."""
        return isinstance(module, TDConvNet4D) and isinstance(module.mask_net[-1], nn.Conv2d)

    def rewrite(self, module: nn.Module) -> nn.Module:
        """A copy of the separator with the split mask conv and the per-source activation."""
        assert isinstance(module, TDConvNet4D)
        new = copy.deepcopy(module)
        last = len(new.mask_net) - 1
        conv = new.mask_net[last]
        assert isinstance(conv, nn.Conv2d)
        new.mask_net[last] = PerSourceConv(conv, new.n_src)
        new.output_act = PerSourceActivation(new.output_act)
        return new

    def descend(self, module: nn.Module) -> bool:
        """Only the model's direct children are candidates."""
        return False

    def describe(self, originals: Sequence[nn.Module]) -> str:
        """The label reported when the rule fires."""
        return self.name


class PerSourceDecoder(nn.Module):
    """One ungrouped ``ConvTranspose2d(N, C_out, (1, L))`` per source; outputs concatenated on channels.

    Args:
        decoder: The grouped decoder ``ConvTranspose2d(n_src * N, n_src * C_out, groups=n_src)``; its weight rows
            ``s * N : (s + 1) * N`` go to ``decoders[s]``.

    Called as ``decoder(masked, output_padding)`` (see :meth:`harness.model.ConvTasNet4D._decode`), ``masked``
    either the source-major tensor ``[B, n_src * N, 1, F]`` (sliced per source with constant bounds) or a tuple of
    ``n_src`` tensors ``[B, N, 1, F]``.
    """

    def __init__(self, decoder: nn.ConvTranspose2d) -> None:
        super().__init__()
        n_src = decoder.groups
        self.n_src = n_src
        self.channels = decoder.in_channels // n_src
        c_out = decoder.out_channels // n_src
        self.decoders = nn.ModuleList()
        for s in range(n_src):
            part = nn.ConvTranspose2d(
                self.channels,
                c_out,
                decoder.kernel_size,  # type: ignore[arg-type]
                stride=decoder.stride,  # type: ignore[arg-type]
                padding=decoder.padding,  # type: ignore[arg-type]
                dilation=decoder.dilation,  # type: ignore[arg-type]
                bias=decoder.bias is not None,
            )
            with torch.no_grad():
                part.weight.copy_(decoder.weight[s * self.channels : (s + 1) * self.channels])
                if decoder.bias is not None:
                    part.bias.copy_(decoder.bias[s * c_out : (s + 1) * c_out])
            part.train(decoder.training)
            self.decoders.append(part)

    def forward(self, masked: torch.Tensor | tuple[torch.Tensor, ...], output_padding: tuple[int, int]) -> torch.Tensor:
        if isinstance(masked, torch.Tensor):
            c = self.channels
            parts: Sequence[torch.Tensor] = [masked[:, s * c : (s + 1) * c] for s in range(self.n_src)]
        else:
            parts = masked
        outs = []
        for part, dec in zip(parts, self.decoders, strict=True):
            assert isinstance(dec, nn.ConvTranspose2d)
            outs.append(
                nn.functional.conv_transpose2d(
                    part, dec.weight, dec.bias, dec.stride, dec.padding, output_padding, 1, dec.dilation
                )
            )
        return torch.cat(outs, dim=1)


class PerSourceDecoding:
    """``decoder:per_source`` -- replace the grouped decoder (``model.decoder``) with a :class:`PerSourceDecoder`.

    Matches a direct child ``ConvTranspose2d`` with ``groups > 1`` (a one-source model's decoder is ungrouped
    already: nothing fires). Exact. Like :class:`PerSourceMask`, the rewritten model is for export only.
    """

    name = "decoder:per_source"
    scope: tuple[str, ...] = ("",)
    exact = True

    def matches(self, module: nn.Module) -> bool:
        """True for a grouped transposed conv."""
        return isinstance(module, nn.ConvTranspose2d) and module.groups > 1

    def rewrite(self, module: nn.Module) -> nn.Module:
        """A :class:`PerSourceDecoder` with the grouped weight split per source."""
        assert isinstance(module, nn.ConvTranspose2d)
        return PerSourceDecoder(module)

    def descend(self, module: nn.Module) -> bool:
        """Only the model's direct children are candidates."""
        return False

    def describe(self, originals: Sequence[nn.Module]) -> str:
        """The label reported when the rule fires."""
        return self.name
