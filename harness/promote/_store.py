"""MLflow access shared by promotion, the ledger and pull: store errors as one-line :class:`HarnessError`,
artifact downloads, the sha256 check, and who/when for ledger entries."""

from __future__ import annotations

import getpass
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from harness.cache import file_sha256
from harness.errors import HarnessError


def _first_line(exc: BaseException, limit: int = 200) -> str:
    text = str(exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:limit]


@contextmanager
def _store(obj: str, expected: str, missing: str = "not found") -> Iterator[None]:
    """Map MLflow store errors inside the block to one-line :class:`HarnessError` about ``obj``."""
    from mlflow.exceptions import MlflowException

    try:
        yield
    except MlflowException as exc:
        if exc.error_code == "RESOURCE_DOES_NOT_EXIST" or "not found" in str(exc).lower():
            raise HarnessError(obj, missing, expected) from None
        raise HarnessError(obj, f"MLflow error ({_first_line(exc)})", expected) from None


def _download(uri: str, dst: Path, tracking_uri: str, what: str) -> Path:
    """Download one artifact URI (``file:``, ``mlflow-artifacts:`` ...) into ``dst``; returns the local path."""
    import mlflow

    try:
        local = Path(mlflow.artifacts.download_artifacts(artifact_uri=uri, dst_path=str(dst), tracking_uri=tracking_uri))
    except Exception as exc:  # noqa: BLE001 - a missing or unreadable artifact is a store problem, not a bug
        raise HarnessError(what, f"could not download {uri} ({type(exc).__name__}: {_first_line(exc)})",
                           "a readable artifact") from None  # fmt: skip
    if not local.is_file():
        raise HarnessError(what, f"{uri} is not a file", "a single artifact file")
    return local


def _check_sha256(local: Path, expected: str, obj: str, recorded: str) -> str:
    """``local``'s sha256, which must be ``expected`` (``recorded`` says where that was recorded)."""
    actual = file_sha256(local)
    if actual != expected:
        raise HarnessError(obj, f"sha256 {actual[:16]}...", f"{expected[:16]}... {recorded}")
    return actual


def _who() -> str:
    try:
        user = getpass.getuser()
    except Exception:  # noqa: BLE001 - no login name in containers without a passwd entry
        user = "unknown"
    return f"{user}@{socket.gethostname()}"


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def _quote_ok(value: str, what: str) -> str:
    if "'" in value or "\\" in value or "\n" in value:
        raise HarnessError(f"{what} {value!r}", "contains a quote, backslash or newline", "a plain name")
    return value
