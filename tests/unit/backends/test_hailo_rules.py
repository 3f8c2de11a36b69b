"""The Hailo failure table on the texts the real DFC raised (real_dfc/README.md, dfc_api.md §11), and the
enricher that completes a bare ``Compilation failed`` from the DFC's log. Pure: no SDK, no fake."""

from __future__ import annotations

from pathlib import Path

import pytest

import harness.backends.hailo  # noqa: F401 - registers the Hailo rules and enricher
from harness import failures
from harness.backends.hailo import explain
from harness.backends.hailo._rules import LOG_CAP, enrich_from_log
from harness.cache import unrecorded_reason
from harness.failures import classify, classify_with_log
from harness.isolation import IsolatedFailure

ALLOC = "BackendAllocatorException"
NE = (
    "Quantization failed in layer {layer} due to unsupported required slope. Desired shift is {shift}, but op has "
    "only 8 data bits"
)
#: The full-model failure of Feb 22 (HD NEXT_AGENT_FEB_22.md), as the exception carried it.
FEB22 = (
    "Compilation failed:\n" + "dw66 errors: Agent infeasible\n" * 3 + "conv68 errors: Agent infeasible\n" * 2
    + "auto_spatial_reshape_from_dw66_to_conv69_1 errors: Agent infeasible\n"
    "auto_spatial_reshape_from_dw66_to_conv69_2 errors: Agent infeasible\n"
    "Mapping Failed (Timeout, allocation time: 31m 42s)"
)  # fmt: skip
RESHAPE_FEB17 = (
    "Reshape is needed for layers: conv5 … conv73, shortcut1, concat1, ew_mult1, but adding a reshape has failed."
)

