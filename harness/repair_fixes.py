"""The fix templates of the repair table (:mod:`harness.repair`): each proposes a :class:`Fix` -- a new override set --
for a classified failure, or None when it does not apply.

``AddOverride`` (an override on the failure's layer or its family), ``DropKind`` (remove every override of a kind),
``SetGlobal`` (a global level or compiler lever), ``DropLever`` (take back a lever the script parser rejected) and
``Retarget`` (an override target the model does not have). Backend-neutral: they see signatures, parsed groups and an
already resolved layer name, never an SDK.
"""

from __future__ import annotations

import fnmatch
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, Protocol

from harness.backends._overrides import LEVER_KINDS
from harness.backends._protocol import Override, OverrideKind, OverrideSet
from harness.failures import Failure

__all__ = [
    "AddOverride",
    "DropKind",
    "DropLever",
    "Fix",
    "FixTemplate",
    "Retarget",
    "SetGlobal",
    "allocator_timeout",
    "avgpool_division_factor",
    "family_pattern",
]

#: The compiler levers' override kinds (each is also its model-script command).
_LEVERS = frozenset(LEVER_KINDS)


@dataclass(frozen=True)
class Fix:
    """One candidate repair.

    Attributes:
        name: Unique key (``negative_exponent:convtas/avgpool6``); a fix is tried at most once per trial.
        overrides: The complete override set to retry with.
        description: One line for logs.
        revert: The fix takes back a lever the backend rejected (:class:`DropLever`): the failure it answers does not
            count for the loop's cycle detection, so the loop goes on with the next lever.
    """

    name: str
    overrides: OverrideSet
    description: str
    revert: bool = False


class FixTemplate(Protocol):
    """Proposes a :class:`Fix` for a failure, or None when it does not apply (or would change nothing)."""

    def propose(
        self, failure: Failure, layer: str | None, current: OverrideSet, family: str | None = None
    ) -> Fix | None:
        """``layer`` is the resolved layer (None when the failure names none or it did not resolve); ``family`` the
        backend's pattern for the layers that play the same part (``role:gln_var_pool`` for a GlobLN variance pool),
        None to use the layer's name family (``convtas/avgpool*``)."""
        ...


def _bare(name: str) -> str:
    return name.rsplit("/", 1)[-1]


def family_pattern(layer: str) -> str | None:
    """``convtas/avgpool6`` -> ``convtas/avgpool*`` (layers named ``<type><index>``); None without an index."""
    m = re.fullmatch(r"(.*?[A-Za-z_])\d+", layer)
    return f"{m.group(1)}*" if m else None


def _is_glob(pattern: str) -> bool:
    return any(c in pattern for c in "*?[")


def _covers(pattern: str, layer: str) -> bool:
    return pattern == layer or fnmatch.fnmatchcase(layer, pattern) or fnmatch.fnmatchcase(_bare(layer), pattern)


def _renamed(current: OverrideSet) -> str:
    m = re.fullmatch(r"(.*)\+r(\d+)", current.name)
    return f"{m.group(1)}+r{int(m.group(2)) + 1}" if m else f"{current.name}+r1"


@dataclass(frozen=True)
class AddOverride:
    """Add ``kind`` on the resolved layer (``scope="layer"``) or on its whole family (``scope="family"``).

    ``value`` is the override's value, or a function of the failure giving it; ``only`` (a regex full-matched
    against the layer's bare name, e.g. ``avgpool\\d+``) limits the fix to layers of one kind.

    The family form applies at once when the backend gives the layer's role family (``role:gln_var_pool``, read
    from the graph): its members play the same part, so they share the cause (the seed's GlobLN variance pools
    all pool the same kernel) and fixing one layer at a time would take as many optimize passes as the role has
    members. The name family (``convtas/avgpool*``, which mixes roles) applies only when the current set already
    gives ``kind`` to another member: the failure moved along the family after a per-layer fix.
    """

    kind: OverrideKind
    scope: Literal["layer", "family"] = "layer"
    value: float | int | str | None | Callable[[Failure], float | int | str | None] = None
    only: str | None = None

    def propose(
        self, failure: Failure, layer: str | None, current: OverrideSet, family: str | None = None
    ) -> Fix | None:
        if layer is None:
            return None
        if self.only is not None and not re.fullmatch(self.only, _bare(layer)):
            return None
        value = self.value(failure) if callable(self.value) else self.value
        existing = [p for ov in current.overrides if ov.kind == self.kind for p in ov.layers]
        if self.scope == "family":
            names = family_pattern(layer)
            target = family or names
            if target is None or target in existing:
                return None
            if family is not None:
                what = f"{self.kind} on every {_bare(target)} layer (the role of {_bare(layer)}: fixed all at once)"
            elif not any(not _is_glob(p) and p != layer and family_pattern(p) == names for p in existing):
                return None
            else:
                what = f"{self.kind} on every {_bare(target)} layer (a sibling fix moved the failure along the family)"
        else:
            target = layer
            if any(_covers(p, layer) for p in existing) or (family is not None and family in existing):
                return None
            what = f"{self.kind} on {layer}"
        if callable(self.value) and value is not None:
            what += f" (value {value})"
        overrides = OverrideSet(_renamed(current), (*current.overrides, Override(self.kind, (target,), value)))
        return Fix(f"{self.kind}:{target}", overrides, what)


