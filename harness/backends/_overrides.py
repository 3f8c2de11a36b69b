"""Resolving override targets (glob patterns) against the layer names a backend really has."""

from __future__ import annotations

import difflib
import fnmatch
from collections.abc import Iterable, Sequence

__all__ = ["OverrideTargetNotFound", "resolve_targets"]


class OverrideTargetNotFound(LookupError):
    """An override names a layer the model does not have.

    The message names the pattern, what the model has nearby and how many layers exist, on one line.
    """

    def __init__(self, pattern: str, candidates: Sequence[str], n_layers: int) -> None:
        self.pattern = pattern
        self.candidates = tuple(candidates)
        near = ", ".join(self.candidates) if self.candidates else "none close"
        super().__init__(
            f"Layer {pattern!r} not found in model: no layer matches; expected one of the model's "
            f"{n_layers} layers (nearest: {near})"
        )


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