# (stage, exception class, message, signature): one row per text of real_dfc/README.md and dfc_api.md §11.
REAL = [
    # README "What the real compiler did" (Feb 2026, DFC 3.33)
    ("translate", "UnsupportedModelError", "Unsupported dimensions … [-1, 1, 1999, 262144]",
     "translate:UnsupportedModelError:unsupported_dimensions"),
    ("translate", "ParsingWithRecommendationException",
     "Parsing failed. The errors found in the graph are: UnsupportedConv3DError in op /encoder/Conv: 3D conv",
     "translate:ParsingWithRecommendationException:UnsupportedConv3DError"),
    ("optimize", "ValueError", "Couldn't detect CalibrationDataType", "optimize:ValueError:calibration_data_type"),
    ("optimize", "Exception", "ValueError: Couldn't detect CalibrationDataType", "optimize:Exception:calibration_data_type"),
    ("optimize", "NegativeSlopeExponentNonFixable", NE.format(layer="convtas/ne_activation_avgpool6", shift="10.0"),
     "optimize:NegativeSlopeExponentNonFixable:convtas/ne_activation_avgpool6"),
    ("optimize", "BackendScriptParserException", "Layer convtas/ne_activation_avgpool6 not found in model",
     "optimize:BackendScriptParserException:convtas/ne_activation_avgpool6"),
    ("compile", ALLOC, RESHAPE_FEB17, "compile:BackendAllocatorException:reshape_needed"),
    ("compile", ALLOC, "Super deconv is not supported with groups", "compile:BackendAllocatorException:grouped_deconv"),
    ("compile", ALLOC, "Memory units capacity exceeded", "compile:BackendAllocatorException:memory_capacity"),
    ("compile", ALLOC, "Reshape is needed for layers: conv2, conv3", "compile:BackendAllocatorException:reshape_needed"),
    ("compile", ALLOC, FEB22, "compile:BackendAllocatorException:agent_infeasible"),
    ("compile", ALLOC, "Mapping Failed (Timeout, allocation time: 31m 42s)", "compile:BackendAllocatorException:mapping_timeout"),
    ("compile", ALLOC, "Compilation failed: Agent infeasible", "compile:BackendAllocatorException:agent_infeasible"),
    # README "Other facts": ApuNegMantissaCorrection on HailoAvgPool (the exact text is inferred [I])
    ("optimize", "AttributeError", "'HailoAvgPool' object has no attribute 'neg_weights'",
     "optimize:AttributeError:neg_mantissa_correction"),
    # README "Real error texts from public reports" / dfc_api.md §11
    ("optimize", "NegativeSlopeExponentNonFixable", NE.format(layer="convtas/ne_activation_avgpool2", shift="11.0"),
     "optimize:NegativeSlopeExponentNonFixable:convtas/ne_activation_avgpool2"),
    ("optimize", "NegativeSlopeExponentNonFixable", NE.format(layer="convtas/ne_activation_avgpool2", shift="16.0"),
     "optimize:NegativeSlopeExponentNonFixable:convtas/ne_activation_avgpool2"),
    ("compile", ALLOC, "Compilation failed: No successful assignments: format_conversion8 errors:\n\tAgent infeasible",
     "compile:BackendAllocatorException:agent_infeasible"),
    ("compile", ALLOC, "Compilation failed: No successful assignments: convtas/conv215_dc errors:\n\tAgent infeasible",
     "compile:BackendAllocatorException:agent_infeasible"),
    ("compile", ALLOC, "Compilation failed: No successful assignments: resize1_sd0 errors:\n\tAgent infeasible",
     "compile:BackendAllocatorException:agent_infeasible"),
    ("compile", ALLOC, "Compilation failed", "compile:BackendAllocatorException:compilation_failed"),
    ("compile", ALLOC, "Mapping Failed (allocation time: 10m 11s)", "compile:BackendAllocatorException:mapping_failed"),
    ("compile", ALLOC, "Compilation failed with unexpected crash", "compile:BackendAllocatorException:unexpected_crash"),
    ("compile", ALLOC, "Compiler could not find a valid partition to contexts",
     "compile:BackendAllocatorException:no_valid_partition"),
    ("compile", ALLOC,
     "Compilation failed: Compiler could not find a valid partition to contexts. Most commom error is: Automri "
     "finished with too many resources on context_2 with 62/184 failures.",
     "compile:BackendAllocatorException:no_valid_partition"),
    ("optimize", "BadInputsShape", "Data shape (1080, 1920, 3) doesn't match network's input shape (640, 640, 3)",
     "optimize:BadInputsShape:input_shape"),
    ("optimize", "BadInputsShape", "Data shape (1, 16000) does not match", "optimize:BadInputsShape:input_shape"),
    # more public allocator texts (IDX)
    ("compile", ALLOC, "Mapping Failed\nNo successful assignments: concat21 errors: Agent infeasible",
     "compile:BackendAllocatorException:agent_infeasible"),
    ("compile", ALLOC,
     "Mapping Failed (allocation time: 2s)\nContext switch is disabled, but model could not fit in single context.",
     "compile:BackendAllocatorException:single_context_overflow"),
    ("compile", ALLOC, "No valid partition found", "compile:BackendAllocatorException:no_valid_partition"),  # no public source
]  # fmt: skip


@pytest.mark.parametrize(("stage", "exc", "message", "signature"), REAL)
def test_no_real_dfc_text_is_unclassified(stage: str, exc: str, message: str, signature: str) -> None:
    f = classify(stage, exc, message)
    assert f.known and f.detail != "unclassified"
    assert f.signature == signature
    assert f.meaning


def test_mapping_failed_keeps_the_allocation_time() -> None:
    f = classify("compile", ALLOC, "[error] Mapping Failed (allocation time: 10m 11s)")
    assert f.detail == "mapping_failed" and f.groups["allocation_time"] == "10m 11s"
    assert f.numbers["alloc_m"] == 10 and f.numbers["alloc_s"] == 11
    t = classify("compile", ALLOC, "Mapping Failed (Timeout, allocation time: 31m 42s)")
    assert t.detail == "mapping_timeout" and t.groups["allocation_time"] == "31m 42s" and t.numbers["alloc_m"] == 31
    short = classify("compile", ALLOC, "Mapping Failed (allocation time: 1m 44s)")
    assert short.numbers == {"alloc_m": 1.0, "alloc_s": 44.0}
    bare = classify("compile", ALLOC, "[error] Mapping Failed")
    assert bare.detail == "mapping_failed" and "allocation_time" not in bare.groups


