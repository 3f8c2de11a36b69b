"""The exact rewrites (gln_stats:split, mask_mul:per_source, decoder:per_source): the same function as the unmodified
model in torch and in the exported ONNX (fidelity gate), the same weights, and the graph forms they promise."""

from __future__ import annotations

import collections
import dataclasses
import itertools
import logging
from pathlib import Path
from types import SimpleNamespace

import onnx
import pytest
import torch
from onnx import numpy_helper

from support.models import tiny_config

from harness.errors import ConfigError
from harness.export import check_fidelity, export_onnx
from harness.model import ConvTasNet4D, ConvTasNetConfig, GlobLN, softmax_over_sources
from harness.substitutions import (
    PerSourceConv,
    PerSourceDecoder,
    SplitGlobLN,
    SubstitutionSpec,
    apply_substitutions,
)

_log = logging.getLogger(__name__)

WIDTH = 2003  # (2003 - 8) % 4 = 3: the decoders' output_padding is exercised
ALL = SubstitutionSpec(gln_stats="split", decoder="per_source", mask_mul="per_source")
SPECS = {
    "gln_split": SubstitutionSpec(gln_stats="split"),
    "decoder": SubstitutionSpec(decoder="per_source"),
    "mask": SubstitutionSpec(mask_mul="per_source"),
    "mask_grouped_decoder": SubstitutionSpec(gln_stats="split", mask_mul="per_source"),
    "all": ALL,
}
CONFIGS = list(itertools.product(["gLN", "cLN"], ["relu", "sigmoid", "softmax"]))
LAYOUT_OPS = {"Reshape", "Transpose", "Flatten", "Squeeze", "Unsqueeze", "Shape", "Gather", "Split"}


def _model(config: ConvTasNetConfig) -> ConvTasNet4D:
    model = ConvTasNet4D(config)
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name != "decoder.weight":
                p.add_(0.2 * torch.randn(p.shape, generator=gen))
        # a decoder filterbank per source (the grouped weight is not a repeat): the split must keep each source's
        model.decoder.weight.add_(0.1 * torch.randn(model.decoder.weight.shape, generator=gen))
    return model.eval()


