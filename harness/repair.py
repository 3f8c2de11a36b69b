"""Automatic repair of classified optimize/compile failures inside one trial.

A table maps failure signatures to ordered candidate fixes; each fix turns the trial's current
:class:`~harness.backends.OverrideSet` into a new one (e.g. ``negative_exponent`` on the layer the failure
resolved to, then 16-bit on it, then the next rule). The module is backend-neutral: it sees signatures,
parsed groups and an already *resolved* layer name (for Hailo, from
:func:`harness.backends.hailo.explain`), never an SDK.

Two ways to use it:

- :func:`run_repairs` drives the whole loop over an ``attempt(overrides) -> Attempt`` callable (optimize +
  compile for one override set) and returns a :class:`RepairOutcome`;
- or write the loop yourself with :func:`next_fix` + :class:`RepairLog` (``record`` / ``finish`` / ``write``).

Stopping rules (no progress is detected from signatures):

- success (the attempt returned no failure);
- a signature seen earlier comes back after a *different* one in between (a cycle: a fix undid another);
- the same signature repeats and its rule has no untried fix left (``repeated_signature``);
- a new signature has no applicable fix (``no_fix``), at once for failures no model-script lever fixes (a
  ``final`` rule without fixes: grouped deconvs, reshapes the allocator cannot add, compiler crashes);
- ``max_repairs`` fixes were applied (``max_repairs``).

Allocator failures (``agent_infeasible``, ``memory_capacity`` "Memory units capacity exceeded", ``no_valid_partition``
"could not find a valid partition to contexts", ``mapping_failed``, ``mapping_timeout`` "Mapping Failed (Timeout,
…)", ``single_context_overflow``) get an ordered list of levers, each tried once (:data:`RULES` lists them per
signature). The order puts evidence before hope, and the cheap before the slow:

1. drop every 16-bit override: 16-bit layers double their buffers, and HD's 16-bit ``dw`` layers failed with
   "Agent infeasible" where 8-bit ones compiled [T];
2. ``compression_level=2`` (raised, never lowered): 4-bit weights take less memory [C] -- both change the quantized
   model, so a pass after them is a different model, recorded as such;
3. the compiler levers, whose effect on allocation is not public (``docs/allocator_levers.md``), which leave the
   quantized model alone: ``performance_param(compiler_optimization_level=max)`` (the allocator searches harder;
   MZ adds it for performance builds [C]), ``resources_param`` caps at 1.0 (lets each context use all of its
   compute, control and memory, as a public caller does [C]), ``context_switch_param(mode=enabled)`` (split into
   several contexts). For ``mapping_timeout`` ``allocator_param(timeout=…)`` (twice the allocation time the
   allocator gave up after, at least an hour) comes first among them -- the allocator said it ran out of time, not
   out of room; for ``single_context_overflow`` ("Context switch is disabled, but model could not fit in single
   context") enabling context switching comes first -- the message names it.

A lever the backend's script parser rejects (``…:script_syntax`` naming its command: a DFC release that spells it
otherwise) is taken back (:class:`DropLever`) and the loop goes on with the next one, so a rejected lever never
replaces the allocator's signature. ``allocator_param``'s timeout only helps when the stage timeout
(``stage_timeout``) is longer still; otherwise the harness stops the compile first (``compile:Timeout:…``).

When a compile passes after a fix, :attr:`RepairLog.compile_lever` names that fix (tag ``repair.compile_lever``).
A sweep must not count on any lever working: an allocator failure that outlasts them is handed to
:mod:`harness.followups`, which changes the deployment shape (time tiling, split HEFs) where the space allows.
"""

from __future__ import annotations

import fnmatch
import json
import math
import os
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

from harness.backends._overrides import LEVER_KINDS
from harness.backends._protocol import Override, OverrideKind, OverrideSet
from harness.failures import Failure

__all__ = [
    "RULES",
    "AddOverride",
    "Attempt",
    "DropKind",
    "DropLever",
    "Fix",
    "FixTemplate",
    "RepairLog",
    "RepairOutcome",
    "RepairRule",
    "Retarget",
    "SetGlobal",
    "allocator_timeout",
    "avgpool_division_factor",
    "family_pattern",
    "next_fix",
    "no_fix_reason",
    "run_repairs",
]


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


