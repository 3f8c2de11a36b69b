"""The results of verification, promotion and pull: :class:`Check` (one verification step), :class:`Verified`
(what :func:`~harness.promote.verify_run` established), :class:`Promotion` (a promotion or rollback) and
:class:`Pulled` (an artifact written by :func:`~harness.promote.pull`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Check:
    """One verification step: ``status`` is ``ok``, ``skipped`` or ``allowed`` (a mismatch let through)."""

    name: str
    status: str
    detail: str

    def to_dict(self) -> dict[str, str]:
        """JSON form (for the ledger)."""
        return {"name": self.name, "status": self.status, "detail": self.detail}


@dataclass(frozen=True)
class Verified:
    """What :func:`verify_run` established about a run's stored artifact."""

    run_id: str
    study: str
    backend: str
    artifact: str
    sha256: str
    versions: dict[str, str]
    metrics: dict[str, float]
    checks: tuple[Check, ...]
    tiling: dict[str, str] = field(default_factory=dict)  # a tiled run's tiling.json: version tags (see _Tiling)


@dataclass(frozen=True)
class Promotion:
    """The outcome of :func:`promote` or :func:`rollback`.

    Attributes:
        action: ``promote``, ``rollback`` or ``unchanged`` (the alias already pointed at this run's version).
        entry: The ledger entry appended (``None`` when unchanged).
        ledger_size: Entries in the ledger after the append.
        reused: The run was already registered under the model; its version was reused, not duplicated.
    """

    action: str
    model: str
    alias: str
    version: str
    previous_version: str | None
    run_id: str
    study: str
    sha256: str
    checks: tuple[Check, ...] = ()
    metrics: dict[str, float] = field(default_factory=dict)
    entry: dict[str, Any] | None = None
    ledger_run_id: str | None = None
    ledger_size: int = 0
    local_ledger: Path | None = None
    reused: bool = False


@dataclass(frozen=True)
class Pulled:
    """A verified artifact written by :func:`pull`."""

    model: str
    version: str
    path: Path
    sha256: str
    run_id: str | None
    tags: dict[str, str]
    extra: tuple[Path, ...] = ()  # files pulled with the artifact (a tiled run's tiling.json)