def test_partition_and_crash_keep_their_details() -> None:
    p = classify("compile", ALLOC, REAL[23][2])
    assert p.groups["context"] == "context_2" and p.numbers["context_failures"] == 62 and p.numbers["iterations"] == 184
    msg = (
        "Compilation failed with unexpected crash\ncompiler: ../src/allocator/network_graph_appender.cpp:402: "
        "Assertion `src_node.output_format() == (*first_succ)->input_format()' failed."
    )
    c = classify("compile", ALLOC, msg)
    assert c.detail == "unexpected_crash" and c.groups["source"] == "../src/allocator/network_graph_appender.cpp:402"
    assert c.groups["assertion"] == "src_node.output_format() == (*first_succ)->input_format()"


@pytest.mark.parametrize(
    ("message", "detail"),
    [
        # a topology blocker wins over the Agent-infeasible lines that come with it (no allocator lever fixes it)
        ("Compilation failed:\nconv5 errors: Agent infeasible\n" + RESHAPE_FEB17, "reshape_needed"),
        ("Super deconv is not supported with groups\nMemory units capacity exceeded", "grouped_deconv"),
        ("deconv1 errors: Agent infeasible\nSuper deconv is not supported with groups", "grouped_deconv"),
        # the per-layer lines win over the allocator's verdict that follows them
        ("dw66 errors: Agent infeasible\nMapping Failed (Timeout, allocation time: 31m 42s)", "agent_infeasible"),
        ("conv1 errors: Agent infeasible\nCompiler could not find a valid partition to contexts", "agent_infeasible"),
        ("Mapping Failed (allocation time: 1m 44s)\nCompiler could not find a valid partition to contexts.", "no_valid_partition"),
        ("Memory units capacity exceeded\nMapping Failed (allocation time: 3m 1s)", "memory_capacity"),
        ("Mapping Failed (Timeout, allocation time: 31m 42s)\nMapping Failed (allocation time: 1s)", "mapping_timeout"),
        # a bare verdict with a cause after it: the cause
        ("Compilation failed with unexpected crash\n[error] dw66 errors: Agent infeasible", "agent_infeasible"),
        ("Compilation failed\n[error] Failed to produce compiled graph", "compilation_failed"),
        ("BackendAllocatorException: Compilation failed", "compilation_failed"),
    ],
)
def test_order_of_the_allocator_rows(message: str, detail: str) -> None:
    assert classify("compile", ALLOC, message).detail == detail


def test_unknown_compilation_failures_stay_unclassified() -> None:
    assert classify("compile", ALLOC, "Compilation failed: something new").detail == "unclassified"


def test_listed_layers_are_kept_as_named() -> None:
    hn = ["convtas/conv5", "convtas/conv73", "convtas/shortcut1", "convtas/concat1", "convtas/ew_mult1", "convtas/conv215"]
    d = explain(classify("compile", ALLOC, RESHAPE_FEB17), hn)
    assert d.layers == ("conv5", "conv73", "shortcut1", "concat1", "ew_mult1") and d.layer == "conv5"
    f = classify("compile", ALLOC, REAL[17][2])
    assert f.groups["layer"] == "convtas/conv215_dc" and explain(f, hn).layers == ("convtas/conv215_dc",)
    r = classify("compile", ALLOC, REAL[18][2])
    assert explain(r, hn).layer == "resize1_sd0"
    feb = explain(classify("compile", ALLOC, FEB22), hn)
    assert feb.layers == ("dw66", "conv68", "auto_spatial_reshape_from_dw66_to_conv69_1", "auto_spatial_reshape_from_dw66_to_conv69_2")