@dataclass(frozen=True)
class RepairRule:
    """One row of the repair table.

    Attributes:
        signature: Regex full-matched against :attr:`Failure.signature`.
        fixes: Candidate fixes, in order; the first applicable untried one is used.
        note: Why these fixes.
        message: Optional regex that must also be found in the failure message.
        final: When no fix of this rule applies, stop: later rules are not consulted (a failure no model-script
            lever fixes, e.g. a topology the compiler cannot map, must not fall through to generic fixes).
    """

    signature: str
    fixes: tuple[FixTemplate, ...]
    note: str = ""
    message: str | None = None
    final: bool = False


_STAGE_EXC = r"[A-Za-z_]+:[A-Za-z_][A-Za-z0-9_]*"


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


#: Layers ``global_avgpool_reduction`` applies to (bare HN names; in the real HN every ``avgpool<n>`` is an avgpool).
_AVGPOOL = r"avgpool\d*"
#: The compiler levers' override kinds (each is also its model-script command).
_LEVERS = frozenset(LEVER_KINDS)
#: A compile stage, of the whole model or of one segment of a split model (``compile[seg 2/3]``).
_COMPILE = r"compile(?:\[seg \d+/\d+\])?"
#: Allocator failures with model-script levers (smaller buffers / weights, then the compiler's own levers).
_ALLOCATION = r"(agent_infeasible|memory_capacity|no_valid_partition|mapping_failed)"
#: The compiler levers, in the order of the module docstring (their effect is not public: tried after the others).
_OPT_MAX = SetGlobal("performance_param", "max")
_FULL_RESOURCES = SetGlobal("resources_param", 1.0)
_CONTEXTS = SetGlobal("context_switch_param", "enabled")
_SMALLER = (DropKind("precision16"), SetGlobal("compression_level", 2, raise_only=True))
#: Compile failures no model-script lever fixes: topologies the compiler cannot map (export rewrites, tried as
#: follow-up trials by :mod:`harness.followups`) and crashes or bare failures nothing is known about.
_NO_SCRIPT_LEVER = r"(grouped_deconv|reshape_needed|unexpected_crash|compilation_failed)"

#: The repair table, in priority order. When every fix of the first matching rule was tried, the next matching
#: rule is consulted (unless the rule is ``final``).
#:
#: Order per signature:
#:
#: - ``*:NegativeSlopeExponentNonFixable:<layer>``: negative_exponent on the layer's role family at once (where the
#:   backend gives one: ``role:gln_var_pool``), else on the layer -> on its name family (once the failure moved to a
#:   sibling) -> global_avgpool_reduction on the layer -> on its family (avgpool layers only;
#:   factor from the missing bits) -> 16-bit on the layer -> on its family -> activation clipping at 99.99 on
#:   the layer;
#: - ``…not found in model``: retarget the override to the layer it stands for, or drop it;
#: - ``*:*:script_syntax`` naming a compiler lever's command: take the lever back (:class:`DropLever`);
#: - ``*:AccelerasUnsupportedError:unsupported_layers``: drop 16-bit;
#: - ``*:AccelerasResourceError:*``: optimization_level 1;
#: - ``compile:*:agent_infeasible|memory_capacity|no_valid_partition|mapping_failed``: drop every 16-bit override ->
#:   compression_level 2 -> performance_param max -> resources_param 1.0 -> context_switch_param enabled;
#: - ``compile:*:mapping_timeout``: drop 16-bit -> compression 2 -> allocator_param timeout (2x the allocation time)
#:   -> performance_param max -> resources_param 1.0 -> context_switch_param enabled;
#: - ``compile:*:single_context_overflow``: context_switch_param enabled -> drop 16-bit -> compression 2 ->
#:   performance_param max -> resources_param 1.0;
#: - ``compile:*:grouped_deconv|reshape_needed|unexpected_crash|compilation_failed``: none, stop at once
#:   (``no_fix``).
RULES: tuple[RepairRule, ...] = (
    RepairRule(
        r"[A-Za-z_]+:NegativeSlopeExponentNonFixable:.+",
        (
            AddOverride("negative_exponent", "family"),
            AddOverride("negative_exponent"),
            AddOverride("global_avgpool_reduction", "family", avgpool_division_factor, _AVGPOOL),
            AddOverride("global_avgpool_reduction", value=avgpool_division_factor, only=_AVGPOOL),
            AddOverride("precision16", "family"),
            AddOverride("precision16"),
            AddOverride("activation_clipping", value=99.99),
        ),
        "shift needs more bits than the op has: negative_exponent (Hailo's recipe), then for an avgpool a "
        "two-step pooling (global_avgpool_reduction, the model zoo's fix for large kernels), then 16 data bits, "
        "then a narrower range (dfc_api.md §6 levers 1-4)",
    ),
    RepairRule(
        _STAGE_EXC + r":.+",
        (Retarget(),),
        "an override names a layer the model does not have: use the layer it stands for, or drop it",
        message=r"not found in model",
    ),
    RepairRule(
        r"[A-Za-z_]+(?:\[seg \d+/\d+\])?:[A-Za-z_][A-Za-z0-9_]*:script_syntax",
        (DropLever(),),
        "the script parser rejected a compiler lever (a DFC release that spells it otherwise): take it back",
    ),
    RepairRule(
        r"[A-Za-z_]+:AccelerasUnsupportedError:unsupported_layers",
        (DropKind("precision16"),),
        "16-bit is not supported on some layers",
    ),
    RepairRule(
        r"[A-Za-z_]+:AccelerasResourceError:.+",
        (SetGlobal("optimization_level", 1),),
        "optimizer out of GPU memory: level 1 skips fine-tuning (QFT)",
    ),
    RepairRule(
        _COMPILE + r":[A-Za-z_][A-Za-z0-9_]*:" + _ALLOCATION,
        (*_SMALLER, _OPT_MAX, _FULL_RESOURCES, _CONTEXTS),
        "allocation failed: 16-bit layers double buffer sizes; compression moves weights to 4 bits; then the "
        "compiler's levers (effect not public): optimization level max, full resource caps, context switching",
    ),
    RepairRule(
        _COMPILE + r":[A-Za-z_][A-Za-z0-9_]*:mapping_timeout",
        (*_SMALLER, SetGlobal("allocator_param", allocator_timeout), _OPT_MAX, _FULL_RESOURCES, _CONTEXTS),
        "the allocator ran out of time: smaller buffers / weights, then a longer allocator timeout, then the other "
        "compiler levers",
    ),
    RepairRule(
        _COMPILE + r":[A-Za-z_][A-Za-z0-9_]*:single_context_overflow",
        (_CONTEXTS, *_SMALLER, _OPT_MAX, _FULL_RESOURCES),
        "context switching is disabled and the model does not fit one context: enable it, then the other levers",
    ),
    RepairRule(
        r"compile:[A-Za-z_][A-Za-z0-9_]*:" + _NO_SCRIPT_LEVER,
        (),
        "no model-script lever: the compiler cannot map this topology (grouped deconv, reshapes it cannot add) "
        "or crashed; export rewrites are tried as follow-up trials",
        final=True,
    ),
)


