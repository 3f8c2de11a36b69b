"""Failure-driven repair trials: what to try next after a failed trial, as new points of the search space.

Inside a trial, :mod:`harness.repair` changes the override set (negative_exponent or 16-bit on the resolved
layer). Across trials, this table proposes changes of the trial's *dimensions* -- PReLU -> ReLU, gLN -> cLN, a
calibration clip length matching W, a lower W, the exact topology rewrites -- which the sweep enqueues
(``study.enqueue_trial``) tagged as repairs of their parent trial. Only proposals that are points of the space are
returned.

Topology rows (what the real DFC 3.33 said about a real Conv-TasNet, ``/work/shared/real_dfc/README.md``):
``compile:*:grouped_deconv`` ("Super deconv is not supported with groups") -> ``decoder: per_source``;
``compile:*:reshape_needed`` naming the repeated-encoding ``shortcut``/``concat`` layers -> ``mask_mul:
per_source`` (plus ``decoder: per_source`` if the decoder is still grouped). A lower W does not remove a grouped
deconv or a failed reshape, so the width and 16-bit rows skip both signatures.

Deployment-shape rows, after an allocator failure (``agent_infeasible``, ``memory_capacity``, ``no_valid_partition``,
``mapping_failed``, ``mapping_timeout``, ``single_context_overflow``, of the whole model or of one segment) that the
in-trial levers did not fix -- a trial ends with such a signature only once :mod:`harness.repair` has tried its
allocator levers (or repairs are off), and hefsweep does not count on any lever working: ``deploy:tile_width`` asks
for the next smaller ``tile_width`` the space allows (from untiled: the largest tile below the trial's width), so each
HEF holds a shorter piece of time; ``deploy:segments`` for the next larger ``segments`` (more, smaller HEFs). Both
keep the trial's width and model, so they come before the rows that lower W.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from harness.failures import Failure
from harness.space import IntRange, SearchSpace

__all__ = ["FOLLOWUPS", "Followup", "propose"]

Params = dict[str, Any]


@dataclass(frozen=True)
class Followup:
    """One row: failures matching ``pattern`` (and ``when``, if given) -> a change of the trial's parameters (None if
    not applicable)."""

    name: str
    pattern: str
    change: Callable[[Params, SearchSpace], Params | None]
    when: Callable[[Failure], bool] | None = None


def _values(space: SearchSpace, key: str) -> list[Any]:
    dim = dict(space.dimension_items())[key]
    if isinstance(dim, IntRange):
        return list(range(dim.low, dim.high + 1, dim.step))
    return list(dim) if isinstance(dim, list) else [dim]


def _set(key: str, value: Any) -> Callable[[Params, SearchSpace], Params | None]:
    def change(p: Params, space: SearchSpace) -> Params | None:
        if p.get(key) == value or value not in _values(space, key):
            return None
        return {**p, key: value}

    return change


def _lower_width(p: Params, space: SearchSpace) -> Params | None:
    lower = [w for w in _values(space, "width") if w < p["width"]]
    return {**p, "width": max(lower)} if lower else None


def _smallest_width(p: Params, space: SearchSpace) -> Params | None:
    lower = [w for w in _values(space, "width") if w < p["width"]]
    return {**p, "width": min(lower)} if len(lower) > 1 else None


def _drop_16bit(p: Params, space: SearchSpace) -> Params | None:
    """The first override set of the dimension without 16-bit overrides, if the current one has some."""

    def has16(name: str) -> bool:
        return any(o.kind == "precision16" for o in space.override_sets[name])

    if p.get("override_set") not in space.override_sets or not has16(p["override_set"]):
        return None
    plain = [n for n in _values(space, "override_set") if not has16(n)]
    return {**p, "override_set": plain[0]} if plain else None


def _per_source_head(p: Params, space: SearchSpace) -> Params | None:
    """``mask_mul: per_source`` (no ``cat([w] * n_src)``), and ``decoder: per_source`` too if still grouped and the
    space has it; None when the per-source mask is neither set nor in the space, or nothing would change."""
    new = dict(p)
    if p.get("mask_mul") != "per_source":
        if "per_source" not in _values(space, "mask_mul"):
            return None
        new["mask_mul"] = "per_source"
    if p.get("decoder", "grouped") == "grouped" and "per_source" in _values(space, "decoder"):
        new["decoder"] = "per_source"
    return new if new != p else None


def _smaller_tile(p: Params, space: SearchSpace) -> Params | None:
    """The largest ``tile_width`` of the space below the current tile (below the width when untiled)."""
    current = p.get("tile_width") or p["width"]
    smaller = [t for t in _values(space, "tile_width") if t is not None and t < current]
    return {**p, "tile_width": max(smaller)} if smaller else None


def _more_segments(p: Params, space: SearchSpace) -> Params | None:
    """The smallest ``segments`` of the space above the current count."""
    more = [k for k in _values(space, "segments") if k > p.get("segments", 1)]
    return {**p, "segments": min(more)} if more else None


def _names_repeated_concat(failure: Failure) -> bool:
    """The reshape failure names the repeated encoding's ``shortcut``/``concat`` layers."""
    layers = failure.groups.get("layers") or failure.message
    return re.search(r"shortcut|concat", layers) is not None


