"""Two layer-noise tables joined on tensor name (``hefsweep diff``): :func:`diff_noise` -> :class:`NoiseDiff`."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from harness.layer_noise._report import NoiseReport

__all__ = ["DiffRow", "NoiseDiff", "diff_noise"]


@dataclass(frozen=True)
class DiffRow:
    """One tensor in both tables: ``delta_db = b - a`` (positive: less noise in B)."""

    tensor: str
    op_type: str
    a_db: float
    b_db: float

    @property
    def delta_db(self) -> float:
        if self.a_db == self.b_db:  # includes inf == inf
            return 0.0
        return self.b_db - self.a_db


@dataclass
class NoiseDiff:
    """Two layer-noise tables joined on tensor name."""

    rows: list[DiffRow]
    only_a: list[str]
    only_b: list[str]

    def top(self, n: int) -> list[DiffRow]:
        """The ``n`` rows whose SQNR changed most (by absolute delta; an inf delta first)."""
        def key(r: DiffRow) -> tuple[float, str]:
            d = r.delta_db
            return (-(abs(d) if not math.isnan(d) else -1.0), r.tensor)

        return sorted(self.rows, key=key)[:n]

    def summary(self) -> dict[str, Any]:
        finite = [r.delta_db for r in self.rows if math.isfinite(r.delta_db)]
        return {
            "n_common": len(self.rows),
            "only_a": len(self.only_a),
            "only_b": len(self.only_b),
            "median_delta_db": float(np.median(finite)) if finite else None,
            "n_better_in_b": sum(r.delta_db > 0 for r in self.rows),
            "n_worse_in_b": sum(r.delta_db < 0 for r in self.rows),
        }


def diff_noise(a: NoiseReport, b: NoiseReport) -> NoiseDiff:
    """Join two tables on tensor name (tensors differ when the trials' substitutions differ)."""
    ra = {r.tensor: r for r in a.rows}
    rb = {r.tensor: r for r in b.rows}
    common = [t for t in ra if t in rb]
    rows = [DiffRow(t, ra[t].op_type, ra[t].sqnr_db, rb[t].sqnr_db) for t in common]
    return NoiseDiff(rows, sorted(set(ra) - set(rb)), sorted(set(rb) - set(ra)))