def no_fix_reason(
    failure: Failure,
    current: OverrideSet,
    tried: set[str] | frozenset[str],
    rules: Sequence[RepairRule] = RULES,
    resolved_layer: str | None = None,
) -> str:
    """Why :func:`next_fix` has nothing for ``failure`` (one line, for the repair log)."""
    matched = [
        r for r in rules
        if re.fullmatch(r.signature, failure.signature)
        and (r.message is None or re.search(r.message, failure.message))
    ]  # fmt: skip
    if not matched:
        return "no rule of the repair table matches this signature"
    for rule in matched:
        if not rule.fixes:
            return rule.note or "no model-script fix for this failure"
        if rule.final:
            break
    if resolved_layer is None and any(isinstance(t, AddOverride) for r in matched for t in r.fixes):
        return "every applicable fix was tried (layer fixes need a layer that resolves)"
    return "every applicable fix was tried"


def next_fix(
    failure: Failure,
    resolved_layer: str | None,
    current: OverrideSet,
    tried: set[str] | frozenset[str],
    rules: Sequence[RepairRule] = RULES,
    family: str | None = None,
) -> Fix | None:
    """The next fix to try for ``failure``.

    Args:
        failure: The classified failure.
        resolved_layer: The model layer the failure's layer name stands for (an HN layer for Hailo). Layer-level
            fixes need it; pass None when the name did not resolve (never the raw optimizer-invented name).
        current: The override set that failed.
        tried: Names of fixes already applied in this trial.
        rules: The repair table.
        family: The backend's pattern for the resolved layer's family by role (e.g. ``role:gln_var_pool``), or
            None for the name family.

    Returns:
        The first applicable fix not in ``tried``, or None.
    """
    for rule in rules:
        if not re.fullmatch(rule.signature, failure.signature):
            continue
        if rule.message is not None and not re.search(rule.message, failure.message):
            continue
        for template in rule.fixes:
            fix = template.propose(failure, resolved_layer, current, family)
            if fix is not None and fix.name not in tried:
                return fix
        if rule.final:
            return None
    return None


