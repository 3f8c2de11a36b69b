"""The harness's exception hierarchy.

Every error a user can cause carries three parts -- the object at fault, what was seen and what was
expected -- and renders as one line: ``<object>: <seen>; expected <expected>``. The CLI prints that
line and exits 1. Anything that is *not* a :class:`HarnessError` is a bug and exits 2 with a traceback.

Hierarchy (one subclass per distinct handling):

- :class:`HarnessError` -- base; never raised directly.
  - :class:`InputError` -- bad user input found before any trial work (audio, checkpoints, folders).
    - :class:`AudioError` -- an audio file or folder is unusable.
    - :class:`CheckpointError` -- a checkpoint is missing, corrupt or of another architecture.
  - :class:`ConfigError` -- a search space or CLI setting is malformed.
  - :class:`BackendUnavailable` -- a backend's SDK is not importable here.

A stage that fails for one trial is not an error of this hierarchy: the pipeline classifies it into a
:class:`harness.failures.Failure` (a trial outcome with a signature) and the sweep goes on.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "AudioError",
    "causes",
    "describe",
    "root_cause",
    "BackendUnavailable",
    "CheckpointError",
    "ConfigError",
    "HarnessError",
    "InputError",
]


def _one_line(text: Any) -> str:
    return " ".join(str(text).split())


def causes(exc: BaseException) -> list[BaseException]:
    """``exc`` and the exceptions it was raised from or while handling (``__cause__`` / ``__context__``), outermost
    first."""
    chain = [exc]
    while (nxt := chain[-1].__cause__ or chain[-1].__context__) is not None and all(nxt is not c for c in chain):
        chain.append(nxt)
    return chain


def root_cause(exc: BaseException) -> BaseException:
    """The innermost exception of a ``__cause__`` / ``__context__`` chain (e.g. sqlite's "database is locked"
    under a library's generic wrapper)."""
    return causes(exc)[-1]


def describe(exc: BaseException, limit: int = 200) -> str:
    """``ClassName: first line of the message`` (cut at ``limit``), for the *seen* part of an error."""
    first = (str(exc).splitlines() or [""])[0][:limit]
    return f"{type(exc).__name__}: {first}" if first else type(exc).__name__


class HarnessError(Exception):
    """Base of all errors a user can cause.

    Args:
        obj: The object at fault (a path, a key, a layer name ...).
        seen: What was observed.
        expected: What was expected instead.
        hint: Optional advice appended to the message.
    """

    def __init__(self, obj: Any, seen: Any, expected: Any, hint: str | None = None) -> None:
        self.obj = _one_line(obj)
        self.seen = _one_line(seen)
        self.expected = _one_line(expected)
        self.hint = _one_line(hint) if hint else None
        super().__init__(self.message)

    @property
    def message(self) -> str:
        """The one-line message: object, seen, expected (and hint)."""
        msg = f"{self.obj}: {self.seen}; expected {self.expected}"
        if self.hint:
            msg += f" ({self.hint})"
        return msg


class InputError(HarnessError):
    """Bad user input, detected before trial work starts."""


class AudioError(InputError):
    """An audio file or audio folder cannot be used (corrupt, empty, stereo, wrong rate, NaN, silent)."""


class CheckpointError(InputError):
    """A checkpoint is missing, corrupt, or does not match the expected architecture."""


class ConfigError(HarnessError):
    """A search space file or a setting is malformed (unknown key, wrong type, impossible range)."""


class BackendUnavailable(HarnessError):
    """A backend was selected whose SDK cannot be imported on this machine."""

