"""An order for a list of configurations in which neighbours do not share their upstream stages.

Workers that share a study take its enqueued trials in order, so two workers start neighbouring trials at the same
time. Neighbours that differ only in a late stage (the override set, the calibration method ...) need the same
export, reference and translation: one worker builds them and the other waits for it (:mod:`harness.cache._inflight`)
instead of doing other work. :func:`spread` interleaves the groups of configurations that share their export, so
that neighbours need different upstream entries where the list allows it; each group's own order is kept, so a
group's later trials find its upstream entries published.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

__all__ = ["DOWNSTREAM_DIMS", "spread"]

#: Dimensions that do not change the export (the calibration set and everything after it).
DOWNSTREAM_DIMS = frozenset(
    {"override_set", "calib_method", "calib_fill", "calib_size", "calib_clip_length", "recover_steps"}
)


def spread(configs: Sequence[dict[str, Any]], downstream: Iterable[str] = DOWNSTREAM_DIMS) -> list[dict[str, Any]]:
    """``configs`` reordered round-robin over the groups that share every dimension outside ``downstream``.

    Args:
        configs: Configurations (dimension name -> value).
        downstream: Dimensions that do not change the upstream stages.

    Returns:
        The same configurations: the first of each group (in order of first appearance), then the second of each,
        and so on.
    """
    late = set(downstream)
    groups: dict[str, list[dict[str, Any]]] = {}
    for cfg in configs:
        key = repr(sorted((k, repr(v)) for k, v in cfg.items() if k not in late))
        groups.setdefault(key, []).append(cfg)
    out: list[dict[str, Any]] = []
    rounds = max((len(g) for g in groups.values()), default=0)
    for i in range(rounds):
        out += [g[i] for g in groups.values() if i < len(g)]
    return out
