"""harness/errors.py holds no dead code: every exported name is used somewhere else in the harness (or is the base
class of one that is)."""

from __future__ import annotations

import re
from pathlib import Path

import harness.errors

HARNESS = Path(harness.errors.__file__).parent


def test_every_exported_error_name_is_used_outside_errors_py() -> None:
    sources = "\n".join(p.read_text() for p in HARNESS.rglob("*.py") if p.name != "errors.py")
    used = {name for name in harness.errors.__all__ if re.search(rf"\b{name}\b", sources)}
    bases = {b.__name__ for name in used if isinstance(c := getattr(harness.errors, name), type) for b in c.__mro__}
    assert sorted(set(harness.errors.__all__) - used - bases) == []