@dataclass
class RepairLog:
    """Per-iteration record of a repair loop, written as ``compile_failure.txt`` and ``compile_failure.json``."""

    entries: list[dict[str, Any]] = field(default_factory=list)
    stop_reason: str | None = None
    stop_note: str | None = None

    def record(
        self,
        iteration: int,
        failure: Failure | None,
        resolved_layer: str | None = None,
        fix: Fix | None = None,
        seconds: float = 0.0,
    ) -> dict[str, Any]:
        """Append one iteration (``failure`` None = the attempt succeeded) and return its entry."""
        entry: dict[str, Any] = {
            "iteration": iteration,
            "stage": failure.stage if failure else None,
            "signature": failure.signature if failure else None,
            "layer": failure.groups.get("layer") if failure else None,
            "resolved_layer": resolved_layer,
            "fix": fix.name if fix else None,
            "fix_description": fix.description if fix else None,
            "overrides_after_fix": fix.overrides.to_dict() if fix else None,
            "seconds": round(float(seconds), 3),
            "numbers": dict(failure.numbers) if failure else {},
            "result": "failed" if failure else "success",
        }
        self.entries.append(entry)
        return entry

    def finish(self, stop_reason: str, note: str | None = None) -> None:
        """Record why the loop stopped (``success``, ``repeated_signature``, ``no_fix``, ``max_repairs`` ...).

        ``note`` says it in words (e.g. why a signature has no fix: "no model-script lever: …").
        """
        self.stop_reason = stop_reason
        self.stop_note = note

    @property
    def signatures(self) -> list[str]:
        """Failure signatures in order."""
        return [e["signature"] for e in self.entries if e["signature"]]

    @property
    def succeeded(self) -> bool:
        """Whether the last attempt succeeded."""
        return bool(self.entries) and self.entries[-1]["result"] == "success"

    @property
    def first_signature(self) -> str | None:
        """The first failure's signature."""
        return self.signatures[0] if self.signatures else None

    @property
    def final_signature(self) -> str | None:
        """The last attempt's signature (None when it succeeded)."""
        return self.entries[-1]["signature"] if self.entries else None

    @property
    def compile_lever(self) -> str | None:
        """The fix after which a failed compile passed (``performance_param=max``, ``drop:precision16`` ...), or
        None (no repair, the last attempt failed, or the fix answered a failure of another stage)."""
        if not self.succeeded or len(self.entries) < 2:
            return None
        before = self.entries[-2]
        stage = str(before["stage"] or "").split("[", 1)[0]
        return before["fix"] if stage == "compile" and before["fix"] else None

    @property
    def changed(self) -> bool:
        """Whether the outcome moved away from the first failure (to another signature or to success)."""
        return self.first_signature is not None and self.final_signature != self.first_signature

    def to_dict(self) -> dict[str, Any]:
        """The ``compile_failure.json`` content."""
        return {
            "iterations": len(self.entries),
            "stop_reason": self.stop_reason,
            "stop_note": self.stop_note,
            "succeeded": self.succeeded,
            "first_signature": self.first_signature,
            "final_signature": self.final_signature,
            "signature_changed": self.changed,
            "compile_lever": self.compile_lever,
            "entries": self.entries,
        }

    def to_text(self) -> str:
        """The ``compile_failure.txt`` content: a header, then one line per iteration."""
        lines = [
            f"# repair log: {len(self.entries)} iterations, stop: {self.stop_reason or '-'}"
            + (f" ({self.stop_note})" if self.stop_note else ""),
            f"# first signature: {self.first_signature or '-'}",
            f"# final signature: {self.final_signature or '(success)'}; changed: {'yes' if self.changed else 'no'}"
            + (f"; compile passed after {self.compile_lever}" if self.compile_lever else ""),
        ]
        for e in self.entries:
            if e["result"] == "success":
                lines.append(f"{e['iteration']} success {e['seconds']:.1f}s")
                continue
            lines.append(
                f"{e['iteration']} {e['stage']} {e['seconds']:.1f}s {e['signature']} layer={e['layer'] or '-'} "
                f"resolved={e['resolved_layer'] or '-'} fix={e['fix'] or '-'}"
            )
        return "\n".join(lines) + "\n"

    def write(self, directory: Path) -> tuple[Path, Path]:
        """Write ``compile_failure.txt`` and ``compile_failure.json`` into ``directory`` (atomically each)."""
        directory.mkdir(parents=True, exist_ok=True)
        paths = (directory / "compile_failure.txt", directory / "compile_failure.json")
        for path, text in zip(paths, (self.to_text(), json.dumps(self.to_dict(), indent=2)), strict=True):
            tmp = path.with_name(f".{path.name}.{os.getpid()}")
            tmp.write_text(text)
            os.replace(tmp, path)
        return paths

    def tags(self) -> dict[str, str]:
        """MLflow tags: first/final signature, whether it changed, iterations, stop reason (and note, if any), and
        ``repair.compile_lever`` when a compile passed after a fix (:attr:`compile_lever`)."""
        tags = {
            "repair.first_signature": self.first_signature or "",
            "repair.final_signature": self.final_signature or "success",
            "repair.signature_changed": str(self.changed).lower(),
            "repair.iterations": str(len(self.entries)),
            "repair.stop_reason": self.stop_reason or "",
        }
        if self.stop_note:
            tags["repair.stop_note"] = self.stop_note[:250]
        if self.compile_lever:
            tags["repair.compile_lever"] = self.compile_lever
        return tags


