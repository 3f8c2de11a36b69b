"""harness/errors.py holds no dead code: every exported name is used somewhere else in the harness."""

from __future__ import annotations

import re
from pathlib import Path

import harness.errors

HARNESS = Path(harness.errors.__file__).parent


def test_every_exported_error_name_is_used_outside_errors_py() -> None:
    sources = "\n".join(p.read_text() for p in HARNESS.rglob("*.py") if p.name != "errors.py")
    unused = [name for name in harness.errors.__all__ if not re.search(rf"\b{name}\b", sources)]
    assert unused == []
