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
