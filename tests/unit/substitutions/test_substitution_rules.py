"""Substitution rules on the 4-D Conv-TasNet: which fire, what they keep, and how they change the numbers."""

from __future__ import annotations

import dataclasses
import logging

import pytest
import torch
from torch import nn

from support.models import tiny_config

from harness.errors import ConfigError
from harness.model import AffineNorm, ChanLN, ConvTasNet4D, ConvTasNetConfig, GlobLN, IdentityNorm, NormBase
from harness.substitutions import (
    ClampedActivation,
    MaxMinPReLU,
    SubstitutionSpec,
    apply_substitutions,
)

_log = logging.getLogger(__name__)

TINY = tiny_config(encoder_activation="relu")
N_PRELU = 2 * TINY.n_layers + 1  # two per block + mask_net
N_NORM = 2 * TINY.n_layers + 1  # two per block + bottleneck


def _model(config: ConvTasNetConfig = TINY) -> ConvTasNet4D:
    model = ConvTasNet4D(config)
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name != "decoder.weight":
                p.add_(0.2 * torch.randn(p.shape, generator=gen))
    return model.eval()


def _n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def _run(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        out: torch.Tensor = model(x)
    return out


@pytest.fixture(scope="module")
def mixture() -> torch.Tensor:
    return torch.randn(2, 1, 1, 2001, generator=torch.Generator().manual_seed(0))


def test_default_spec_fires_nothing(mixture: torch.Tensor) -> None:
    model = _model()
    copy, fired = apply_substitutions(model, SubstitutionSpec())
    assert fired == [] and copy is not model
    assert torch.equal(_run(copy, mixture), _run(model, mixture))


def test_maxmin_equals_prelu(mixture: torch.Tensor) -> None:
    model = _model()
    variant, fired = apply_substitutions(model, SubstitutionSpec(prelu="maxmin"))
    assert fired == ["prelu:maxmin"]
    maxmins = [m for m in variant.modules() if isinstance(m, MaxMinPReLU)]
    assert len(maxmins) == N_PRELU
    assert not any(isinstance(m, nn.PReLU) for m in variant.modules())
    slopes = [m.weight for m in model.modules() if isinstance(m, nn.PReLU)]
    for prelu_w, mm in zip(slopes, maxmins, strict=True):
        assert torch.equal(mm.weight.reshape(-1), prelu_w)
    diff = (_run(variant, mixture) - _run(model, mixture)).abs().max().item()
    _log.info("prelu:maxmin max abs diff vs keep: %.3g", diff)
    assert diff < 1e-6
    assert _n_params(variant) == _n_params(model)


@pytest.mark.parametrize(
    ("spec", "label", "new_type"),
    [
        (SubstitutionSpec(prelu="relu"), "prelu:relu", nn.ReLU),
        (SubstitutionSpec(norm="cLN"), "norm:gLN->cLN", ChanLN),
        (SubstitutionSpec(norm="affine"), "norm:gLN->affine", AffineNorm),
        (SubstitutionSpec(norm="identity"), "norm:gLN->identity", IdentityNorm),
        (SubstitutionSpec(clamp=0.5), "clamp:0.5", ClampedActivation),
    ],
    ids=["relu", "cLN", "affine", "identity", "clamp"],
)
def test_rule_changes_output(spec: SubstitutionSpec, label: str, new_type: type, mixture: torch.Tensor) -> None:
    model = _model()
    variant, fired = apply_substitutions(model, spec)
    assert fired == [label]
    assert sum(isinstance(m, new_type) for m in variant.masker.modules()) == (N_NORM if spec.norm else N_PRELU)
    ref, got = _run(model, mixture), _run(variant, mixture)
    diff = (got - ref).abs().max().item()
    rel = diff / ref.abs().max().item()
    _log.info("%s: max abs diff vs keep %.3g (%.1f%% of the output peak)", label, diff, 100 * rel)
    assert rel > 1e-3
    assert got.shape == ref.shape and torch.isfinite(got).all()


def test_all_rules_fire_in_order_and_input_is_untouched(mixture: torch.Tensor) -> None:
    model = _model()
    before_state = {k: v.clone() for k, v in model.state_dict().items()}
    before_types = [(n, type(m)) for n, m in model.named_modules()]
    before_out = _run(model, mixture)
    variant, fired = apply_substitutions(model, SubstitutionSpec(prelu="relu", norm="cLN", clamp=8))
    assert fired == ["prelu:relu", "norm:gLN->cLN", "clamp:8.0"]
    assert variant.substitutions == ("prelu:relu", "norm:gLN->cLN", "clamp:8.0")
    assert model.substitutions == ()
    assert [(n, type(m)) for n, m in model.named_modules()] == before_types
    assert all(torch.equal(v, before_state[k]) for k, v in model.state_dict().items())
    assert torch.equal(_run(model, mixture), before_out)


def test_rules_keep_capacity_and_weights() -> None:
    model = _model()
    variant, _ = apply_substitutions(model, SubstitutionSpec(prelu="maxmin", norm="affine", clamp=4.0))
    convs = [(n, m.weight) for n, m in model.named_modules() if isinstance(m, nn.Conv2d | nn.ConvTranspose2d)]
    new_convs = [(n, m.weight) for n, m in variant.named_modules() if isinstance(m, nn.Conv2d | nn.ConvTranspose2d)]
    assert [n for n, _ in convs] == [n for n, _ in new_convs]
    assert all(torch.equal(a, b) for (_, a), (_, b) in zip(convs, new_convs, strict=True))
    norms = [m for m in model.modules() if isinstance(m, NormBase)]
    new_norms = [m for m in variant.modules() if isinstance(m, NormBase)]
    assert all(isinstance(m, AffineNorm) for m in new_norms)
    for a, b in zip(norms, new_norms, strict=True):
        assert torch.equal(a.gamma, b.gamma) and torch.equal(a.beta, b.beta)
    assert len(variant.masker.TCN) == len(model.masker.TCN)


def test_parameter_counts_per_variant() -> None:
    model = _model()
    base = _n_params(model)
    for spec in (
        SubstitutionSpec(prelu="maxmin"),
        SubstitutionSpec(norm="cLN"),
        SubstitutionSpec(norm="affine"),
        SubstitutionSpec(norm="identity"),  # keeps (unused) gamma/beta so a later swap can restore them
        SubstitutionSpec(clamp=1.0),
    ):
        assert _n_params(apply_substitutions(model, spec)[0]) == base, spec
    # nn.ReLU has no parameter: each replaced PReLU drops its one slope.
    assert _n_params(apply_substitutions(model, SubstitutionSpec(prelu="relu"))[0]) == base - N_PRELU


def test_norm_swap_round_trip_restores_the_model(mixture: torch.Tensor) -> None:
    model = _model()
    identity, _ = apply_substitutions(model, SubstitutionSpec(norm="identity"))
    back, fired = apply_substitutions(identity, SubstitutionSpec(norm="gLN"))
    assert fired == ["norm:identity->gLN"]
    assert all(isinstance(m, GlobLN) for m in back.modules() if isinstance(m, NormBase))
    assert torch.equal(_run(back, mixture), _run(model, mixture))


def test_noop_rules_do_not_fire() -> None:
    model = _model()
    assert apply_substitutions(model, SubstitutionSpec(norm="gLN"))[1] == []
    cln = _model(dataclasses.replace(TINY, norm_type="cLN"))
    assert apply_substitutions(cln, SubstitutionSpec(norm="cLN"))[1] == []
    assert apply_substitutions(cln, SubstitutionSpec(norm="gLN"))[1] == ["norm:cLN->gLN"]
    relu, _ = apply_substitutions(model, SubstitutionSpec(prelu="relu"))
    assert apply_substitutions(relu, SubstitutionSpec(prelu="relu"))[1] == []
    assert apply_substitutions(relu, SubstitutionSpec(prelu="maxmin"))[1] == []
    clamped, _ = apply_substitutions(model, SubstitutionSpec(clamp=2.0))
    again, fired = apply_substitutions(clamped, SubstitutionSpec(clamp=2.0))
    assert fired == []
    assert not any(isinstance(m.act, ClampedActivation) for m in again.modules() if isinstance(m, ClampedActivation))
    tighter, fired = apply_substitutions(clamped, SubstitutionSpec(clamp=1.0))
    assert fired == ["clamp:1.0"]
    assert {m.limit for m in tighter.modules() if isinstance(m, ClampedActivation)} == {1.0}


def test_clamp_bounds_separator_activations_only() -> None:
    model = _model()
    variant, _ = apply_substitutions(model, SubstitutionSpec(clamp=0.25))
    clamped = [n for n, m in variant.named_modules() if isinstance(m, ClampedActivation)]
    assert len(clamped) == N_PRELU
    assert all(n.startswith(("masker.TCN.", "masker.mask_net.")) for n in clamped)
    assert isinstance(variant.enc_activation, nn.ReLU)  # the encoder activation is not in the separator
    seen: list[torch.Tensor] = []
    for m in variant.modules():
        if isinstance(m, ClampedActivation):
            m.register_forward_hook(lambda _m, _i, out: seen.append(out))
    _run(variant, torch.randn(1, 1, 1, 801) * 10)
    assert len(seen) == N_PRELU and all(t.abs().max() <= 0.25 for t in seen)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"prelu": "leaky"},
        {"norm": "BN"},
        {"clamp": 0},
        {"clamp": -1.0},
        {"clamp": float("nan")},
        {"clamp": float("inf")},
        {"clamp": True},
        {"clamp": "8"},
    ],
)
def test_spec_validation(kwargs: dict[str, object]) -> None:
    with pytest.raises(ConfigError) as err:
        SubstitutionSpec(**kwargs)  # type: ignore[arg-type]
    assert "\n" not in str(err.value) and "substitutions." in str(err.value)


def test_spec_normalizes_clamp_to_float() -> None:
    assert SubstitutionSpec(clamp=8).clamp == 8.0
    assert SubstitutionSpec(norm=None).norm is None
