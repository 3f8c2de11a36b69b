"""Graded feasibility: how far a failed trial is from the feasible region.

Optuna's samplers learn nothing from FAILED trials. hefsweep therefore records a failed trial as a COMPLETE
trial with a constraint violation (``trial.set_constraint``; feasible means <= 0), graded from its failure, so
that TPE sees the boundary: "desired shift 10 vs 8 data bits" (violation 2) is closer to feasible than an
allocation failure, which is closer than an unknown failure. The objective value of an infeasible trial is
:data:`INFEASIBLE_VALUE`; constrained TPE ranks infeasible trials by violation, not by that value.

In ``mode: frontier`` ("what is the largest model this chip can take") the objective of every trial, feasible or
not, is its capacity (:data:`FRONTIER_OBJECTIVE`: ``capacity_macs``, MACs of one forward pass over the trial's
input of W samples, so both the architecture and the input width count; :func:`frontier_point`), and feasible
means every stage passed, compile included (the ``failure`` and ``compile`` constraints; the worst-clip floor does
not apply: a resized model's SI-SNR is poor until it is retrained).

The table is ordered; the first row whose signature pattern matches wins. A row's grade is either a constant or
computed from the numbers the classification parsed from the message. Later stages grade lower: a trial that
failed in ``compile`` got further than one that failed in ``optimize``.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from harness.failures import Failure

__all__ = [
    "FRONTIER_OBJECTIVE", "INFEASIBLE_VALUE", "UNKNOWN_VIOLATION", "GRADES", "FrontierPoint", "Grade", "frontier_point",
    "violation",
]  # fmt: skip

#: The objective of a ``mode: frontier`` trial (maximised): MACs per input of the trial's W samples.
FRONTIER_OBJECTIVE = "capacity_macs"

#: The objective value recorded for an infeasible (failed) trial.
INFEASIBLE_VALUE = -50.0
#: The violation of a failure no row knows.
UNKNOWN_VIOLATION = 100.0


@dataclass(frozen=True)
class Grade:
    """One row: signature regex -> violation (a constant or a function of the parsed numbers)."""

    pattern: str
    value: float | Callable[[dict[str, float]], float]
    why: str


def _shift(n: dict[str, float]) -> float:
    if "desired_shift" in n and "data_bits" in n:
        return 2.0 + max(n["desired_shift"] - n["data_bits"], 0.5)
    return 4.0


def _fidelity(n: dict[str, float]) -> float:
    db = n.get("si_snr_db", 0.0)
    if not math.isfinite(db):  # nan (garbage outputs) or -inf: as far from the gate as 0 dB, never a NaN violation
        db = 0.0 if db != math.inf else 60.0
    return 6.0 + max(60.0 - db, 0.0) / 10.0


# A failure in a later stage is closer to feasible than one in an earlier stage (the trial got further);
# within a stage, parsed numbers refine the grade (e.g. 2 missing bits < 3 missing bits).
GRADES: tuple[Grade, ...] = (
    Grade(r":Timeout:", 10.0, "a stage ran out of time"),
    Grade(r":Crash:", 15.0, "a stage crashed"),
    Grade(r"^emulate:", 0.8, "compiled, but the quantized model gives NaN/Inf"),
    # compile: resource failures (the model is too big for the chip; a smaller one fits) < other known compile
    # failures < topologies the compiler cannot map (an export rewrite away) < crashes / bare failures (nothing
    # known about the distance); all below every optimize failure.
    Grade(r"^compile:[^:]+:(agent_infeasible|memory_capacity)$", 1.0, "optimized; does not fit the device"),
    Grade(
        r"^compile:[^:]+:(no_valid_partition|mapping_failed|single_context_overflow)$",
        1.1,
        "optimized; the allocator found no mapping / context split that fits",
    ),
    Grade(r"^compile:[^:]+:mapping_timeout$", 1.2, "optimized; the allocator gave up after its own timeout"),
    Grade(
        r"^compile:[^:]+:(grouped_deconv|reshape_needed)$",
        1.7,
        "optimized; the compiler cannot map this topology (an export rewrite is needed)",
    ),
    Grade(
        r"^compile:[^:]+:(unexpected_crash|compilation_failed)$", 1.9, "optimized; the compiler crashed or said nothing"
    ),
    Grade(r"^compile:[^:]+:(?!unclassified)", 1.5, "optimized; compilation failed"),
    Grade(r"^calibrate:FillPolicyError:", 2.0, "a calibration construction choice, one parameter away"),
    Grade(r"^tile:TilingError:", 2.0, "a tile width / context choice, one parameter away (harness/tiling.py)"),
    Grade(r":NegativeSlopeExponentNonFixable:", _shift, "2 + bits missing for the shift (desired shift - data bits)"),
    Grade(r":OverrideTargetNotFound:", 3.0, "an override names an absent layer"),
    Grade(r"^optimize:[^:]+:(?!unclassified)", 5.0, "the optimizer gave up"),
    Grade(r"^translate:[^:]+:(?!unclassified)", 5.5, "the DFC could not parse the model"),
    Grade(r"^export:FidelityGateError", _fidelity, "the exported model is not the torch model"),
)


def violation(failure: Failure) -> float:
    """The constraint violation (> 0) of a failed trial."""
    if not failure.known:
        return UNKNOWN_VIOLATION
    signature = re.sub(r"^(\w+)\[seg \d+/\d+\]:", r"\1:", failure.signature)  # a segment's stage grades as its stage
    for row in GRADES:
        if re.search(row.pattern, signature):
            v = float(row.value(failure.numbers) if callable(row.value) else row.value)
            return v if math.isfinite(v) else UNKNOWN_VIOLATION / 2  # Optuna refuses a NaN constraint
    return UNKNOWN_VIOLATION / 2


@dataclass(frozen=True)
class FrontierPoint:
    """A frontier trial's capacity, known from its parameters alone (also for a trial that fails before export).

    Attributes:
        metrics: ``capacity_params``, ``capacity_macs`` (per input of W samples) and ``capacity_frames``.
        changed: The capacity values that differ from the checkpoint's.
        needs_retraining: Whether the model is not the checkpoint's (its weights are partly slices, partly fresh).
        arch: The model's effective capacity values (the checkpoint's where the trial left them null), its input
            ``width`` and ``n_layers`` (``n_blocks * n_repeats``): the frontier plot's axes.
    """

    metrics: dict[str, float]
    changed: dict[str, int]
    needs_retraining: bool
    arch: dict[str, int] = dataclasses.field(default_factory=dict)

    @property
    def value(self) -> float:
        """The objective (:data:`FRONTIER_OBJECTIVE`)."""
        return self.metrics[FRONTIER_OBJECTIVE]


def frontier_point(base: Any, params: Mapping[str, Any]) -> FrontierPoint:
    """The capacity of the model a trial with ``params`` exports from a checkpoint whose config is ``base``.

    Args:
        base: The checkpoint's :class:`~harness.model.ConvTasNetConfig`.
        params: The trial's parameters (capacity dimensions, None = the checkpoint's; ``width``, or ``tile_width``
            when set: the model's own input).
    """
    from harness.model import CAPACITY_DIMS, capacity, changed_values, resized_config

    values = {k: params.get(k) for k in CAPACITY_DIMS}
    changed = changed_values(base, values)
    width = params.get("tile_width") or params["width"]  # the width the model is built at (a tile, when tiled)
    config = resized_config(base, changed)
    cap = capacity(config, int(width))
    arch = {k: int(getattr(config, k) or 0) for k in CAPACITY_DIMS}
    arch.update(width=int(width), n_layers=config.n_layers)
    return FrontierPoint(cap.metrics(), changed, bool(changed), arch)
