"""Failure classification for the Hailo DFC, and diagnoses (violation, resolved layer) of classified failures.

The rules cover every failure listed in dfc_api.md §6 and §8; message patterns follow the texts quoted there
(evidence per row in :data:`RULES`). Importing this module registers them with
:func:`harness.failures.register_rules` (ahead of the harness's own table). Classification uses only the
exception *class name* and message, so it works on failures reported from a child process.

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
from harness.failures import Failure, Rule, register_rules

__all__ = ["RULES", "Diagnosis", "explain"]

_ANY = r"[A-Za-z_][A-Za-z0-9_]*"
#: Backend stages only: the harness's own export/calibrate rules must keep their signatures.
_STAGE = r"(?!export$|calibrate$|reference$)[A-Za-z_]+"
_LAYER = r"(?P<layer>[A-Za-z0-9_./\-]+?)"

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
    # §6 BackendAllocatorException messages [T] (HD NEXT_AGENT_FEB_22.md, CONVERSION_NOTES.md; IDX-62051008086).
    Rule(
        _STAGE,
        _ANY,
        r"(?P<layer>[A-Za-z0-9_/]+) errors:\s*Agent infeasible",
        "agent_infeasible",
        "the allocator cannot place a layer on the chip's resources (too wide/long, too many 16-bit layers)",
    ),
    Rule(_STAGE, _ANY, r"Agent infeasible", "agent_infeasible", "the allocator cannot place the model on the chip"),
    Rule(
        _STAGE,
        _ANY,
        r"Mapping Failed \(Timeout, allocation time: (?P<allocation_time>[^)]*)\)",
        "mapping_timeout",
        "the allocator gave up after its timeout (usually a model too big for the chip)",
    ),
    Rule(
        _STAGE,
        _ANY,
        r"Reshape is needed for layers:?\s*(?P<layers>.*?)(?:, but adding a reshape has failed|\n|$)",
        "reshape_needed",
        "the allocator needs reshapes it cannot insert (skip/concat/mask-multiply topologies)",
    ),
    Rule(_STAGE, _ANY, r"No valid partition found", "no_valid_partition", "the model cannot be split onto the chip"),
    Rule(_STAGE, _ANY, r"Memory units capacity exceeded", "memory_capacity", "the model needs more on-chip memory"),
    Rule(
        _STAGE,
        _ANY,
        r"Super deconv is not supported with groups",
        "grouped_deconv",
        "a grouped ConvTranspose cannot be compiled; use a 1x1 conv head",
    ),
    # §8.1/§8.2 unsupported dimensions [T] (HD): "Unsupported dimensions ... [-1, 1, 1999, 262144]".
    Rule(
        _STAGE,
        _ANY,
        r"Unsupported dimensions(?:[^\[\n]*\[(?:-?\d+,\s*)*(?P<last_dim>\d+)\])?",
        "unsupported_dimensions",
        "a tensor shape the DFC cannot map (e.g. a 1-D PReLU slope broadcast to C*C, or [N,C,T,1] layouts)",
    ),
]

register_rules(RULES)


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
        return tuple(x.strip() for x in failure.groups["layers"].split(",") if x.strip())
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
