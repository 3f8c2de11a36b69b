"""Failure classification for the Hailo DFC, and diagnoses (violation, resolved layer) of classified failures.

The rules cover every failure listed in dfc_api.md §6, §8 and §11 and every text the real DFC 3.33 raised on a real
Conv-TasNet (real_dfc/README.md); message patterns follow the texts quoted there (evidence per row in
:data:`RULES`). Importing this module registers them with :func:`harness.failures.register_rules` (ahead of the
harness's own table), and registers :func:`enrich_from_log` with :func:`harness.failures.register_enricher`: the
DFC often raises a bare ``Compilation failed`` (or ``… with unexpected crash``) and writes the cause only to its
log (``[error] dw66 errors: Agent infeasible``, ``[error] Mapping Failed (allocation time: 10m 11s)``), so
``harness.failures.enrich(stage, exc_class, message, log_text)`` appends those lines and the table classifies the
whole text. Classification uses only the exception *class name*, message and log text, so it works on failures
reported from a child process.

Signatures are ``stage:ExceptionClass:detail``; ``detail`` is the layer *as the DFC named it* for layer-level
failures (``optimize:NegativeSlopeExponentNonFixable:convtas/ne_activation_avgpool6``) and a short cause for
the others (``compile:BackendAllocatorException:agent_infeasible``). :func:`explain` adds what the signature
leaves out: the HN layer that name stands for and the size of the violation.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from harness.backends.hailo._layers import LayerRef, LayerTable, resolve_layer
from harness.failures import Failure, Rule, classify, register_enricher, register_rules

__all__ = ["LOG_CAP", "RULES", "Diagnosis", "enrich_from_log", "explain"]

_ANY = r"[A-Za-z_][A-Za-z0-9_]*"
#: Backend stages only: the harness's own export/calibrate rules must keep their signatures.
_STAGE = r"(?!export$|calibrate$|reference$|original$|recover$)[A-Za-z_]+"
_LAYER = r"(?P<layer>[A-Za-z0-9_./\-]+?)"
#: "31m 42s", "10m 11s", "2s", "1h 3m 5s": the whole text, and hours/minutes/seconds as numbers.
_ALLOC_TIME = (
    r"(?P<allocation_time>(?:(?P<alloc_h>\d+)h\s*)?(?:(?P<alloc_m>\d+)m\s*)?(?:(?P<alloc_s>\d+(?:\.\d+)?)s)?[^)]*)"
)

#: The Hailo rows of the classification table, in priority order (first match wins).
RULES: list[Rule] = [
    # §6 NegativeSlopeExponentNonFixable [T] (IDX-59685997022, IDX-4173774960, HD issues.md). Keeps the numbers.
    Rule(
        _STAGE,
        "NegativeSlopeExponentNonFixable",
        r"(?is)layer\s+" + _LAYER + r"\s+due to unsupported required slope.*?desired shift is\s+"
        r"(?P<desired_shift>-?\d+(?:\.\d+)?).*?only\s+(?P<data_bits>\d+)\s+data bits",
        "{layer}",
        "a layer needs a larger shift than its data bits allow (range imbalance); try negative_exponent or "
        "16-bit on the HN layer the name stands for",
    ),
    Rule(
        _STAGE,
        "NegativeSlopeExponentNonFixable",
        r"(?is)layer\s+" + _LAYER + r"\s+due to unsupported required slope",
        "{layer}",
        "a layer needs a larger shift than its data bits allow (range imbalance)",
    ),
    # §6 matmul shift delta [T] (IDX-4173774960); class not shown publicly.
    Rule(
        _STAGE,
        _ANY,
        r"layer\s+" + _LAYER + r"\s+does not support shift delta",
        "shift_delta:{layer}",
        "a matmul's input ranges need force_range_in (the message prints suggested ranges)",
    ),
    # §6 AccelerasUnsupportedError [C] (COMM-9698, COMM-19373).
    Rule(
        _STAGE,
        "AccelerasUnsupportedError",
        r"Unsupported layers for the provided optimization target",
        "unsupported_layers",
        "the requested precision/optimization is not supported for some layers (e.g. 16-bit on them)",
    ),
    Rule(
        _STAGE,
        "AccelerasUnsupportedError",
        r"Matmul without transpose input and with negative range is not supported",
        "matmul_negative_range",
        "a matmul input has a negative range; keep normalization on-chip and feed raw data",
    ),
    # §6 AccelerasResourceError [T] (IDX-67352172954).
    Rule(
        _STAGE,
        "AccelerasResourceError",
        r"GPU memory has been exhausted",
        "gpu_memory",
        "the optimizer ran out of GPU memory (QFT); lower its batch size or the optimization level",
    ),
    # §6 BadInputsShape [T] (IDX-6647219125, IDX-43325931784).
    Rule(
        _STAGE,
        "BadInputsShape",
        r"Data shape \((?P<data_shape>[^)]*)\) for layer " + _LAYER + r" doesn't match network's input shape "
        r"\((?P<expected_shape>[^)]*)\)",
        "{layer}",
        "calibration/inference data is not NHWC of the network's input shape",
    ),
    # §11 (HD, IDX): "Data shape (1080, 1920, 3) doesn't match network's input shape (640, 640, 3)", no layer.
    Rule(
        _STAGE,
        "BadInputsShape",
        r"Data shape \((?P<data_shape>[^)]*)\) doesn't match network's input shape \((?P<expected_shape>[^)]*)\)",
        "input_shape",
        "calibration/inference data is not NHWC of the network's input shape",
    ),
    Rule(_STAGE, "BadInputsShape", r".", "input_shape", "calibration/inference data does not fit the input shape"),
    # README (HD, Feb 4) [T]: "ValueError: Couldn't detect CalibrationDataType" -- the calibration set was not one
    # stacked float32 NHWC array (a list of arrays, or a dict of lists).
    Rule(
        _STAGE,
        _ANY,
        r"Couldn't detect CalibrationDataType",
        "calibration_data_type",
        "optimize() got calibration data in a form it cannot detect; pass one stacked float32 NHWC array",
    ),
    # README (HD har_to_hef.py) [I for the text]: DFC 3.33's ApuNegMantissaCorrection calls neg_weights() on
    # layers that have none (HailoAvgPool); HD guard should_correct_layer before optimize.
    Rule(
        _STAGE,
        "AttributeError",
        r"(?P<layer_class>Hailo\w+)?[^\n]*neg_weights",
        "neg_mantissa_correction",
        "DFC 3.33 ApuNegMantissaCorrection crashes on a layer without neg_weights() (e.g. HailoAvgPool); guard it",
    ),
    # §6 ParsingWithRecommendationException [C/T] and its sub-errors [T].
    Rule(
        _STAGE,
        _ANY,
        r"UnsupportedOperationError in op (?P<node>\S+?):\s*(?P<op>\w+) operation is unsupported",
        "unsupported_op:{op}",
        "the parser does not support an ONNX op; substitute it at export or end the graph before it",
    ),
    Rule(
        _STAGE,
        _ANY,
        r"(?P<error>Unsupported\w+Error)(?: in op (?P<node>[^\s:]+))?",
        "{error}",
        "the parser rejected a layer (shuffle/slice/LSTM/reduce/conv3d ...); see the message",
    ),
    Rule(
        _STAGE,
        "ParsingWithRecommendationException",
        r"Parsing failed",
        "parsing_failed",
        "the parser failed and recommends other end nodes",
    ),
    # §6 UnsupportedModelError [C class, T messages] (IDX-21327599654, IDX-53129557868).
    Rule(
        _STAGE,
        "UnsupportedModelError",
        r"1D form is not supported in layer " + _LAYER + r" of type (?P<layer_type>\w+)",
        "1d_form:{layer}",
        "a rank-reduced (non-4-D) tensor; keep every tensor 4-D NCHW with H=1",
    ),
    Rule(
        _STAGE,
        "UnsupportedModelError",
        r"(?P<layer_type>ew \w+) layer " + _LAYER + r" expects (?P<expected>\d+) inputs but found (?P<found>\d+)",
        "inputs:{layer}",
        "an element-wise layer lost an input during parsing (constant operand?)",
    ),
    Rule(_STAGE, "MisspellNodeError", r".", "node_name", "a start/end node name is not in the ONNX graph"),
    # "Layer ... not found in model" from the script parser [T] (HD issues.md); class not public. Our own
    # OverrideTargetNotFound (same phrase, quoted name) keeps the harness's rule.
    Rule(
        _STAGE,
        r"(?!OverrideTargetNotFound$)" + _ANY,
        r"Layer\s+'?" + _LAYER + r"'?\s+not found in model",
        "{layer}",
        "a model script names a layer the HN does not have (often an optimizer-invented ne_activation_* name)",
    ),
    # §6 BackendScriptParserException [T] (IDX-59997698511).
    Rule(
        _STAGE, "BackendScriptParserException", r"Parsing failed at", "script_syntax", "a model-script line is malformed"
    ),
    # §6 AllocatorScriptParserException [T] (IDX-58412477746).
    Rule(
        _STAGE,
        "AllocatorScriptParserException",
        r"expected (?P<expected>\w+) but found (?P<found>\w+) layer",
        "last_layers:{found}",
        "the allocator rejects the model's last layers",
    ),
    # §4.1 BackendRuntimeException [T] (IDX-5475275390).
    Rule(
        _STAGE,
        "BackendRuntimeException",
        r"requires quantized weights",
        "not_quantized",
        "compile was called on a HAR that was never optimized",
    ),
    # §6/§11 allocator (compile) failures, BackendAllocatorException [T] (HD NEXT_AGENT_FEB_22.md,
    # CONVERSION_NOTES.md; IDX-62051008086, IDX-6647219125). Order, first match wins (a message enriched from the
    # log can carry several of these texts):
    #   1. topology failures, which no model-script lever fixes (grouped deconv, reshapes the allocator cannot
    #      add): they name the blocker, and the Agent-infeasible / Mapping-Failed lines around them are its echo;
    #   2. the layer-level "<layer> errors: Agent infeasible" (names the layers), then the other resource texts;
    #   3. the allocator's own verdicts ("could not find a valid partition", "Mapping Failed (…)"), which follow
    #      the per-layer lines in the log;
    #   4. a bare "Compilation failed" / "… with unexpected crash" (nothing better in the message or the log).
    Rule(
        _STAGE,
        _ANY,
        r"Super deconv is not supported with groups",
        "grouped_deconv",
        "a grouped ConvTranspose cannot be compiled; use an ungrouped/1x1-conv decoder head (export rewrite)",
    ),
    Rule(
        _STAGE,
        _ANY,
        r"Reshape is needed for layers:?\s*(?P<layers>.*?)(?:,?\s*but adding a reshape has failed|\n|$)",
        "reshape_needed",
        "the allocator needs reshapes it cannot insert (skip concat + mask multiply topologies); fixed by an export "
        "rewrite, not by the model script",
    ),
    # "Compilation failed: No successful assignments: format_conversion8 errors:\n\tAgent infeasible" (§11 [T]);
    # allocator-suffixed names (conv215_dc, resize1_sd0) are kept as named (resolve_layer maps them).
    Rule(
        _STAGE,
        _ANY,
        r"(?P<layer>[A-Za-z0-9_/]+) errors:\s*Agent infeasible",
        "agent_infeasible",
        "the allocator cannot place a layer on the chip's resources (too wide/long, too many 16-bit layers)",
    ),
    Rule(_STAGE, _ANY, r"Agent infeasible", "agent_infeasible", "the allocator cannot place the model on the chip"),
    Rule(_STAGE, _ANY, r"Memory units capacity exceeded", "memory_capacity", "the model needs more on-chip memory"),
    # §11 [T] (IDX-6647219125): "Compiler could not find a valid partition to contexts. Most commom error is:
    # Automri finished with too many resources on context_2 with 62/184 failures." (sic "commom").
    Rule(
        _STAGE,
        _ANY,
        r"(?s)[Cc]ould not find a valid partition to contexts"
        r"(?:.*?too many resources on (?P<context>context_\d+)"
        r"(?: with (?P<context_failures>\d+)/(?P<iterations>\d+))?)?",
        "no_valid_partition",
        "the allocator found no split of the model into contexts that fits the chip",
    ),
    # No public source has this wording (dfc_api.md §11); kept for the fakes and older notes.
    Rule(_STAGE, _ANY, r"No valid partition found", "no_valid_partition", "the model cannot be split onto the chip"),
    # IDX (hailo_model_zoo#124): "Context switch is disabled, but model could not fit in single context."
    Rule(
        _STAGE,
        _ANY,
        r"could not fit in single context",
        "single_context_overflow",
        "context switching is disabled and the model does not fit one context",
    ),
    # "Mapping Failed (Timeout, allocation time: 31m 42s)" [T] (HD) is the allocator's own verdict after its own
    # time budget -- deterministic for the configuration, not a harness Timeout (so it is cached like any other).
    Rule(
        _STAGE,
        _ANY,
        r"Mapping Failed \(Timeout,\s*allocation time:\s*" + _ALLOC_TIME + r"\)",
        "mapping_timeout",
        "the allocator gave up after its timeout (usually a model too big for the chip)",
    ),
    # "[error] Mapping Failed (allocation time: 10m 11s)" [T] (§11), and a bare "[error] Mapping Failed" (IDX).
    Rule(
        _STAGE,
        _ANY,
        r"Mapping Failed(?: \(\s*allocation time:\s*" + _ALLOC_TIME + r"\))?",
        "mapping_failed",
        "the allocator found no mapping of the model onto the chip",
    ),
    # §8.1/§8.2 unsupported dimensions [T] (HD): "Unsupported dimensions ... [-1, 1, 1999, 262144]".
    Rule(
        _STAGE,
        _ANY,
        r"Unsupported dimensions(?:[^\[\n]*\[(?:-?\d+,\s*)*(?P<last_dim>\d+)\])?",
        "unsupported_dimensions",
        "a tensor shape the DFC cannot map (e.g. a 1-D PReLU slope broadcast to C*C, or [N,C,T,1] layouts)",
    ),
    # A bare allocator failure: nothing above in the message nor in the log lines :func:`enrich_from_log` added.
    # "Compilation failed with unexpected crash" (DFC 3.33, §11 [T]) usually follows a C++ assertion in the log
    # ("compiler: ../src/allocator/network_graph_appender.cpp:402: … Assertion `…' failed.", IDX), kept as groups.
    Rule(
        _STAGE,
        _ANY,
        r"(?s)Compilation failed with unexpected crash"
        r"(?:.*?(?P<source>[\w./-]+\.(?:cpp|cc|h|hpp):\d+))?(?:.*?Assertion `(?P<assertion>[^'\n]*)' failed)?",
        "unexpected_crash",
        "the compiler crashed (an internal assertion); no model-script lever is known",
    ),
    Rule(
        _STAGE,
        _ANY,
        r"\A\s*(?:\w+:\s*)?Compilation failed[.!:]?[ \t]*(?:\n|\Z)",
        "compilation_failed",
        "compilation failed and neither the message nor the log says why",
    ),
]

register_rules(RULES)

# -- messages completed from the DFC's log ------------------------------------------------------------------------
#: Details after which a message is worth completing from the log (they say *that* it failed, not *why*).
_REFINABLE = frozenset({"compilation_failed", "unexpected_crash", "mapping_failed", "mapping_timeout"})
#: Log lines that explain an allocator/optimizer failure, with or without an ``[error]`` prefix.
_TELLING = re.compile(
    r"errors:\s*Agent infeasible|Agent infeasible|Mapping Failed|Reshape is needed for layers|valid partition|"
    r"Memory units capacity exceeded|Super deconv is not supported|could not fit in single context|"
    r"Detailed error is|too many resources on|No successful assignments|Assertion `.*' failed|"
    r"^compiler: \S+\.(?:cpp|cc|h|hpp):\d+|unsupported required slope|not found in model|"
    r"Couldn't detect CalibrationDataType"
)
#: Error lines in the DFC's formats: console ``[error] …`` and Python logging ``… - ERROR - …`` / ``ERROR:``.
_ERROR = re.compile(r"\[error\]|\s-\sERROR\s-\s|^ERROR[:\s]", re.IGNORECASE)
_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
#: At most this many log lines are appended (the telling ones first; the first and last half when there are more).
LOG_CAP = 60
_LINE_CAP = 500
#: Of a longer log only its first and last parts are read (the per-layer lines come early, the verdicts last).
_HEAD_CHARS, _TAIL_CHARS = 2_000_000, 6_000_000


def _log_lines(log_text: str) -> list[str]:
    """The telling and the error lines of a log, in order, de-duplicated, at most :data:`LOG_CAP`."""
    if len(log_text) > _HEAD_CHARS + _TAIL_CHARS:
        log_text = log_text[:_HEAD_CHARS] + "\n" + log_text[-_TAIL_CHARS:]
    raw = [_ANSI.sub("", ln).rstrip() for ln in log_text.splitlines()]
    lines: list[str] = []
    i = 0
    while i < len(raw):  # "<layer> errors:" + "\tAgent infeasible" on the next line -> one line
        ln = raw[i].strip()
        if ln.endswith("errors:") and i + 1 < len(raw) and raw[i + 1].strip():
            ln, i = f"{ln} {raw[i + 1].strip()}", i + 1
        lines.append(ln[:_LINE_CAP])
        i += 1
    unique = list(dict.fromkeys(ln for ln in lines if ln))
    telling = [i for i, ln in enumerate(unique) if _TELLING.search(ln)]
    dropped = set(telling[LOG_CAP // 2 : -(LOG_CAP // 2)]) if len(telling) > LOG_CAP else set()
    kept = [i for i in telling if i not in dropped]
    errors = [i for i, ln in enumerate(unique) if i not in set(telling) and _ERROR.search(ln)]
    keep = set(kept) | set(errors[: max(LOG_CAP - len(kept), 0)])
    out: list[str] = []
    for i, ln in enumerate(unique):
        if dropped and i == min(dropped):
            out.append(f"… ({len(dropped)} more such lines left out)")
        if i in keep:
            out.append(ln)
    return out


def enrich_from_log(stage: str, exc_class: str, message: str, log_text: str) -> str | None:
    """Complete a bare DFC message with the log lines that explain it (the enricher this module registers).

    A message is completed when it classifies as unknown or as a bare verdict (``compilation_failed``,
    ``unexpected_crash``, ``mapping_failed``, ``mapping_timeout``): the DFC raises ``Compilation failed`` and
    writes the cause -- ``[error] Mapping Failed (allocation time: 10m 11s)``, ``[error] dw66 errors: Agent
    infeasible``, ``Reshape is needed …`` -- only to its log (dfc_api.md §11 [T]). The log's error lines and
    the lines naming a known cause are appended (ANSI colours removed, repeats dropped, at most
    :data:`LOG_CAP`), so the table then classifies the whole text.

    Args:
        stage: Stage name (the harness's own stages and isolation failures are left alone).
        exc_class: Exception class name.
        message: The exception message.
        log_text: The stage's log text: the worker's stdout/stderr and any ``allocator.log`` /
            ``hailo_sdk.client.log`` of the failed stage, concatenated.

    Returns:
        The completed message, or None when it needs nothing or the log has nothing to add.
    """
    if not re.fullmatch(_STAGE, stage) or exc_class in ("Timeout", "Crash"):
        return None
    first = classify(stage, exc_class, message)
    if first.known and first.detail not in _REFINABLE:
        return None
    have = set(message.splitlines())
    lines = [ln for ln in _log_lines(log_text) if ln not in have]
    if not lines:
        return None
    return message.rstrip("\n") + "\n" + "\n".join(lines)


register_enricher(enrich_from_log)


@dataclass(frozen=True)
class Diagnosis:
    """What a classified failure means for the model.

    Attributes:
        signature: The failure's signature.
        layer: The layer as the DFC named it (``convtas/ne_activation_avgpool6``), if any.
        resolved_layer: The HN layer it stands for (``convtas/avgpool6``), if it resolves.
        onnx_nodes: The resolved layer's ONNX nodes (``original_names``).
        violation: ``desired_shift - data_bits`` for shift failures (10 vs 8 -> 2.0), else None.
        layers: Every layer the message lists (reshape lists, infeasible agents), as named.
        nearest: Nearest HN names when ``layer`` did not resolve.
    """

    signature: str
    layer: str | None = None
    resolved_layer: str | None = None
    onnx_nodes: tuple[str, ...] = ()
    violation: float | None = None
    layers: tuple[str, ...] = ()
    nearest: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable form."""
        return {
            "signature": self.signature,
            "layer": self.layer,
            "resolved_layer": self.resolved_layer,
            "onnx_nodes": list(self.onnx_nodes),
            "violation": self.violation,
            "layers": list(self.layers),
            "nearest": list(self.nearest),
        }


def _listed(failure: Failure) -> tuple[str, ...]:
    if "layers" in failure.groups:
        # "conv5 … conv73, shortcut1, concat1" (an abbreviated list, as quoted in notes): names only, no "…"
        names = re.split(r"[\s,]+", failure.groups["layers"])
        return tuple(dict.fromkeys(x for x in names if x and x.strip(".…")))
    if failure.detail == "agent_infeasible":
        return tuple(dict.fromkeys(re.findall(r"([A-Za-z0-9_/]+) errors:\s*Agent infeasible", failure.message)))
    return ()


def explain(failure: Failure, layers: LayerTable | Sequence[str]) -> Diagnosis:
    """Resolve the failure's layer against the HN and compute its violation.

    Args:
        failure: A classified failure (:func:`harness.failures.classify`).
        layers: The HN layers: ``get_hn_dict()["layers"]`` (gives ONNX nodes too) or ``Translated.layers``.

    Returns:
        The :class:`Diagnosis`.
    """
    named = failure.groups.get("layer") or failure.groups.get("node")
    listed = _listed(failure)
    if named is None and listed:
        named = listed[0]
    ref: LayerRef | None = resolve_layer(named, layers) if named else None
    shift, bits = failure.numbers.get("desired_shift"), failure.numbers.get("data_bits")
    return Diagnosis(
        signature=failure.signature,
        layer=named,
        resolved_layer=ref.hn_layer if ref else None,
        onnx_nodes=ref.onnx_nodes if ref else (),
        violation=(shift - bits) if shift is not None and bits is not None else None,
        layers=listed,
        nearest=ref.nearest if ref else (),
    )
