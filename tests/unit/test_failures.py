from __future__ import annotations

from harness.failures import Rule, classify, register_rules


def test_timeout_and_crash_signatures() -> None:
    f = classify("optimize", "Timeout", "harness._stage_calls:optimize did not finish within 300 s")
    assert f.signature == "optimize:Timeout:300s"
    assert f.numbers == {"timeout_s": 300.0}
    c = classify("compile", "Crash", "child died by SIGSEGV")
    assert c.signature == "compile:Crash:SIGSEGV"
    assert classify("emulate", "Crash", "child exited with code 3 without a result").signature == "emulate:Crash:exit3"


def test_parsed_numbers_and_layer() -> None:
    f = classify("export", "FidelityGateError", "SI-SNR 42.5 dB of ONNX vs torch is below the 60 dB gate")
    assert f.signature == "export:FidelityGateError:si_snr_below_gate"
    assert f.numbers["si_snr_db"] == 42.5
    o = classify("optimize", "OverrideTargetNotFound", "Layer 'mask/*' not found in model: no layer matches")
    assert o.signature == "optimize:OverrideTargetNotFound:mask/*"
    assert o.known


def test_unknown_is_unclassified_and_keeps_message() -> None:
    f = classify("compile", "WeirdError", "something odd\nwith two lines")
    assert f.signature == "compile:WeirdError:unclassified"
    assert not f.known
    assert f.to_dict()["message"] == "something odd\nwith two lines"


def test_registered_rules_take_precedence() -> None:
    register_rules([Rule("optimize", "WeirdError", r"shift is (?P<shift>[\d.]+)", "shift{shift}")])
    assert classify("optimize", "WeirdError", "Desired shift is 10.0").signature == "optimize:WeirdError:shift10.0"


def test_enrichers_complete_bare_messages_from_the_log(monkeypatch) -> None:
    import harness.failures as failures

    monkeypatch.setattr(failures, "_ENRICHERS", [])
    monkeypatch.setattr(failures, "_EXTRA", list(failures._EXTRA))  # the rule below stays in this test
    assert failures.enrich("compile", "Boom", "bare", "[error] why: disk") == "bare"  # no enricher: unchanged

    def why(stage: str, exc_class: str, message: str, log_text: str) -> str | None:
        lines = [ln for ln in log_text.splitlines() if ln.startswith("[error]")]
        return message + "\n" + "\n".join(lines) if message == "bare" and lines else None

    failures.register_enricher(why)
    failures.register_enricher(why)  # idempotent (modules may be imported twice)
    assert failures._ENRICHERS == [why]
    register_rules([Rule("compile", "Boom", r"why: (?P<cause>\w+)", "{cause}")])
    assert failures.enrich("compile", "Boom", "bare", "[info] x\n[error] why: disk") == "bare\n[error] why: disk"
    assert failures.enrich("compile", "Boom", "bare", "") == "bare"
    assert failures.enrich("compile", "Boom", "bare", None) == "bare"
    assert failures.enrich("compile", "Boom", "not bare", "[error] why: disk") == "not bare"
    f = failures.classify_with_log("compile", "Boom", "bare", "[error] why: disk")
    assert f.signature == "compile:Boom:disk" and f.message == "bare\n[error] why: disk"
    assert classify("compile", "Boom", "bare").signature == "compile:Boom:unclassified"

    def later(stage: str, exc_class: str, message: str, log_text: str) -> str | None:
        return message + " (later)"

    failures.register_enricher(later)  # registered later = tried first
    assert failures.enrich("compile", "Boom", "bare", "[error] why: disk") == "bare (later)"


def test_a_broken_enricher_never_loses_the_failure(monkeypatch) -> None:
    import harness.failures as failures

    def broken(stage: str, exc_class: str, message: str, log_text: str) -> str | None:
        raise RuntimeError("bug")

    monkeypatch.setattr(failures, "_ENRICHERS", [broken])
    assert failures.enrich("compile", "Boom", "bare", "[error] x") == "bare"