# -- completing bare messages from the log ---------------------------------------------------------------------
FEB_LOG = (
    "[info] Starting Hailo allocation and compilation flow\n"
    "[info] Finding the best partition to contexts...\n"
    "\x1b[31m[error]\x1b[0m dw66 errors: Agent infeasible\n"
    "[error] dw66 errors: Agent infeasible\n"
    "[error] conv68 errors: Agent infeasible\n"
    "[error] Mapping Failed (allocation time: 10m 11s)\n"
    "[error] Failed to produce compiled graph\n"
    "Traceback (most recent call last):\n"
    '  File "x.py", line 1, in <module>\n'
    "hailo_sdk_client.sdk_backend.sdk_backend_exceptions.BackendAllocatorException: Compilation failed\n"
)


def test_a_bare_compilation_failure_is_classified_from_its_log() -> None:
    f = classify_with_log("compile", ALLOC, "Compilation failed", FEB_LOG)
    assert f.signature == "compile:BackendAllocatorException:agent_infeasible" and f.groups["layer"] == "dw66"
    assert f.message.splitlines() == [
        "Compilation failed",
        "[error] dw66 errors: Agent infeasible",  # colours removed, repeats dropped
        "[error] conv68 errors: Agent infeasible",
        "[error] Mapping Failed (allocation time: 10m 11s)",
        "[error] Failed to produce compiled graph",
    ]
    d = explain(f, ["convtas/dw66", "convtas/conv68"])
    assert d.layers == ("dw66", "conv68") and d.resolved_layer == "convtas/dw66"
    # the backend-neutral entry point the pipeline calls gives the same text
    assert failures.enrich("compile", ALLOC, "Compilation failed", FEB_LOG) == f.message
    crash = classify_with_log("compile", ALLOC, "Compilation failed with unexpected crash", FEB_LOG)
    assert crash.detail == "agent_infeasible"
    only_mapping = FEB_LOG.replace("dw66 errors: Agent infeasible", "").replace("conv68 errors: Agent infeasible", "")
    m = classify_with_log("compile", ALLOC, "Compilation failed", only_mapping)
    assert m.detail == "mapping_failed" and m.groups["allocation_time"] == "10m 11s"
    timeout = classify_with_log("compile", ALLOC, "Mapping Failed (Timeout, allocation time: 31m 42s)", FEB_LOG)
    assert timeout.detail == "agent_infeasible"  # a verdict is refined by the per-layer lines before it


@pytest.mark.parametrize(
    ("log", "detail"),
    [
        ("[error] Reshape is needed for layers: conv2, conv3, but adding a reshape has failed.\n"
         "[error] conv2 errors: Agent infeasible\n", "reshape_needed"),
        ("[info] Using Multi-context flow\nMapping Failed (allocation time: ~7m)\nAutomri finished with too many "
         "resources on context_0 with 24/50 failures.\n[error] Compiler could not find a valid partition to contexts.\n",
         "no_valid_partition"),
        ("[error] Mapping Failed (Timeout, allocation time: 31m 42s)\n", "mapping_timeout"),
        ("2026-02-17 10:00:00,123 - ERROR - Memory units capacity exceeded\n", "memory_capacity"),
        ("[error] Super deconv is not supported with groups\n", "grouped_deconv"),
        # "<layer> errors:" and "\tAgent infeasible" on two log lines
        ("[error] No successful assignments: format_conversion8 errors:\n\tAgent infeasible\n", "agent_infeasible"),
        ("compiler: ../src/network_graph/racehorse.cpp:1682:\nAssertion `pyramid_output->output_shapes().size() > "
         "index' failed.\n[error] Failed to produce compiled graph\n", "compilation_failed"),
        ("[info] nothing to see\n", "compilation_failed"),
        ("", "compilation_failed"),
    ],
)  # fmt: skip
def test_log_lines_decide_a_bare_failure(log: str, detail: str) -> None:
    assert classify_with_log("compile", ALLOC, "Compilation failed", log).detail == detail


