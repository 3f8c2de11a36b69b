"""Automatic repair of classified optimize/compile failures inside one trial.

A table maps failure signatures to ordered candidate fixes; each fix turns the trial's current
:class:`~harness.backends.OverrideSet` into a new one (e.g. ``negative_exponent`` on the layer the failure
resolved to, then 16-bit on it, then the next rule). The module is backend-neutral: it sees signatures,
parsed groups and an already *resolved* layer name (for Hailo, from
:func:`harness.backends.hailo.explain`), never an SDK.
The fix templates (:class:`AddOverride`, :class:`DropKind`, :class:`SetGlobal`, :class:`DropLever`,
:class:`Retarget`) live in :mod:`harness.repair_fixes` and are re-exported here.

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

import json
import os
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.backends._protocol import OverrideSet
from harness.failures import Failure
from harness.repair_fixes import (
    AddOverride,
    DropKind,
    DropLever,
    Fix,
    FixTemplate,
    Retarget,
    SetGlobal,
    allocator_timeout,
    avgpool_division_factor,
    family_pattern,
)

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


#: Layers ``global_avgpool_reduction`` applies to (bare HN names; in the real HN every ``avgpool<n>`` is an avgpool).
_AVGPOOL = r"avgpool\d*"
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