def _run(model: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        out: torch.Tensor = model(x)
    return out


@pytest.fixture(scope="module")
def mixture() -> torch.Tensor:
    return torch.randn(2, 1, 1, WIDTH, generator=torch.Generator().manual_seed(0))


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> dict[tuple[str, str, str], tuple[ConvTasNet4D, onnx.ModelProto]]:
    """(norm, mask_act, spec) -> (original model, exported ONNX of the rewritten model); also the originals."""
    out = {}
    folder = tmp_path_factory.mktemp("topology")
    for norm, act in CONFIGS:
        base = _model(tiny_config(norm_type=norm, mask_act=act, encoder_activation="relu"))
        for key, spec in {"none": SubstitutionSpec(), **SPECS}.items():
            model, _ = apply_substitutions(base, spec)
            path = folder / f"{norm}_{act}_{key}.onnx"
            export_onnx(model, WIDTH, path)
            proto = onnx.load(path)
            onnx.checker.check_model(proto)
            out[(norm, act, key)] = (base, proto)
    return out


def _ops(proto: onnx.ModelProto) -> collections.Counter[str]:
    return collections.Counter(node.op_type for node in proto.graph.node)


def _attr(node: onnx.NodeProto, name: str, default: object = None) -> object:
    for a in node.attribute:
        if a.name == name:
            return onnx.helper.get_attribute_value(a)
    return default


def _reduce_mean_axes(proto: onnx.ModelProto) -> list[tuple[int, ...]]:
    return [tuple(_attr(n, "axes")) for n in proto.graph.node if n.op_type == "ReduceMean"]  # type: ignore[arg-type]


def _n_norms(config: ConvTasNetConfig) -> int:
    return 2 * config.n_layers + 1


# -- torch: the rewritten model computes the unmodified model's function ------------------------------------------


@pytest.mark.parametrize(("norm", "act"), CONFIGS)
@pytest.mark.parametrize("key", list(SPECS))
def test_rewrite_matches_unmodified_model_in_torch(norm: str, act: str, key: str, mixture: torch.Tensor) -> None:
    base = _model(tiny_config(norm_type=norm, mask_act=act, encoder_activation="relu"))
    before = {k: v.clone() for k, v in base.state_dict().items()}
    rewritten, fired = apply_substitutions(base, SPECS[key])
    diff = float((_run(rewritten, mixture) - _run(base, mixture)).abs().max())
    _log.info("%s/%s %s (%s): torch max abs diff %.3g", norm, act, key, ",".join(fired), diff)
    assert diff < 1e-5
    assert all(torch.equal(v, base.state_dict()[k]) for k, v in before.items())  # the original is not mutated
    assert sum(p.numel() for p in rewritten.parameters()) == sum(p.numel() for p in base.parameters())


@pytest.mark.parametrize(("norm", "act"), CONFIGS)
@pytest.mark.parametrize("key", list(SPECS))
def test_exported_rewrite_passes_the_gate_against_the_unmodified_model(
    norm: str, act: str, key: str, exported: dict, tmp_path: Path, mixture: torch.Tensor
) -> None:
    base, proto = exported[(norm, act, key)]
    path = tmp_path / "m.onnx"
    onnx.save(proto, path)
    fid = check_fidelity(base, path, mixture.numpy(), 60.0)
    _log.info("%s/%s %s: gate SI-SNR %.1f dB, max abs err %.2g", norm, act, key, fid["fidelity_si_snr_db"],
              fid["fidelity_max_abs_err"])  # fmt: skip
    assert fid["fidelity_si_snr_db"] > 60.0 and fid["fidelity_max_abs_err"] < 1e-4


# -- which rules fire ----------------------------------------------------------------------------------------------


def test_labels_and_idempotence() -> None:
    base = _model(tiny_config())
    once, fired = apply_substitutions(base, ALL)
    assert fired == ["gln_stats:split", "mask_mul:per_source", "decoder:per_source"]
    twice, again = apply_substitutions(once, ALL)
    assert again == [] and once.substitutions == twice.substitutions == tuple(fired)


def test_split_stats_need_a_gln() -> None:
    assert apply_substitutions(_model(tiny_config(norm_type="cLN")), SubstitutionSpec(gln_stats="split"))[1] == []
    # a norm swap to gLN runs first, so the swapped norms are split too
    model, fired = apply_substitutions(_model(tiny_config(norm_type="cLN")), SubstitutionSpec(norm="gLN", gln_stats="split"))
    assert fired == ["norm:cLN->gLN", "gln_stats:split"]
    norms = [m for m in model.modules() if isinstance(m, GlobLN)]
    assert len(norms) == _n_norms(model.config) and all(type(m) is SplitGlobLN for m in norms)
    # a split gLN is still a gLN: a swap to gLN leaves it, a swap to cLN replaces it
    assert apply_substitutions(model, SubstitutionSpec(norm="gLN"))[1] == []
    assert apply_substitutions(model, SubstitutionSpec(norm="cLN"))[1] == ["norm:gLN->cLN"]


def test_one_source_decoder_is_already_ungrouped() -> None:
    model, fired = apply_substitutions(_model(tiny_config(n_src=1)), ALL)
    assert fired == ["gln_stats:split", "mask_mul:per_source"]
    assert isinstance(model.decoder, torch.nn.ConvTranspose2d) and model.decoder.groups == 1


def test_weights_are_the_grouped_weights_split_per_source() -> None:
    base = _model(tiny_config())
    model, _ = apply_substitutions(base, ALL)
    n, c = base.config.n_filters, base.config.out_chan
    assert c is not None
    dec, conv = model.decoder, model.masker.mask_net[-1]
    assert isinstance(dec, PerSourceDecoder) and isinstance(conv, PerSourceConv)
    orig = base.masker.mask_net[-1]
    assert isinstance(orig, torch.nn.Conv2d)
    for s in range(base.config.n_src):
        d = dec.decoders[s]
        assert isinstance(d, torch.nn.ConvTranspose2d)
        assert (d.in_channels, d.out_channels, d.groups, d.kernel_size, d.stride) == (n, 1, 1, (1, 8), (1, 4))
        assert torch.equal(d.weight, base.decoder.weight[s * n : (s + 1) * n])
        assert torch.equal(conv.convs[s].weight, orig.weight[s * c : (s + 1) * c])
        assert torch.equal(conv.convs[s].bias, orig.bias[s * c : (s + 1) * c])


def test_spec_rejects_unknown_forms_and_drops_exact_rewrites() -> None:
    for key in ("gln_stats", "decoder", "mask_mul"):
        with pytest.raises(ConfigError, match=f"substitutions.{key}"):
            SubstitutionSpec(**{key: "diagonal"})  # type: ignore[arg-type]
    spec = SubstitutionSpec(prelu="maxmin", norm="cLN", clamp=4.0, gln_stats="split", decoder="per_source")
    assert spec.without_exact() == SubstitutionSpec(norm="cLN", clamp=4.0)
    assert ALL.without_exact() == SubstitutionSpec()


def test_softmax_over_sources_is_torch_softmax() -> None:
    x = torch.randn(3, 2, 5, generator=torch.Generator().manual_seed(4)) * 10
    got = torch.stack(softmax_over_sources(list(x)))
    assert torch.allclose(got, torch.softmax(x, dim=0), atol=1e-7)


# -- the exported graphs -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("norm", "act"), CONFIGS)
def test_split_stats_are_single_axis_means(norm: str, act: str, exported: dict) -> None:
    config = tiny_config(norm_type=norm)
    joint = _reduce_mean_axes(exported[(norm, act, "none")][1])
    split = _reduce_mean_axes(exported[(norm, act, "gln_split")][1])
    if norm == "gLN":
        assert joint == [(1, 2, 3)] * (2 * _n_norms(config))
        # per norm: time then channels for the mean, and again for the variance (as the real DFC's ONNX)
        assert split == [(3,), (1,)] * (2 * _n_norms(config))
    else:
        assert joint == split == [(1,)] * (2 * _n_norms(config))


@pytest.mark.parametrize(("norm", "act"), CONFIGS)
def test_per_source_decoder_has_no_grouped_conv_transpose(norm: str, act: str, exported: dict) -> None:
    for key, n_deconv, group in (("none", 1, 2), ("decoder", 2, 1), ("all", 2, 1), ("mask_grouped_decoder", 1, 2)):
        deconvs = [n for n in exported[(norm, act, key)][1].graph.node if n.op_type == "ConvTranspose"]
        assert [_attr(n, "group", 1) for n in deconvs] == [group] * n_deconv, key
        assert all(_attr(n, "output_padding") == [0, 3] for n in deconvs)


def _repeated_concats_into_mul(proto: onnx.ModelProto) -> list[str]:
    """Concat nodes whose inputs are all one tensor and whose output feeds a Mul (``masks * cat([w] * n_src)``)."""
    concats = {n.output[0]: n for n in proto.graph.node if n.op_type == "Concat" and len(set(n.input)) == 1}
    return [concats[t].name for n in proto.graph.node if n.op_type == "Mul" for t in n.input if t in concats]


@pytest.mark.parametrize(("norm", "act"), CONFIGS)
def test_per_source_mask_has_no_repeated_concat(norm: str, act: str, exported: dict) -> None:
    config = tiny_config(norm_type=norm, mask_act=act)
    assert len(_repeated_concats_into_mul(exported[(norm, act, "none")][1])) == 1
    assert len(_repeated_concats_into_mul(exported[(norm, act, "decoder")][1])) == 1
    for key in ("mask", "mask_grouped_decoder", "all"):
        proto = exported[(norm, act, key)][1]
        assert _repeated_concats_into_mul(proto) == [], key
        assert _ops(proto)["Conv"] == _ops(exported[(norm, act, "none")][1])["Conv"] + config.n_src - 1
    # per-source masks into per-source decoders: the only Concat joins the decoders' outputs, no Slice at all
    ops = _ops(exported[(norm, act, "all")][1])
    assert ops["Concat"] == 1 and ops["Slice"] == 0
    (concat,) = [n for n in exported[(norm, act, "all")][1].graph.node if n.op_type == "Concat"]
    assert concat.output[0] == "output"


@pytest.mark.parametrize(("norm", "act"), CONFIGS)
@pytest.mark.parametrize("key", list(SPECS))
def test_no_layout_ops(norm: str, act: str, key: str, exported: dict) -> None:
    assert not set(_ops(exported[(norm, act, key)][1])) & LAYOUT_OPS


def test_per_source_decoder_slices_the_repeated_product_with_constants(exported: dict) -> None:
    proto = exported[("gLN", "sigmoid", "decoder")][1]
    consts = {i.name: numpy_helper.to_array(i) for i in proto.graph.initializer}
    for node in proto.graph.node:
        if node.op_type == "Constant":
            consts[node.output[0]] = numpy_helper.to_array(node.attribute[0].t)
    slices = [n for n in proto.graph.node if n.op_type == "Slice"]
    assert len(slices) == 2 and all(all(t in consts for t in n.input[1:]) for n in slices)


# -- the pipeline's export stage -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cfg", "vs_original"),
    [
        ({}, 1.0),
        ({"gln_stats": "split", "decoder": "per_source", "mask_mul": "per_source"}, 1.0),
        ({"prelu": "maxmin", "mask_mul": "per_source"}, 1.0),
        ({"norm": "cLN", "decoder": "per_source"}, 0.0),
    ],
)
def test_pipeline_export_gates_exact_rewrites_against_the_original(
    cfg: dict, vs_original: float, tmp_path: Path, mixture: torch.Tensor
) -> None:
    from harness.pipeline import Pipeline, TrialConfig

    pipe = Pipeline(SimpleNamespace(fidelity_gate_db=60.0, model=None), cache=None)  # type: ignore[arg-type]
    pipe._model = _model(tiny_config(encoder_activation="relu"))
    trial = TrialConfig(width=WIDTH, **cfg)
    meta = pipe._export(trial, SimpleNamespace(mixtures=mixture.numpy()[:, 0, 0, :]), tmp_path)
    assert meta["fidelity"]["fidelity_vs_original"] == vs_original
    assert meta["fidelity"]["fidelity_si_snr_db"] > 60.0
    assert len(meta["fired"]) == sum(1 for k, v in cfg.items() if v != dataclasses.asdict(TrialConfig())[k])


def test_trial_config_defaults_are_the_model_forms() -> None:
    from harness.pipeline import TrialConfig
    from harness.space import EXACT_DEFAULTS

    assert {k: dataclasses.asdict(TrialConfig())[k] for k in EXACT_DEFAULTS} == EXACT_DEFAULTS
    spec = SubstitutionSpec()
    assert {k: getattr(spec, k) for k in EXACT_DEFAULTS} == EXACT_DEFAULTS