def _matching_clip(p: Params, space: SearchSpace) -> Params | None:
    if p.get("calib_clip_length") == p["width"] or p["width"] not in _values(space, "calib_clip_length"):
        return None
    return {**p, "calib_clip_length": p["width"]}


# A NegativeSlope failure names its layer: a norm's reduction (avgpool / reduce) points at the norm, an
# activation (prelu / activation) at the PReLU; an unnamed one at both.
_NORM_LAYER = r":NegativeSlopeExponentNonFixable:(?!.*(prelu|activation\d))"
_ACT_LAYER = r":NegativeSlopeExponentNonFixable:(?!.*(avgpool|reduce|norm))"
#: Allocator failures a shorter input or fewer 16-bit layers may fix: not the topology verdicts (a grouped deconv, a
#: reshape the allocator could not add), which no width removes.
_TOPOLOGY = r"(?!grouped_deconv$|reshape_needed$)"
_ALLOC = rf"^compile:BackendAllocatorException:{_TOPOLOGY}|^compile:.*(Unsupported|dimension)"
#: The allocator's resource verdicts (harness.backends.hailo._rules), whole model or one segment (``compile[seg 2/3]``).
_RESOURCES = (
    r"^compile(?:\[seg \d+/\d+\])?:\w+:"
    r"(agent_infeasible|memory_capacity|no_valid_partition|mapping_failed|mapping_timeout|single_context_overflow)$"
)

FOLLOWUPS: tuple[Followup, ...] = (
    Followup("decoder:per_source", r"^compile:\w+:grouped_deconv$", _set("decoder", "per_source")),
    Followup("mask_mul:per_source", r"^compile:\w+:reshape_needed$", _per_source_head, _names_repeated_concat),
    Followup("norm:cLN", _NORM_LAYER, _set("norm", "cLN")),
    Followup("prelu:relu", _ACT_LAYER, _set("prelu", "relu")),
    Followup("overrides:drop16", rf"^compile:BackendAllocatorException:{_TOPOLOGY}", _drop_16bit),
    Followup("deploy:tile_width", _RESOURCES, _smaller_tile),
    Followup("deploy:segments", _RESOURCES, _more_segments),
    Followup("width:smallest", _ALLOC, _smallest_width),
    Followup("width:lower", _ALLOC, _lower_width),
    Followup("calib:match_width", r"^calibrate:FillPolicyError:", _matching_clip),
    Followup("calib:repeat", r"^calibrate:FillPolicyError:", _set("calib_fill", "repeat")),
    Followup("prelu:keep", r"^export:FidelityGateError:", _set("prelu", "keep")),
)


def propose(failure: Failure, params: Params, space: SearchSpace) -> list[tuple[str, Params]]:
    """Follow-up parameter sets for a failed trial with ``params`` (each a full point of the space)."""
    out: list[tuple[str, Params]] = []
    for row in FOLLOWUPS:
        if re.search(row.pattern, failure.signature) and (row.when is None or row.when(failure)):
            new = row.change(params, space)
            if new is not None and new != params and all(new != p for _, p in out):
                out.append((row.name, new))
    return out