@dataclass(frozen=True)
class DropKind:
    """Remove every override of ``kind`` (e.g. 16-bit layers when the allocator runs out of resources)."""

    kind: OverrideKind

    def propose(
        self, failure: Failure, layer: str | None, current: OverrideSet, family: str | None = None
    ) -> Fix | None:
        kept = tuple(ov for ov in current.overrides if ov.kind != self.kind)
        if len(kept) == len(current.overrides):
            return None
        return Fix(f"drop:{self.kind}", OverrideSet(_renamed(current), kept), f"remove all {self.kind} overrides")


@dataclass(frozen=True)
class SetGlobal:
    """Set a global override (``optimization_level``, ``compression_level``, a compiler lever) to ``value``.

    ``value`` may be a function of the failure (e.g. :func:`allocator_timeout`); ``raise_only`` skips the fix when
    the current set already has a numeric value at least as high (a compression level is raised, never lowered).
    """

    kind: OverrideKind
    value: int | float | str | Callable[[Failure], int | float | str]
    raise_only: bool = False

    def propose(
        self, failure: Failure, layer: str | None, current: OverrideSet, family: str | None = None
    ) -> Fix | None:
        value = self.value(failure) if callable(self.value) else self.value
        for ov in current.overrides:
            if ov.kind != self.kind:
                continue
            if ov.value == value:
                return None
            numbers = isinstance(ov.value, int | float) and isinstance(value, int | float)
            if self.raise_only and numbers and ov.value >= value:  # type: ignore[operator]
                return None
        kept = tuple(ov for ov in current.overrides if ov.kind != self.kind)
        overrides = OverrideSet(_renamed(current), (*kept, Override(self.kind, (), value)))
        return Fix(f"{self.kind}={value}", overrides, f"set {self.kind} to {value}")


@dataclass(frozen=True)
class DropLever:
    """Take back a compiler lever the backend's script parser rejected (its command is in the failure's message, e.g.
    ``Parsing failed at: >!<performance_param(…)``): the spelling is MZ's, but a DFC release may differ, and a
    rejected lever must not end the repairs of the failure it was meant for."""

    def propose(
        self, failure: Failure, layer: str | None, current: OverrideSet, family: str | None = None
    ) -> Fix | None:
        named = {m for m in re.findall(r"([a-z_]+)\(", failure.message) if m in _LEVERS}
        kept = tuple(ov for ov in current.overrides if ov.kind not in named)
        if len(kept) == len(current.overrides):
            return None
        gone = ", ".join(sorted({ov.kind for ov in current.overrides} & named))
        return Fix(f"revert:{gone}", OverrideSet(_renamed(current), kept), f"remove the rejected {gone}", True)


@dataclass(frozen=True)
class Retarget:
    """Replace an override target the model does not have by the layer it resolves to, or drop it."""

    def propose(
        self, failure: Failure, layer: str | None, current: OverrideSet, family: str | None = None
    ) -> Fix | None:
        named = failure.groups.get("layer")
        if not named:
            return None
        out: list[Override] = []
        hit = False
        for ov in current.overrides:
            if not any(p == named or _bare(p) == _bare(named) for p in ov.layers):
                out.append(ov)
                continue
            hit = True
            kept = [layer if (p == named or _bare(p) == _bare(named)) else p for p in ov.layers]
            kept = list(dict.fromkeys(p for p in kept if p))
            if kept:  # an override left with no layers would mean "every layer": drop it instead
                out.append(Override(ov.kind, tuple(kept), ov.value))
        if not hit:
            return None
        verb = f"retarget {named} -> {layer}" if layer else f"drop target {named} (no such layer)"
        return Fix(f"retarget:{named}->{layer or '-'}", OverrideSet(_renamed(current), tuple(out)), verb)


def allocator_timeout(failure: Failure) -> int:
    """``allocator_param(timeout=…)`` in seconds for a ``mapping_timeout``: twice the allocation time the allocator
    gave up after ("31m 42s" -> 3804), at least 3600 (MZ's most common explicit value [C]), at most a week."""
    n = failure.numbers
    seen = n.get("alloc_h", 0.0) * 3600 + n.get("alloc_m", 0.0) * 60 + n.get("alloc_s", 0.0)
    return int(min(max(math.ceil(2 * seen), 3600), 7 * 24 * 3600))


def avgpool_division_factor(failure: Failure) -> int:
    """The ``global_avgpool_reduction`` factor for a shift failure: ``2 ** ceil(desired_shift - data_bits)``.

    Pooling over ``k`` times fewer elements per step needs ``log2(k)`` fewer shift bits, so 10 vs 8 data bits
    gives 4 and 11 vs 8 gives 8; clamped to [2, 16], and 4 when the message gave no numbers. The value is the
    time-axis factor: ``division_factors=[1, k]`` (H is 1 in the H=1 layout).
    """
    shift, bits = failure.numbers.get("desired_shift"), failure.numbers.get("data_bits")
    if shift is None or bits is None:
        return 4
    return int(min(max(2 ** math.ceil(shift - bits), 2), 16))
