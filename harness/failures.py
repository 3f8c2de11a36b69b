"""Failure signatures from one ordered classification table.

A stage failure is reduced to ``stage:ExceptionClass:detail`` -- stable across runs, so that a user (and the
sampler) can see whether a change moved a trial past a failure or just changed its wording. The first rule
whose stage, exception-class and message patterns all match wins; the rule's ``detail`` template is filled
from the message's named groups, and numeric groups are kept in :attr:`Failure.numbers`. Anything unmatched
is ``stage:ExceptionClass:unclassified`` with the full message kept.

Backends append their own rules with :func:`register_rules` (rules registered later are tried first, so a
backend can specialise a generic rule).

Some failures carry their cause only in the stage's log, not in the exception: the Hailo DFC raises a bare
``Compilation failed`` and writes ``[error] … errors: Agent infeasible`` / ``Mapping Failed (…)`` lines to its
log. Backends register an *enricher* with :func:`register_enricher`; :func:`enrich` (backend-neutral, plain
strings) lets it append the log lines that matter to such a message, so that the table then classifies it;
:func:`classify_with_log` does both.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "Enricher",
    "Failure",
    "Rule",
    "base_stage",
    "classify",
    "classify_with_log",
    "enrich",
    "register_enricher",
    "register_rules",
]


@dataclass(frozen=True)
class Rule:
    """One row of the classification table.

    Attributes:
        stage: Regex matched against the stage name (full match).
        exc_class: Regex matched against the exception class name (full match).
        message: Regex searched in the message; named groups feed ``detail`` and ``numbers``.
        detail: ``str.format`` template over the named groups (and ``stage``).
        meaning: One line for users: what the failure means.
    """

    stage: str
    exc_class: str
    message: str
    detail: str
    meaning: str = ""


@dataclass(frozen=True)
class Failure:
    """A classified failure.

    Attributes:
        stage: Stage that failed.
        exc_class: Exception class name (``Timeout`` / ``Crash`` for isolation failures).
        detail: Short detail (layer, cause) or ``unclassified``.
        message: The full original message.
        numbers: Numeric values parsed from the message (e.g. ``desired_shift``).
        groups: All named groups parsed from the message.
        known: Whether a rule matched.
        meaning: The matching rule's explanation.
    """

    stage: str
    exc_class: str
    detail: str
    message: str
    numbers: dict[str, float] = field(default_factory=dict)
    groups: dict[str, str] = field(default_factory=dict)
    known: bool = True
    meaning: str = ""

    @property
    def signature(self) -> str:
        """``stage:ExceptionClass:detail``."""
        return f"{self.stage}:{self.exc_class}:{self.detail}"

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable form (for ``failure.json``)."""
        return {
            "signature": self.signature,
            "stage": self.stage,
            "exception": self.exc_class,
            "detail": self.detail,
            "known": self.known,
            "numbers": self.numbers,
            "groups": self.groups,
            "meaning": self.meaning,
            "message": self.message,
        }


_ANY = r"[A-Za-z_]+"

#: The harness's own table (backend-neutral and ONNX Runtime failures), in priority order.
_TABLE: list[Rule] = [
    Rule(_ANY, "Timeout", r"within (?P<timeout_s>\d+(?:\.\d+)?) s", "{timeout_s}s", "the stage did not finish within its timeout; the child was killed"),
    Rule(_ANY, "Crash", r"died by (?P<signal>SIG\w+)", "{signal}", "the stage's process died by a signal (segfault, OOM kill ...)"),
    Rule(_ANY, "Crash", r"exited with code (?P<code>-?\d+)", "exit{code}", "the stage's process exited without a result"),
    Rule(
        "export",
        "FidelityGateError",
        r"SI-SNR (?P<si_snr_db>-?[\d.]+|nan|-?inf) dB",
        "si_snr_below_gate",
        "the exported ONNX model does not reproduce the PyTorch model (exporter bug or unsupported op)",
    ),
    Rule("export", _ANY, r"Unsupported|unsupported", "unsupported_op", "torch.onnx.export could not lower an op"),
    Rule(
        "calibrate",
        "FillPolicyError",
        r"for policy '(?P<policy>\w+)'",
        "{policy}",
        "the fill policy cannot map these clips onto the input width (crop cannot lengthen a clip)",
    ),
    Rule(
        "tile",
        "TilingError",
        r"leaves hop (?P<hop>-?\d+)",
        "no_hop",
        "the tile width cannot hold the context on both sides (tile_width < 2 * context + stride; harness/tiling.py)",
    ),
    Rule(
        _ANY,
        "OverrideTargetNotFound",
        r"Layer '(?P<layer>[^']+)' not found in model",
        "{layer}",
        "an override names a layer the model does not have; it was not applied",
    ),
    Rule(
        "split",
        "ConfigError",
        r"dimension segments: \d+; expected 1\.\.(?P<max_segments>\d+)",
        "too_many_segments",
        "the model has fewer module boundaries than segments - 1 (harness/segments.py): fewer segments",
    ),
    Rule(
        "emulate",
        "NonFiniteOutput",
        r"(?P<count>\d+) non-finite",
        "nan_or_inf",
        "the quantized model produced NaN or Inf",
    ),
    Rule(
        "optimize",
        "ValueError",
        r"No data is collected",
        "no_calibration_data",
        "the calibrator collected no data (ORT CalibMaxIntermediateOutputs bug, FINDINGS warning 2)",
    ),
]

