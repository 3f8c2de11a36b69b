"""asteroid-format checkpoints: config from model_args, exact round trips, asteroid interop and every error."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch

from support.models import tiny_config

from harness.errors import CheckpointError
from harness.model import (
    DEMO_CONFIG,
    IGNORED_MODEL_ARGS,
    Conv1DBlock4D,
    ConvTasNet4D,
    ConvTasNetConfig,
    load_checkpoint,
    save_checkpoint,
)

TINY = tiny_config(encoder_activation="relu")


def _trained(config: ConvTasNetConfig = TINY, seed: int = 0) -> ConvTasNet4D:
    """A model whose every parameter differs from its init (decoder copies kept identical)."""
    model = ConvTasNet4D(config)
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name != "decoder.weight":
                p.add_(0.2 * torch.randn(p.shape, generator=gen))
    return model.eval()


def _package(model: ConvTasNet4D, tmp_path: Path) -> dict[str, Any]:
    path = save_checkpoint(model, tmp_path / "src.pth")
    package: dict[str, Any] = torch.load(path, weights_only=True)
    return package


def _assert_one_line(err: pytest.ExceptionInfo[CheckpointError], *parts: str) -> None:
    message = str(err.value)
    assert "\n" not in message
    for part in parts:
        assert part in message, message


# -- config ------------------------------------------------------------------------------------------------------


def test_config_from_model_args_round_trips() -> None:
    args = DEMO_CONFIG.to_model_args()
    assert args["fb_name"] == "FreeFB"
    assert ConvTasNetConfig.from_model_args(args) == DEMO_CONFIG


def test_config_missing_keys_take_asteroid_defaults() -> None:
    config = ConvTasNetConfig.from_model_args({"n_src": 3, "fb_name": "free"})
    assert (config.n_filters, config.bn_chan, config.hid_chan, config.skip_chan) == (512, 128, 512, 128)
    assert (config.n_blocks, config.n_repeats, config.stride, config.sample_rate) == (8, 3, 8, 8000.0)


def test_config_ignores_neutral_extra_keys() -> None:
    args = {**TINY.to_model_args(), **IGNORED_MODEL_ARGS}
    assert ConvTasNetConfig.from_model_args(args) == TINY


@pytest.mark.parametrize(
    ("key", "value", "fragment"),
    [
        ("causal", True, "model_args.causal: True; expected False"),
        ("fb_name", "stft", "model_args.fb_name"),
        ("norm_type", "BN", "model_args.norm_type"),
        ("norm_type", "cgLN", "model_args.norm_type"),
        ("mask_act", "tanh", "model_args.mask_act"),
        ("encoder_activation", "prelu", "model_args.encoder_activation"),
        ("in_chan", 32, "model_args.in_chan"),
        ("out_chan", 8, "model_args.out_chan"),
        ("conv_kernel_size", 4, "model_args.conv_kernel_size"),
        ("n_blocks", 0, "model_args.n_blocks"),
        ("bn_chan", 8.5, "model_args.bn_chan"),
        ("skip_chan", -1, "model_args.skip_chan"),
        ("sample_rate", "16k", "model_args.sample_rate"),
        ("who_is_pinv", "encoder", "model_args.who_is_pinv"),
        ("padding", 2, "model_args.padding"),
        ("dropout", 0.1, "model_args.dropout: unknown key"),
    ],
)
def test_config_rejects_unsupported_args(key: str, value: Any, fragment: str) -> None:
    args = {**TINY.to_model_args(), key: value}
    with pytest.raises(CheckpointError) as err:
        ConvTasNetConfig.from_model_args(args, source="ckpt.pth")
    _assert_one_line(err, "ckpt.pth: " + fragment)


def test_config_requires_n_src() -> None:
    args = TINY.to_model_args()
    del args["n_src"]
    with pytest.raises(CheckpointError, match=r"model_args\.n_src: missing"):
        ConvTasNetConfig.from_model_args(args)


# -- round trip and asteroid interop -------------------------------------------------------------------------------


@pytest.mark.parametrize("overrides", [{}, {"norm_type": "cLN", "n_src": 3, "skip_chan": 0}])
def test_save_load_round_trip_is_exact(overrides: dict[str, Any], tmp_path: Path) -> None:
    model = _trained(dataclasses.replace(TINY, **overrides))
    path = save_checkpoint(model, tmp_path / "model.pth", infos={"note": "unit test"})
    loaded = load_checkpoint(path)
    assert not loaded.training
    assert loaded.config == model.config
    for (name, a), (name_b, b) in zip(model.state_dict().items(), loaded.state_dict().items(), strict=True):
        assert name == name_b and torch.equal(a, b), name
    x = torch.randn(2, 1, 1, 1001)
    with torch.no_grad():
        assert torch.equal(model(x), loaded(x))
    assert torch.load(path, weights_only=True)["infos"] == {"note": "unit test"}
    assert list(tmp_path.iterdir()) == [path]  # no temp file left behind


def test_saved_file_is_asteroid_format(tmp_path: Path) -> None:
    package = _package(_trained(), tmp_path)
    assert set(package) == {"model_name", "model_args", "state_dict", "infos"}
    assert package["model_name"] == "ConvTasNet"
    state = package["state_dict"]
    n, length = TINY.n_filters, TINY.kernel_size
    assert state["encoder.filterbank._filters"].shape == (n, 1, length)
    assert state["decoder.filterbank._filters"].shape == (n, 1, length)
    assert state["masker.bottleneck.0.gamma"].shape == (n,)
    assert state["masker.bottleneck.1.weight"].shape == (TINY.bn_chan, n, 1)
    assert state["masker.TCN.1.shared_block.3.weight"].shape == (TINY.hid_chan, 1, 3)
    assert state["masker.TCN.1.shared_block.4.weight"].shape == (1,)
    assert state["masker.mask_net.1.weight"].shape == (2 * n, TINY.skip_chan, 1)


def test_asteroid_loads_saved_checkpoint_with_same_output(tmp_path: Path) -> None:
    try:
        from asteroid.models import ConvTasNet
    except ImportError as err:  # fail, never skip
        pytest.fail(f"asteroid is required ({err}); pip install --no-deps asteroid==0.7.0 asteroid-filterbanks==0.4.0")
    model = _trained(dataclasses.replace(TINY, n_src=3, norm_type="cLN"))
    path = save_checkpoint(model, tmp_path / "model.pth")
    reference = ConvTasNet.from_pretrained(str(path)).eval()
    x = torch.randn(2, 1, 4001)
    with torch.no_grad():
        diff = (reference(x) - model(x.unsqueeze(2))[:, :, 0]).abs().max().item()
    assert diff < 1e-5


def test_save_refuses_substituted_model(tmp_path: Path) -> None:
    model = _trained()
    block = model.masker.TCN[0]
    assert isinstance(block, Conv1DBlock4D)
    block.shared_block[1] = torch.nn.ReLU()
    with pytest.raises(CheckpointError) as err:
        save_checkpoint(model, tmp_path / "model.pth")
    _assert_one_line(err, "ReLU at masker.TCN.0.shared_block.1", "PReLU")
    assert not list(tmp_path.iterdir())


def test_save_refuses_diverged_decoder_copies(tmp_path: Path) -> None:
    model = _trained()
    with torch.no_grad():
        model.decoder.weight[TINY.n_filters :] += 0.1
    with pytest.raises(CheckpointError) as err:
        save_checkpoint(model, tmp_path / "model.pth")
    _assert_one_line(err, "decoder filters differ between sources")


# -- load errors --------------------------------------------------------------------------------------------------


def _write(tmp_path: Path, obj: Any) -> Path:
    path = tmp_path / "bad.pth"
    torch.save(obj, path)
    return path


def _write_bytes(tmp_path: Path, data: bytes) -> Path:
    path = tmp_path / "raw.pth"
    path.write_bytes(data)
    return path


def _drop_key(p: dict[str, Any]) -> None:
    del p["state_dict"]["masker.TCN.1.res_conv.bias"]


def _add_key(p: dict[str, Any]) -> None:
    p["state_dict"]["masker.extra.weight"] = torch.zeros(1)


def _reshape(p: dict[str, Any]) -> None:
    p["state_dict"]["masker.bottleneck.1.weight"] = torch.zeros(8, 16)


def _args_mismatch(p: dict[str, Any]) -> None:
    p["model_args"]["hid_chan"] = 32


@pytest.mark.parametrize(
    ("mutate", "fragments"),
    [
        (lambda p: p.update(model_name="DPRNNTasNet"), ["model_name 'DPRNNTasNet'; expected 'ConvTasNet'"]),
        (lambda p: p["model_args"].update(causal=True), ["model_args.causal: True; expected False"]),
        (lambda p: p["model_args"].update(dropout=0.1), ["model_args.dropout: unknown key"]),
        (lambda p: p.pop("state_dict"), ["dict without state_dict"]),
        (lambda p: p.update(state_dict={"a": 1}), ["state_dict is not a dict of tensors"]),
        (_drop_key, ["missing 1 key(s): masker.TCN.1.res_conv.bias"]),
        (_add_key, ["1 unexpected key(s): masker.extra.weight"]),
        (_reshape, ["shape mismatch(es): masker.bottleneck.1.weight (8, 16) vs (8, 16, 1)"]),
        (_args_mismatch, ["shape mismatch(es)", "... ("]),
    ],
    ids=[
        "model-name",
        "causal",
        "unknown-arg",
        "no-state",
        "state-not-tensors",
        "missing",
        "unexpected",
        "shape",
        "many-shapes",
    ],
)
def test_load_rejects_bad_package(
    mutate: Callable[[dict[str, Any]], Any], fragments: list[str], tmp_path: Path
) -> None:
    package = _package(_trained(), tmp_path)
    mutate(package)
    path = _write(tmp_path, package)
    with pytest.raises(CheckpointError) as err:
        load_checkpoint(path)
    _assert_one_line(err, str(path), *fragments)


@pytest.mark.parametrize(
    ("make", "fragment"),
    [
        (lambda d: d / "absent.pth", "no such file"),
        (lambda d: d, "not a regular file"),
        (lambda d: _write_bytes(d, b""), "not loadable"),
        (lambda d: _write_bytes(d, b"\x80\x02junk" * 50), "not loadable"),
        (lambda d: _write(d, [1, 2, 3]), "contains a list"),
        (lambda d: _write(d, {"state_dict": {}}), "dict without model_name, model_args"),
    ],
    ids=["missing", "directory", "empty", "corrupt", "not-a-dict", "keys"],
)
def test_load_rejects_bad_file(make: Callable[[Path], Path], fragment: str, tmp_path: Path) -> None:
    path = make(tmp_path)
    with pytest.raises(CheckpointError) as err:
        load_checkpoint(path)
    _assert_one_line(err, str(path), fragment)


def test_load_rejects_pickled_code(tmp_path: Path) -> None:
    # A full pickle of a module is what torch.save(model) (not serialize()) writes; weights_only refuses it.
    path = tmp_path / "module.pth"
    torch.save(ConvTasNet4D(TINY), path)
    with pytest.raises(CheckpointError) as err:
        load_checkpoint(path)
    _assert_one_line(err, str(path), "not loadable by torch.load(weights_only=True)", "UnpicklingError")
