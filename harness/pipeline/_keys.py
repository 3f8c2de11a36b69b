"""Cache-key helpers: the key parameters of the optimize and compile stages, a trial's substitution spec, the
values a dimension can take, and the (de)serialization of the backend's result dataclasses into a stage entry's
``meta`` (paths stored relative to the entry's folder)."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from harness.backends import OverrideSet, QuantSettings
    from harness.pipeline._trial import TrialConfig


def _to_meta(obj: Any, base: Path) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for f in dataclasses.fields(obj):
        v = getattr(obj, f.name)
        if isinstance(v, Path):
            v = {"__path__": str(v.relative_to(base))}
        elif isinstance(v, tuple):
            v = list(v)
        out[f.name] = v
    return out


def _from_meta(cls: Any, meta: dict[str, Any], base: Path) -> Any:
    kwargs: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        v = meta[f.name]
        if isinstance(v, dict) and "__path__" in v:
            v = base / v["__path__"]
        elif isinstance(v, list):
            v = tuple(v)
        kwargs[f.name] = v
    return cls(**kwargs)


def optimize_params(quant: OverrideSet, settings: QuantSettings) -> dict[str, Any]:
    """The optimize stage's key parameters: the overrides' content, not the set's name -- "none" and a repair's
    "none+r1" that only added a compiler lever (kept out of optimize) quantize the same model (version 2; version 1
    keyed the name too)."""
    return {"overrides": [o.to_dict() for o in quant.overrides], "settings": settings.to_dict()}


def compile_params(levers: OverrideSet) -> dict[str, Any]:
    """The compile stage's key parameters: the compiler levers when there are any (none: the key of before levers)."""
    return {"levers": levers.to_dict()} if levers.overrides else {}


def _spec(cfg: TrialConfig) -> Any:
    """The trial's substitution spec."""
    from harness.substitutions import SubstitutionSpec

    return SubstitutionSpec(
        prelu=cfg.prelu,  # type: ignore[arg-type]
        norm=cfg.norm,  # type: ignore[arg-type]
        clamp=cfg.clamp,
        gln_stats=cfg.gln_stats,  # type: ignore[arg-type]
        decoder=cfg.decoder,  # type: ignore[arg-type]
        mask_mul=cfg.mask_mul,  # type: ignore[arg-type]
    )


def _candidates(dim: Any) -> list[Any]:
    """The distinct values a dimension can take at its extremes (list values, range ends or the fixed value)."""
    if isinstance(dim, list):
        return list(dict.fromkeys(dim))
    if hasattr(dim, "low"):
        return [dim.low, dim.high]
    return [dim]