_EXTRA: list[Rule] = []


def register_rules(rules: list[Rule]) -> None:
    """Add rules (e.g. a backend's) ahead of the built-in table."""
    _EXTRA[:0] = rules


#: ``enricher(stage, exc_class, message, log_text)`` -> the message with the log lines that explain it appended,
#: or None when it has nothing to add.
Enricher = Callable[[str, str, str, str], str | None]

_ENRICHERS: list[Enricher] = []


def register_enricher(enricher: Enricher) -> None:
    """Add an enricher (e.g. a backend's), tried before those registered earlier; registering twice is a no-op."""
    if enricher not in _ENRICHERS:
        _ENRICHERS.insert(0, enricher)


def enrich(stage: str, exc_class: str, message: str, log_text: str | None) -> str:
    """The message to classify: ``message`` plus the log lines that explain it, when it needs them.

    Each registered enricher decides whether the message is too bare to classify (e.g. the Hailo DFC's
    ``Compilation failed``) and which log lines matter; the first one that adds something wins. Messages
    that need nothing, an empty log, or no enricher give ``message`` unchanged; an enricher that raises is
    skipped (completing a message must never lose the failure itself).

    Args:
        stage: Stage name.
        exc_class: Exception class name.
        message: The exception message.
        log_text: The stage's log text (the worker's stdout/stderr, plus any tool logs), or None.

    Returns:
        The message to pass to :func:`classify`.
    """
    if not log_text:
        return message
    for enricher in _ENRICHERS:
        try:
            out = enricher(stage, exc_class, message, log_text)
        except Exception:  # noqa: BLE001 - a broken enricher must not hide the stage's own failure
            continue
        if out is not None and out != message:
            return out
    return message


def classify_with_log(stage: str, exc_class: str, message: str, log_text: str | None) -> Failure:
    """:func:`classify` of :func:`enrich` (the Failure's ``message`` is the enriched one)."""
    return classify(stage, exc_class, enrich(base_stage(stage), exc_class, message, log_text))


def _num(text: str) -> float | None:
    try:
        return float(text)
    except (TypeError, ValueError):
        return None


_SEGMENT = re.compile(r"^\[(?P<seg>seg \d+/\d+)\] ")


def base_stage(stage: str) -> str:
    """The stage a rule is written for: ``compile`` for a split model's ``compile[seg 2/3]``."""
    return stage.split("[", 1)[0]


def classify(stage: str, exc_class: str, message: str) -> Failure:
    """Classify one failure.

    A split model's stages carry their segment (``compile[seg 2/3]``, :mod:`harness.segments`): rules match the base
    stage, the Failure keeps the full name. A message that starts with ``[seg i/K] `` (a failure inside a chain of
    segments run as one stage, :mod:`harness._stage_calls`) moves that segment into the stage name.

    Args:
        stage: Stage name (``export``, ``calibrate``, ``translate``, ``optimize``, ``compile``, ``emulate``, or one of
            those with ``[seg i/K]``).
        exc_class: Exception class name raised (``Timeout`` / ``Crash`` for isolation failures).
        message: The exception message.

    Returns:
        The :class:`Failure`; ``known`` is False and ``detail`` is ``unclassified`` when no rule matched.
    """
    m = _SEGMENT.match(message)
    if m is not None and "[" not in stage:
        stage, message = f"{stage}[{m.group('seg')}]", message[m.end() :]
    base = base_stage(stage)
    for rule in (*_EXTRA, *_TABLE):
        if not re.fullmatch(rule.stage, base) or not re.fullmatch(rule.exc_class, exc_class):
            continue
        m = re.search(rule.message, message)
        if m is None:
            continue
        groups = {k: v for k, v in m.groupdict().items() if v is not None}
        numbers = {k: n for k, v in groups.items() if (n := _num(v)) is not None}
        detail = rule.detail.format(stage=base, **groups) if rule.detail else ""
        return Failure(stage, exc_class, detail or "-", message, numbers, groups, True, rule.meaning)
    return Failure(stage, exc_class, "unclassified", message, {}, {}, False, "")
