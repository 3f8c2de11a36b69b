"""Checkpoints as they come: asteroid serialize() dicts (also with sample_rate None), Lightning / asteroid System
checkpoints, model_state_dict / model / net wrappers and module. prefixes -- each loads to the demo model's exact
outputs -- and wrong architectures stay one-line errors naming what was found."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from harness.errors import CheckpointError
from harness.model import load_checkpoint

DEMO = Path(__file__).resolve().parents[3] / "assets" / "demo_convtasnet.pt"
FILTERBANK = ("n_filters", "kernel_size", "stride")
MASKNET = ("n_blocks", "n_repeats", "bn_chan", "hid_chan", "skip_chan", "conv_kernel_size", "norm_type", "mask_act",
           "encoder_activation")  # (the demo was trained with relu; asteroid's default is None)


@pytest.fixture(scope="module")
def demo() -> dict[str, Any]:
    return torch.load(DEMO, map_location="cpu", weights_only=True)


@pytest.fixture(scope="module")
def reference(demo: dict[str, Any]) -> torch.Tensor:
    torch.manual_seed(0)
    x = 0.1 * torch.randn(1, 1, 1, 2000)
    with torch.no_grad():
        return x, load_checkpoint(DEMO)(x)


def _prefixed(state: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    return {prefix + k: v for k, v in state.items()}


def _training_config(args: dict[str, Any]) -> dict[str, Any]:
    return {
        "filterbank": {k: args[k] for k in FILTERBANK},
        "masknet": {k: args[k] for k in MASKNET},
        "data": {"sample_rate": args["sample_rate"], "n_src": args["n_src"], "task": "sep_clean"},
        "optim": {"lr": 1e-3},
    }


def _formats(demo: dict[str, Any]) -> dict[str, Any]:
    args, state = demo["model_args"], demo["state_dict"]
    return {
        "lightning-system": {  # asteroid System: model.* keys, the recipe conf in training_config
            "epoch": 7,
            "global_step": 700,
            "pytorch-lightning_version": "2.4.0",
            "state_dict": {**_prefixed(state, "model."), "discriminator.weight": torch.zeros(3)},
            "training_config": _training_config(args),
            "hyper_parameters": {"filterbank/n_filters": args["n_filters"]},
            "optimizer_states": [{"state": {}, "param_groups": [{"lr": 1e-3}]}],
        },
        "lightning-hparams": {"state_dict": _prefixed(state, "model."), "hyper_parameters": {"model_args": args}},
        "model_state_dict": {"model_state_dict": _prefixed(state, "module."), "model_args": args, "epoch": 3},
        "model-serialize": {"model": demo, "optimizer": {"state": {}}, "epoch": 3},
        "net": {"net": state, "model_args": args},
        "dataparallel-serialize": {**demo, "state_dict": _prefixed(state, "module.")},
    }


@pytest.mark.parametrize(
    "kind",
    ["lightning-system", "lightning-hparams", "model_state_dict", "model-serialize", "net", "dataparallel-serialize"],
)
def test_wrapped_checkpoints_load_to_the_same_model(
    kind: str, demo: dict[str, Any], reference: tuple[torch.Tensor, torch.Tensor], tmp_path: Path
) -> None:
    path = tmp_path / f"{kind}.ckpt"
    torch.save(_formats(demo)[kind], path)
    model = load_checkpoint(path)
    x, expected = reference
    with torch.no_grad():
        torch.testing.assert_close(model(x), expected, rtol=0, atol=0)
    assert model.config == load_checkpoint(DEMO).config


def test_serialize_with_sample_rate_none(demo: dict[str, Any], tmp_path: Path) -> None:
    path = tmp_path / "nosr.pth"
    torch.save({**demo, "model_args": {**demo["model_args"], "sample_rate": None}}, path)
    model = load_checkpoint(path)
    assert model.config.sample_rate is None and model.config.n_filters == demo["model_args"]["n_filters"]


def _one_line(err: pytest.ExceptionInfo[CheckpointError], *fragments: str) -> None:
    text = str(err.value)
    assert "\n" not in text
    for fragment in fragments:
        assert fragment in text, text


def test_wrong_architectures_keep_one_line_errors(demo: dict[str, Any], tmp_path: Path) -> None:
    args, state = demo["model_args"], demo["state_dict"]
    other = {"masker.row_rnn.0.weight": torch.zeros(2), **{k: v for k, v in state.items() if "TCN" not in k}}
    cases = {
        "dprnn.pth": (
            {"model": {**demo, "model_name": "DPRNNTasNet"}}, ["model_name 'DPRNNTasNet'; expected 'ConvTasNet'"]
        ),
        "rnn.ckpt": (
            {"state_dict": _prefixed(other, "model."), "training_config": _training_config(args)},
            ["state_dict is missing", "masker.TCN.0."],
        ),
        "bare.ckpt": (
            {"state_dict": _prefixed(state, "model."), "epoch": 1},
            ["dict without model_name, model_args", "training_config"],
        ),
        "wide.pt": (
            {"model_state_dict": state, "model_args": {**args, "bn_chan": 2 * args["bn_chan"]}},
            ["shape mismatch(es): masker.bottleneck.1.weight"],
        ),
    }
    for name, (package, fragments) in cases.items():
        path = tmp_path / name
        torch.save(package, path)
        with pytest.raises(CheckpointError) as err:
            load_checkpoint(path)
        _one_line(err, str(path), *fragments)