@dataclass(frozen=True)
class Attempt:
    """What one attempt (optimize + compile with one override set) returned.

    Attributes:
        failure: The classified failure, or None on success.
        resolved_layer: The model layer the failure's layer resolves to (see :func:`next_fix`).
        seconds: Wall time of the attempt.
        value: Anything the caller wants back from the successful attempt (e.g. the compiled artifact).
        family: The backend's pattern for the resolved layer's role family (see :func:`next_fix`), if any.
    """

    failure: Failure | None = None
    resolved_layer: str | None = None
    seconds: float = 0.0
    value: Any = None
    family: str | None = None


@dataclass(frozen=True)
class RepairOutcome:
    """How a repair loop ended.

    Attributes:
        succeeded: The last attempt succeeded.
        overrides: The override set of the last attempt.
        stop_reason: ``success``, ``repeated_signature``, ``no_fix`` or ``max_repairs``.
        log: The per-iteration log.
        value: The successful attempt's ``value``.
    """

    succeeded: bool
    overrides: OverrideSet
    stop_reason: str
    log: RepairLog
    value: Any = None


def run_repairs(
    attempt: Callable[[OverrideSet], Attempt],
    initial: OverrideSet,
    *,
    max_repairs: int = 6,
    log: RepairLog | None = None,
    rules: Sequence[RepairRule] = RULES,
) -> RepairOutcome:
    """Attempt, classify, fix and retry until success or no progress (see the module docstring).

    Args:
        attempt: Runs the failing stages with an override set; returns an :class:`Attempt`. Only *classified*
            failures should come back as ``Attempt.failure``; programming errors should propagate.
        initial: The trial's own override set.
        max_repairs: Maximum number of fixes applied (attempts = fixes + 1).
        log: A log to append to (a new one by default).
        rules: The repair table.

    Returns:
        The :class:`RepairOutcome`; ``outcome.log`` can be written with :meth:`RepairLog.write`.
    """
    log = log if log is not None else RepairLog()
    current, tried, seen = initial, set(), []
    iteration = 0
    while True:
        iteration += 1
        start = time.monotonic()
        result = attempt(current)
        seconds = result.seconds or (time.monotonic() - start)
        if result.failure is None:
            log.record(iteration, None, seconds=seconds)
            log.finish("success")
            return RepairOutcome(True, current, "success", log, result.value)
        sig = result.failure.signature
        cycle = sig in seen and seen[-1] != sig
        fix = None
        if not cycle and iteration - 1 < max_repairs:
            fix = next_fix(result.failure, result.resolved_layer, current, tried, rules, result.family)
        log.record(iteration, result.failure, result.resolved_layer, fix, seconds)
        if fix is None:
            reason = (
                "max_repairs" if iteration - 1 >= max_repairs and not cycle
                else "repeated_signature" if cycle or sig in seen
                else "no_fix"
            )
            if reason == "max_repairs":
                note = f"{max_repairs} fixes applied, the limit"
            elif cycle:
                note = f"{sig} came back after another signature (a fix undid another)"
            else:
                note = no_fix_reason(result.failure, current, tried, rules, result.resolved_layer)
            log.finish(reason, note)
            return RepairOutcome(False, current, reason, log)
        if not fix.revert:  # a rejected lever's failure is not the loop's progress: the next lever follows
            seen.append(sig)
        tried.add(fix.name)
        current = fix.overrides
