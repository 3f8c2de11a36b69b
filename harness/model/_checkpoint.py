"""Read and write asteroid ``ConvTasNet`` checkpoints as :class:`ConvTasNet4D`.

The format is asteroid's ``torch.save(model.serialize())`` (``asteroid/models/base_models.py::serialize``): a dict
with ``model_name`` (``"ConvTasNet"``), ``model_args`` (see :class:`ConvTasNetConfig`), ``state_dict`` and an
optional ``infos``. Key mapping (asteroid -> 4-D model):

- ``encoder.filterbank._filters`` ``[N, 1, L]`` -> ``encoder.weight`` ``[N, 1, 1, L]``.
- ``decoder.filterbank._filters`` ``[N, 1, L]`` -> ``decoder.weight`` ``[n_src * N, 1, 1, L]`` (repeated once per
  source; writing back requires the copies to be identical).
- ``masker.*`` keys keep their names (``bottleneck.{0,1}``, ``TCN.{i}.shared_block.{0..5}``, ``TCN.{i}.res_conv``,
  ``TCN.{i}.skip_conv``, ``mask_net.{0,1}``); ``Conv1d`` weights ``[O, I, k]`` gain a unit height axis
  ``[O, I, 1, k]`` and norm ``gamma``/``beta`` ``[C]`` become ``[1, C, 1, 1]``; biases and PReLU weights are
  unchanged.

Checkpoints as they come are unwrapped first (:func:`_unwrap`): asteroid ``serialize()`` dicts; PyTorch Lightning /
asteroid ``System`` checkpoints (``state_dict`` keys prefixed ``model.``, the architecture from asteroid's
``training_config``: ``filterbank``, ``masknet``, ``data.sample_rate``, or a ``model_args`` in ``hyper_parameters``);
``model_state_dict`` / ``model`` / ``net`` wrappers (a state dict, or a ``serialize()`` dict, under that key, with
``model_args`` beside it); ``module.`` prefixes (``DataParallel``). A wrong architecture is still a one-line error
naming what was found (``model_name``, or the unexpected / missing keys).
"""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.torch_version import TorchVersion

import harness
from harness.errors import CheckpointError
from harness.model._config import ConvTasNetConfig
from harness.model._convtasnet import ConvTasNet4D

__all__ = ["MODEL_NAME", "load_checkpoint", "save_checkpoint"]

#: ``model_name`` of the checkpoints this module reads and writes.
MODEL_NAME = "ConvTasNet"

_REQUIRED_KEYS = ("model_name", "model_args", "state_dict")
#: Keys under which trainers store the model's state dict (or a ``serialize()`` dict), tried in this order.
_WRAPPERS = ("model_state_dict", "model", "net")
#: Prefixes trainers put before every state-dict key: a Lightning / asteroid ``System``'s attribute, ``DataParallel``.
_PREFIXES = ("model.", "module.", "net.")
_FILTERBANK_KEYS = {"encoder.weight": "encoder.filterbank._filters", "decoder.weight": "decoder.filterbank._filters"}
_SHOW = 3  # how many offending keys an error message lists


def load_checkpoint(path: str | os.PathLike[str]) -> ConvTasNet4D:
    """Load an asteroid ``ConvTasNet`` checkpoint into a 4-D model.

    Args:
        path: A file written by asteroid's ``torch.save(model.serialize())`` or by :func:`save_checkpoint`, or a
            training checkpoint of the kinds the module docstring lists.

    Returns:
        The model, in eval mode, with ``model.config`` set.

    Raises:
        CheckpointError: the file is missing or not loadable with ``torch.load(weights_only=True)``; it is not
            a dict with ``model_name``, ``model_args`` and ``state_dict`` (nor one of the wrappers of the module
            docstring); ``model_name`` is not ``ConvTasNet``;
            ``model_args`` are unknown or unsupported; or the state dict has missing keys, unexpected keys or
            shape mismatches. The message names the path.
    """
    where = str(path)
    file = Path(path)
    if not file.exists():
        raise CheckpointError(where, "no such file", "an asteroid ConvTasNet checkpoint (.pth)")
    if not file.is_file():
        raise CheckpointError(where, "not a regular file", "an asteroid ConvTasNet checkpoint (.pth)")
    try:
        # asteroid's serialize() stores torch.__version__, a TorchVersion (a str subclass), in infos.
        with torch.serialization.safe_globals([TorchVersion]):
            package = torch.load(file, map_location="cpu", weights_only=True)
    except Exception as err:  # any failure to unpickle means the file is unusable
        raise CheckpointError(
            where,
            f"not loadable by torch.load(weights_only=True) ({type(err).__name__}: {_load_error_detail(err)})",
            "a file written by torch.save(model.serialize())",
        ) from err
    if not isinstance(package, Mapping):
        raise CheckpointError(where, f"contains a {type(package).__name__}", "a dict from asteroid's serialize()")
    name, model_args, state = _unwrap(package)
    missing = [key for key, v in zip(_REQUIRED_KEYS, (name or model_args, model_args, state)) if v is None]
    if missing:
        raise CheckpointError(
            where,
            f"dict without {', '.join(missing)}",
            f"keys {', '.join(_REQUIRED_KEYS)} (asteroid serialize())",
            hint="or a Lightning/asteroid System checkpoint with its training_config, or a "
            f"{'/'.join(_WRAPPERS)} state-dict wrapper with model_args beside it",
        )
    if name is not None and name != MODEL_NAME:
        raise CheckpointError(where, f"model_name {name!r}", repr(MODEL_NAME))
    config = ConvTasNetConfig.from_model_args(model_args, source=where)  # type: ignore[arg-type]
    model = ConvTasNet4D(config)
    if not isinstance(state, Mapping) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(where, "state_dict is not a dict of tensors", "a model state_dict")
    state = _strip_prefixes(state, lightning="training_config" in package or "pytorch-lightning_version" in package)
    _check_state(where, state, _to_asteroid_state(model))
    model.load_state_dict(_from_asteroid_state(state, config), strict=True)
    return model.eval()


