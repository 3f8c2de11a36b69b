"""The capacity-frontier resizer: weights are the checkpoint's leading slices, blocks map by (repeat, dilation), the
capacity figures agree with the torch module."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from harness.errors import CheckpointError
from harness.model import ConvTasNet4D, capacity, changed_values, resize_model, resized_config
from tests.support.models import tiny_config


@pytest.fixture(scope="module")
def base() -> ConvTasNet4D:
    torch.manual_seed(3)
    model = ConvTasNet4D(tiny_config(n_blocks=3, n_repeats=2, skip_chan=8))
    with torch.no_grad():  # non-trivial norms and PReLUs, so copied values are distinguishable from fresh ones
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.1)
    return model.eval()


def test_unchanged_values_give_the_checkpoint_model_exactly(base: ConvTasNet4D) -> None:
    r = resize_model(base, {"bn_chan": None, "n_blocks": base.config.n_blocks})
    assert r.config == base.config and r.params_from_checkpoint == r.params_total and r.tensors_fresh == 0
    x = torch.randn(2, 1, 1, 400)
    with torch.no_grad():
        assert torch.equal(r.model(x), base(x))


def test_smaller_widths_are_the_leading_slices(base: ConvTasNet4D) -> None:
    r = resize_model(base, {"n_filters": 12, "bn_chan": 5, "hid_chan": 10, "skip_chan": 4})
    new, old = r.model.state_dict(), base.state_dict()
    assert torch.equal(new["encoder.weight"], old["encoder.weight"][:12])
    assert torch.equal(new["masker.bottleneck.1.weight"], old["masker.bottleneck.1.weight"][:5, :12])
    assert torch.equal(new["masker.TCN.4.shared_block.0.weight"], old["masker.TCN.4.shared_block.0.weight"][:10, :5])
    assert torch.equal(new["masker.TCN.4.shared_block.2.gamma"], old["masker.TCN.4.shared_block.2.gamma"][:, :10])
    assert torch.equal(new["masker.TCN.1.shared_block.3.weight"], old["masker.TCN.1.shared_block.3.weight"][:10])
    assert torch.equal(new["masker.TCN.1.skip_conv.weight"], old["masker.TCN.1.skip_conv.weight"][:4, :10])
    assert torch.equal(new["masker.TCN.1.shared_block.1.weight"], old["masker.TCN.1.shared_block.1.weight"])  # PReLU
    # source-major tensors: source s keeps source s's leading channels
    n_old, n_new = 16, 12
    for s in range(2):
        assert torch.equal(
            new["masker.mask_net.1.weight"][s * n_new : (s + 1) * n_new],
            old["masker.mask_net.1.weight"][s * n_old : s * n_old + n_new, :4],
        )
        assert torch.equal(new["decoder.weight"][s * n_new : (s + 1) * n_new], old["decoder.weight"][s * n_old : s * n_old + n_new])
    assert r.params_from_checkpoint == r.params_total  # everything shrank: nothing fresh
    assert r.model(torch.randn(1, 1, 1, 256)).shape == (1, 2, 1, 256)


def test_fewer_blocks_are_the_first_blocks_of_each_repeat(base: ConvTasNet4D) -> None:
    r = resize_model(base, {"n_blocks": 2, "n_repeats": 1})
    new, old = r.model.state_dict(), base.state_dict()
    assert len(r.model.masker.TCN) == 2
    for i in range(2):
        for key in ("shared_block.0.weight", "shared_block.3.weight", "res_conv.bias", "skip_conv.weight"):
            assert torch.equal(new[f"masker.TCN.{i}.{key}"], old[f"masker.TCN.{i}.{key}"])
    # two repeats of two blocks: block x of repeat r is the checkpoint's block x of repeat r (same dilation)
    r2 = resize_model(base, {"n_blocks": 2})
    assert torch.equal(r2.model.state_dict()["masker.TCN.3.res_conv.weight"], old["masker.TCN.4.res_conv.weight"])
    assert [b.shared_block[3].dilation[1] for b in r2.model.masker.TCN] == [1, 2, 1, 2]


def test_larger_models_keep_the_checkpoint_and_add_seeded_fresh_weights(base: ConvTasNet4D) -> None:
    values = {"hid_chan": 24, "n_repeats": 3}
    r = resize_model(base, values, seed=5)
    new, old = r.model.state_dict(), base.state_dict()
    w = new["masker.TCN.0.shared_block.0.weight"]
    assert w.shape == (24, 8, 1, 1) and torch.equal(w[:16], old["masker.TCN.0.shared_block.0.weight"])
    assert not torch.equal(w[16:], torch.zeros_like(w[16:]))
    assert len(r.model.masker.TCN) == 9 and r.tensors_fresh > 0  # the third repeat's blocks are fresh
    assert 0 < r.params_from_checkpoint < r.params_total
    # the count is the sum of the overlaps: every checkpoint tensor fits in the larger model whole
    assert r.params_from_checkpoint == sum(p.numel() for p in base.parameters())
    # deterministic, seeded, and the global RNG is untouched
    state = torch.random.get_rng_state()
    again = resize_model(base, values, seed=5)
    assert torch.equal(torch.random.get_rng_state(), state)
    assert all(torch.equal(a, b) for a, b in zip(again.model.state_dict().values(), new.values(), strict=True))
    other = resize_model(base, values, seed=6).model.state_dict()["masker.TCN.0.shared_block.0.weight"]
    assert torch.equal(other[:16], w[:16]) and not torch.equal(other[16:], w[16:])


def test_no_skip_path(base: ConvTasNet4D) -> None:
    r = resize_model(base, {"skip_chan": 0})
    assert not hasattr(r.model.masker.TCN[0], "skip_conv")
    assert r.model.state_dict()["masker.mask_net.1.weight"].shape == (32, 8, 1, 1)  # from the residual path (B)
    assert r.model(torch.randn(1, 1, 1, 200)).shape == (1, 2, 1, 200)


def _conv_macs(model: nn.Module, width: int) -> int:
    """MACs of every (transposed) convolution, counted from hooks on a real forward pass."""
    total = 0

    def hook(mod: nn.Module, inp: tuple[torch.Tensor, ...], out: torch.Tensor) -> None:
        nonlocal total
        kernel = mod.weight.shape[2] * mod.weight.shape[3]
        if isinstance(mod, nn.ConvTranspose2d):  # every input element meets out/groups channels x kernel
            total += inp[0].numel() * (mod.out_channels // mod.groups) * kernel
        else:
            total += out.numel() * (mod.in_channels // mod.groups) * kernel

    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, nn.Conv2d | nn.ConvTranspose2d)]
    with torch.no_grad():
        model(torch.zeros(1, 1, 1, width))
    for h in handles:
        h.remove()
    if not isinstance(model.decoder, nn.ConvTranspose2d):
        raise AssertionError("a rewritten decoder")
    # the decoder runs through F.conv_transpose2d with the module's weight: count it from its shape
    dec = model.decoder
    frames = (width - model.config.kernel_size) // model.config.stride + 1
    return total + frames * dec.in_channels * (dec.out_channels // dec.groups) * dec.weight.shape[3]


@pytest.mark.parametrize(
    "values, width",
    [({}, 400), ({"skip_chan": 0, "n_blocks": 1}, 257), ({"n_filters": 20, "hid_chan": 7, "n_repeats": 3}, 3200)],
)
def test_capacity_matches_the_torch_module(base: ConvTasNet4D, values: dict[str, int], width: int) -> None:
    r = resize_model(base, values)
    cap = capacity(r.config, width)
    assert cap.params == sum(p.numel() for p in r.model.parameters()) == r.params_total
    assert cap.macs == _conv_macs(r.model, width)
    assert cap.frames == (width - 8) // 4 + 1


def test_capacity_numbers_of_the_demo_config() -> None:
    from harness.model import DEMO_CONFIG

    cap = capacity(DEMO_CONFIG, 16000)
    assert (cap.params, cap.frames) == (325977, 1999)
    assert cap.macs == 1999 * (64 * 16 + 64 * 64 + 12 * (64 * 128 + 128 * 3 + 128 * 64 + 128 * 64) + 64 * 128 + 128 * 16)
    assert cap.metrics()["capacity_macs"] == float(cap.macs)


def test_resized_config_and_changed_values() -> None:
    base = tiny_config()
    cfg = resized_config(base, {"n_filters": 24, "bn_chan": None})
    assert (cfg.n_filters, cfg.out_chan, cfg.in_chan, cfg.bn_chan) == (24, 24, 24, base.bn_chan)
    assert changed_values(base, {"n_filters": 24, "bn_chan": base.bn_chan, "hid_chan": None}) == {"n_filters": 24}
    with pytest.raises(CheckpointError, match="n_blocks"):
        resized_config(base, {"n_blocks": 0})