def test_a_bare_crash_without_useful_lines_has_its_own_signature() -> None:
    crash_log = (
        "compiler: ../src/network_graph/racehorse.cpp:1682:\nAssertion `pyramid_output->output_shapes().size() > "
        "index' failed.\n[error] Failed to produce compiled graph\n"
    )
    f = classify_with_log("compile", ALLOC, "Compilation failed with unexpected crash", crash_log)
    assert f.signature == "compile:BackendAllocatorException:unexpected_crash"
    assert f.groups["source"] == "../src/network_graph/racehorse.cpp:1682"
    assert f.groups["assertion"] == "pyramid_output->output_shapes().size() > index"
    assert classify_with_log("compile", ALLOC, "Compilation failed with unexpected crash", "").detail == "unexpected_crash"
    f2 = classify_with_log("compile", "RuntimeError", "Compilation failed", None)
    assert f2.signature == "compile:RuntimeError:compilation_failed"


def test_what_is_not_enriched() -> None:
    specific = "Compilation failed: No successful assignments: format_conversion8 errors:\n\tAgent infeasible"
    assert enrich_from_log("compile", ALLOC, specific, FEB_LOG) is None  # already says why
    assert enrich_from_log("export", "RuntimeError", "odd", FEB_LOG) is None  # the harness's own stages
    assert enrich_from_log("compile", "Timeout", "did not finish within 60 s", FEB_LOG) is None
    assert enrich_from_log("compile", "Crash", "child died by SIGABRT", FEB_LOG) is None
    assert enrich_from_log("compile", ALLOC, "Compilation failed", "[info] ok\n") is None
    # an unclassified optimize failure gets its log's error lines too
    log = "[info] x\n[error] Layer convtas/ne_activation_avgpool6 not found in model\n"
    f = classify_with_log("optimize", "BackendScriptParserException", "Failed to load the model script", log)
    assert f.signature == "optimize:BackendScriptParserException:convtas/ne_activation_avgpool6"


def test_huge_logs_are_capped_keeping_both_ends() -> None:
    body = "".join(f"[error] auto_spatial_reshape_from_dw66_to_conv69_{i} errors: Agent infeasible\n" for i in range(500))
    log = body + "[error] Mapping Failed (Timeout, allocation time: 31m 42s)\n" + "[error] other\n" * 3
    text = failures.enrich("compile", ALLOC, "Compilation failed", log)
    lines = text.splitlines()[1:]
    assert len(lines) <= LOG_CAP + 2
    assert lines[0].endswith("conv69_0 errors: Agent infeasible")
    assert any(ln.startswith("… (") and "left out" in ln for ln in lines)
    assert "[error] Mapping Failed (Timeout, allocation time: 31m 42s)" in lines
    assert classify("compile", ALLOC, text).detail == "agent_infeasible"


def test_allocator_verdicts_are_recorded_by_the_cache(tmp_path: Path) -> None:
    # The allocator's own timeout is its deterministic answer for this configuration, not a hung stage: the
    # classified class is the DFC's, so the cache records it (only Timeout/Crash of the worker are transient).
    for msg in (REAL[11][2], "Compilation failed", "Compilation failed with unexpected crash", RESHAPE_FEB17):
        f = classify("compile", ALLOC, msg)
        assert f.exc_class not in ("Timeout", "Crash")
        assert unrecorded_reason(IsolatedFailure(ALLOC, msg), tmp_path, "compile") is None
    assert unrecorded_reason(IsolatedFailure("Timeout", "did not finish within 60 s"), tmp_path, "compile") is not None


def test_a_bare_message_with_a_colon_is_still_bare() -> None:
    assert classify("compile", ALLOC, "Compilation failed:").detail == "compilation_failed"
    assert classify("compile", ALLOC, "Compilation failed:\n[error] Failed to produce compiled graph").detail == (
        "compilation_failed"
    )