def save_checkpoint(model: ConvTasNet4D, path: str | os.PathLike[str], infos: Mapping[str, Any] | None = None) -> Path:
    """Write ``model`` in asteroid's checkpoint format (loadable by asteroid's ``ConvTasNet.from_pretrained``).

    The file is written to a temporary name and renamed into place.

    Args:
        model: The model; it must have the modules of ``ConvTasNet4D(model.config)`` (an unsubstituted model).
        path: Destination file.
        infos: Stored under ``infos``; defaults to the torch and hefsweep versions. Keep it to plain types so
            ``torch.load(weights_only=True)`` can read it.

    Returns:
        The path written.

    Raises:
        CheckpointError: the model has modules asteroid's ConvTasNet cannot express (e.g. after substitutions)
            or its per-source decoder filters differ.
    """
    where = str(path)
    reference = ConvTasNet4D(model.config)
    expected = {name: type(mod) for name, mod in reference.named_modules()}
    for name, mod in model.named_modules():
        if expected.get(name) is not type(mod):
            raise CheckpointError(
                where,
                f"model has {type(mod).__name__} at {name or '<root>'}",
                f"{expected[name].__name__ if name in expected else 'no module'} as in an asteroid ConvTasNet",
                hint="substituted models cannot be saved as asteroid checkpoints",
            )
    state = _to_asteroid_state(model, where=where)
    package = {
        "model_name": MODEL_NAME,
        "state_dict": state,
        "model_args": model.config.to_model_args(),
        "infos": dict(infos)
        if infos is not None
        else {"software_versions": {"torch_version": str(torch.__version__), "hefsweep_version": harness.__version__}},
    }
    dest = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".tmp", dir=dest.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            torch.save(package, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, dest)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return dest


def _unwrap(package: Mapping[str, Any]) -> tuple[Any, Any, Any]:
    """``(model_name, model_args, state_dict)`` of a checkpoint as it comes (see the module docstring); ``None`` for
    what is not there. The state dict's keys may still carry prefixes (:func:`_strip_prefixes`)."""
    name, args, state = package.get("model_name"), package.get("model_args"), package.get("state_dict")
    if state is None:
        for key in _WRAPPERS:
            inner = package.get(key)
            if isinstance(inner, Mapping) and ("state_dict" in inner or "model_args" in inner):  # serialize() inside
                inner_name, inner_args, state = _unwrap(inner)
                name, args = name or inner_name, args if args is not None else inner_args
                break
            if isinstance(inner, Mapping):
                state = inner
                break
    if args is None:
        args = _lightning_model_args(package)
    return name, args, state


def _lightning_model_args(package: Mapping[str, Any]) -> dict[str, Any] | None:
    """The model_args of a Lightning / asteroid ``System`` checkpoint: from asteroid's ``training_config`` (the
    recipe's ``filterbank`` and ``masknet`` sections, ``data.sample_rate``, ``n_src`` from ``masknet`` or ``data``),
    or a ``model_args`` saved in ``hyper_parameters``; ``None`` when neither is there."""
    hparams = package.get("hyper_parameters")
    if isinstance(hparams, Mapping) and isinstance(hparams.get("model_args"), Mapping):
        return dict(hparams["model_args"])
    conf = package.get("training_config")
    if not isinstance(conf, Mapping) or not isinstance(conf.get("filterbank"), Mapping):
        return None
    masknet = conf.get("masknet") if isinstance(conf.get("masknet"), Mapping) else {}
    data = conf.get("data") if isinstance(conf.get("data"), Mapping) else {}
    args: dict[str, Any] = {**conf["filterbank"], **masknet}
    if "n_src" not in args and "n_src" in data:
        args["n_src"] = data["n_src"]
    if "sample_rate" in data:
        args.setdefault("sample_rate", data["sample_rate"])
    return args


