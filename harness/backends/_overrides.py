"""Resolving override targets (glob patterns) against the layer names a backend really has."""

from __future__ import annotations

import difflib
import fnmatch
from collections.abc import Iterable, Mapping, Sequence

__all__ = ["OverrideTargetNotFound", "resolve_targets"]


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
