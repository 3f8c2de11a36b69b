"""Resolving override targets (glob patterns) against the layer names a backend really has, and checking the
values of the compiler (allocator) levers.

The levers are global override kinds whose values the Hailo model-script writer formats as model-zoo scripts write
them (``docs/allocator_levers.md``); :func:`lever_args` is the one place that checks a lever's value and turns it
into the command's arguments, used by the search space's validation and by the script writer alike.
"""

from __future__ import annotations

import difflib
import fnmatch
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

__all__ = ["LEVER_KINDS", "LeverValueError", "OverrideTargetNotFound", "lever_args", "resolve_targets", "split_levers"]

#: Compiler levers: override kind -> (model-script command, what its value must be).
LEVER_KINDS: dict[str, tuple[str, str]] = {
    "performance_param": ("performance_param", "a compiler_optimization_level: 0, 1, 2 or 'max'"),
    "resources_param": (
        "resources_param",
        "a utilization cap in (0, 1] for compute, control and memory, or 'compute=0.8,control=0.85,memory=0.8' "
        "(any of compute, control, memory, each in (0, 1])",
    ),
    "context_switch_param": ("context_switch_param", "a mode: enabled, disabled or allowed"),
    "allocator_param": ("allocator_param", "a timeout: whole seconds in [60, 604800] or '<n>m' / '<n>h' (e.g. '25m')"),
}
_CAPS = ("compute", "control", "memory")
_TIMEOUT = re.compile(r"([1-9]\d{0,5})([mh])")
_MAX_TIMEOUT_S = 7 * 24 * 3600


def split_levers(overrides: Any) -> tuple[Any, Any]:
    """``(quantization part, compiler levers)`` of an override set, both named like it: the levers act at compile
    only, so the pipeline keys and runs optimize without them and hands them to compile -- a lever repair step then
    reuses the quantized model instead of re-running optimize (a real DFC optimize takes 30+ minutes)."""
    from harness.backends._protocol import OverrideSet

    quant = tuple(o for o in overrides.overrides if o.kind not in LEVER_KINDS)
    levers = tuple(o for o in overrides.overrides if o.kind in LEVER_KINDS)
    return OverrideSet(overrides.name, quant), OverrideSet(overrides.name, levers)


class LeverValueError(ValueError):
    """A compiler lever's value is not one the model script can carry (message: kind, value, what is expected)."""

    def __init__(self, kind: str, value: Any) -> None:
        self.kind, self.value = kind, value
        super().__init__(f"override {kind}: value {value!r}; expected {LEVER_KINDS[kind][1]}")


def _cap(v: Any) -> str | None:
    if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v) or not 0 < v <= 1:
        return None
    text = f"{float(v):.4f}".rstrip("0")
    return text + "0" if text.endswith(".") else text  # 1 -> 1.0, 0.85 -> 0.85 (MZ's forms)


def lever_args(kind: str, value: Any) -> str:
    """The argument text of lever ``kind`` with ``value``, e.g. ``compiler_optimization_level=max``.

    Raises:
        LeverValueError: the value is out of range or of the wrong form (one line naming kind, value, expectation).
        KeyError: ``kind`` is not a lever.
    """
    if kind == "performance_param":
        if value == "max" or (not isinstance(value, bool) and isinstance(value, int) and value in (0, 1, 2)):
            return f"compiler_optimization_level={value}"
    elif kind == "resources_param":
        if isinstance(value, str):
            caps: dict[str, str] = {}
            for part in value.split(","):
                key, _, raw = part.partition("=")
                key = key.strip()
                try:
                    text = _cap(float(raw))
                except ValueError:
                    text = None
                if key not in _CAPS or key in caps or text is None:
                    raise LeverValueError(kind, value)
                caps[key] = text
            return ", ".join(f"max_{k}_utilization={v}" for k, v in caps.items())
        if (text := _cap(value)) is not None:
            return ", ".join(f"max_{k}_utilization={text}" for k in _CAPS)
    elif kind == "context_switch_param":
        if value in ("enabled", "disabled", "allowed"):
            return f"mode={value}"
    elif kind == "allocator_param":
        if isinstance(value, str) and (m := _TIMEOUT.fullmatch(value.strip())):
            seconds = int(m.group(1)) * (60 if m.group(2) == "m" else 3600)
            if 60 <= seconds <= _MAX_TIMEOUT_S:
                return f"timeout={m.group(1)}{m.group(2)}"
        elif not isinstance(value, bool) and isinstance(value, int | float) and float(value).is_integer():
            if 60 <= value <= _MAX_TIMEOUT_S:
                return f"timeout={int(value)}"
    else:
        raise KeyError(kind)
    raise LeverValueError(kind, value)


class OverrideTargetNotFound(LookupError):
    """An override names a layer the model does not have.

    The message names the pattern, what the model has nearby and how many layers exist, on one line; when the
    backend knows them (Hailo's HN), also the roles and layer types the model *does* have, so that an override set
    written for another export variant (``role:gln_var_pool`` on a cLN model) says what it could target instead.
    The leading ``Layer '<pattern>' not found in model`` is what the failure signature is read from
    (:mod:`harness.failures`).

    Attributes:
        pattern: The pattern (or selector) that matched nothing.
        candidates: The nearest names (or selectors) the model has.
        roles: Role -> number of layers, for the roles present (None: not known for this backend).
        types: Layer type -> number of layers (None: not known).
    """

    def __init__(
        self,
        pattern: str,
        candidates: Sequence[str],
        n_layers: int,
        *,
        roles: Mapping[str, int] | None = None,
        types: Mapping[str, int] | None = None,
    ) -> None:
        self.pattern = pattern
        self.candidates = tuple(candidates)
        self.roles = dict(roles) if roles is not None else None
        self.types = dict(types) if types is not None else None
        near = ", ".join(self.candidates) if self.candidates else "none close"
        extra = ""
        if self.roles is not None:
            extra += "; roles here: " + (_counts(self.roles) or "none")
        if self.types is not None:
            extra += "; types here: " + (_counts(self.types) or "none")
        super().__init__(
            f"Layer {pattern!r} not found in model: no layer matches; expected one of the model's "
            f"{n_layers} layers (nearest: {near}){extra}"
        )


def _counts(counts: Mapping[str, int]) -> str:
    return ", ".join(f"{k} ({v})" for k, v in counts.items())


def resolve_targets(patterns: Iterable[str], names: Sequence[str]) -> dict[str, list[str]]:
    """Match each glob pattern against ``names``.

    Args:
        patterns: Glob patterns (``fnmatch`` syntax, case-sensitive) or exact names.
        names: The layer names that exist.

    Returns:
        Pattern -> matched names, in the order of ``names``.

    Raises:
        OverrideTargetNotFound: A pattern matches nothing; the error lists the nearest existing names.
    """
    out: dict[str, list[str]] = {}
    for pattern in patterns:
        hits = [n for n in names if fnmatch.fnmatchcase(n, pattern)]
        if not hits:
            near = difflib.get_close_matches(pattern, list(names), n=3, cutoff=0.3)
            raise OverrideTargetNotFound(pattern, near, len(names))
        out[pattern] = hits
    return out