def _strip_prefixes(state: Mapping[str, torch.Tensor], *, lightning: bool) -> dict[str, torch.Tensor]:
    """The state dict without the prefixes trainers add (:data:`_PREFIXES`, each when every key has it, repeatedly).
    In a Lightning checkpoint only the ``model.`` entries are the model's (a ``System`` may hold other modules)."""
    out = dict(state)
    if lightning and any(k.startswith("model.") for k in out):
        out = {k: v for k, v in out.items() if k.startswith("model.")}
    while out:
        prefix = next((p for p in _PREFIXES if all(k.startswith(p) for k in out)), None)
        if prefix is None:
            break
        out = {k[len(prefix) :]: v for k, v in out.items()}
    return out


def _to_asteroid_state(model: nn.Module, where: str = "model") -> dict[str, torch.Tensor]:
    """Map a :class:`ConvTasNet4D` state dict to asteroid ``ConvTasNet`` keys and shapes.

    Args:
        model: The 4-D model.
        where: Object named in errors.

    Returns:
        asteroid's ``state_dict`` (tensors detached and cloned).

    Raises:
        CheckpointError: the decoder's per-source filter copies differ.
    """
    config: ConvTasNetConfig = model.config  # type: ignore[assignment]
    out: dict[str, torch.Tensor] = {}
    for key, value in model.state_dict().items():
        value = value.detach().clone()
        if key == "decoder.weight":
            copies = value.squeeze(2).chunk(config.n_src, dim=0)
            if any(not torch.equal(copies[0], c) for c in copies[1:]):
                raise CheckpointError(
                    where, "decoder filters differ between sources", "one filterbank shared by all sources"
                )
            out[_FILTERBANK_KEYS[key]] = copies[0].contiguous()
        elif key in _FILTERBANK_KEYS:
            out[_FILTERBANK_KEYS[key]] = value.squeeze(2)
        elif key.endswith((".gamma", ".beta")):
            out[key] = value.reshape(-1)
        elif value.ndim == 4:
            out[key] = value.squeeze(2)
        else:
            out[key] = value
    return out


def _from_asteroid_state(state: Mapping[str, torch.Tensor], config: ConvTasNetConfig) -> dict[str, torch.Tensor]:
    """Map an asteroid ``ConvTasNet`` state dict (already checked) to :class:`ConvTasNet4D` keys and shapes.

    Args:
        state: asteroid's ``state_dict``.
        config: The model config (for ``n_src``).

    Returns:
        A state dict for ``ConvTasNet4D(config)``.
    """
    inverse = {v: k for k, v in _FILTERBANK_KEYS.items()}
    out: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        value = value.detach()
        if key == "decoder.filterbank._filters":
            out[inverse[key]] = value.unsqueeze(2).repeat(config.n_src, 1, 1, 1)
        elif key in inverse:
            out[inverse[key]] = value.unsqueeze(2)
        elif key.endswith((".gamma", ".beta")):
            out[key] = value.reshape(1, -1, 1, 1)
        elif value.ndim == 3:
            out[key] = value.unsqueeze(2)
        else:
            out[key] = value
    return out


def _check_state(where: str, seen: Mapping[str, torch.Tensor], expected: Mapping[str, torch.Tensor]) -> None:
    missing = [k for k in expected if k not in seen]
    if missing:
        raise CheckpointError(
            where,
            f"state_dict is missing {len(missing)} key(s): {_listing(missing)}",
            "the keys of an asteroid ConvTasNet with these model_args",
        )
    unexpected = [k for k in seen if k not in expected]
    if unexpected:
        raise CheckpointError(
            where,
            f"state_dict has {len(unexpected)} unexpected key(s): {_listing(unexpected)}",
            "the keys of an asteroid ConvTasNet with these model_args",
        )
    bad = [
        f"{k} {tuple(seen[k].shape)} vs {tuple(expected[k].shape)}"
        for k in expected
        if tuple(seen[k].shape) != tuple(expected[k].shape)
    ]
    if bad:
        raise CheckpointError(
            where,
            f"state_dict has {len(bad)} shape mismatch(es): {_listing(bad)}",
            "the shapes implied by model_args (seen vs expected)",
        )


def _load_error_detail(err: Exception) -> str:
    """The informative line of a ``torch.load`` error (weights-only errors are a page of advice)."""
    lines = [re.sub(r"\x1b\[[0-9;]*m", "", line).strip() for line in str(err).splitlines()]
    lines = [line for line in lines if line]
    for line in lines:
        if "Unsupported global" in line:
            return line.split(" was not an allowed global")[0][:200]
    for i, line in enumerate(lines):  # "WeightsUnpickler error:" then the refused thing, e.g. "Unsupported operand 149"
        if line.startswith("Unsupported") or line.endswith("WeightsUnpickler error:"):
            rest = line if line.startswith("Unsupported") else " ".join(lines[i + 1 : i + 2])
            if rest:
                return f"refused: {rest}"[:200]
    if lines and lines[0].startswith("Weights only load failed"):  # torch's advice to load unsafely is not ours
        return "refused by the weights-only unpickler"
    return (lines[0] if lines else "no message")[:200]


def _listing(items: list[str]) -> str:
    shown = ", ".join(items[:_SHOW])
    return shown + (f", ... ({len(items) - _SHOW} more)" if len(items) > _SHOW else "")
