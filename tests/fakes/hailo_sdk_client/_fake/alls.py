"""A strict model-script (.alls) parser for the fake (dfc_api.md §2).

[C]: one command per line, ``#`` comments, ``name = command(args)`` for model modifications, bracketed
arguments may span lines, layer lists ``[a, b]``, glob sets ``{conv*}``, bare names scoped to the net
automatically, fully scoped ``<net>/<layer>`` names.
[T]: a malformed line raises ``BackendScriptParserException`` "Parsing failed at: >!<…"; a layer the model does
not have raises "Layer … not found in model" (HD ``issues.md``). Honoured: ``negative_exponent``,
``calibration``, ``checker_cfg``, ``model_optimization_flavor``, ``quantization_param(precision_mode=)``,
``activation_clipping`` and ``global_avgpool_reduction`` (``layers=[…], division_factors=[a, b]``); other commands
(e.g. the allocator's ``performance_param``/``resources_param``/``context_switch_param``/``allocator_param``) are
syntax-checked and ignored [I]. The exception class of the latter is a guess
[I] (the script parser's class), as is raising it at load time rather than at ``optimize()``.
"""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass, field
from typing import Any

from hailo_sdk_client.sdk_backend.sdk_backend_exceptions import BackendScriptParserException

__all__ = ["ScriptConfig", "parse_script"]

_COMMANDS = {
    "model_optimization_config",
    "model_optimization_flavor",
    "quantization_param",
    "pre_quantization_optimization",
    "post_quantization_optimization",
    "performance_param",
    "allocator_param",
    "resources_param",
    "context_switch_param",
    "compilation_param",
    "buffers",
    "normalization",
    "input_conversion",
    "resize",
    "format_conversion",
    "change_output_activation",
    "nms_postprocess",
    "logits_layer",
    "remove_node",
    "transpose",
    "set_seed",
}
_LINE = re.compile(r"(?:(?P<assign>[A-Za-z_]\w*)\s*=\s*)?(?P<cmd>[a-z_]+)\((?P<args>.*)\)", re.S)
_TOKEN = re.compile(r"[A-Za-z0-9_./*?\-\[\]]+")


@dataclass
class ScriptConfig:
    """What the fake optimizer honours from a script (later commands win per layer)."""

    negative_exponent: set[str] = field(default_factory=set)
    bits: dict[str, int] = field(default_factory=dict)
    clipping: dict[str, tuple[str, float, float]] = field(default_factory=dict)
    avgpool_reduction: dict[str, list[int]] = field(default_factory=dict)  # layer -> division_factors
    calibset_size: int = 64
    batch_size: int = 8
    optimization_level: int = 2
    compression_level: int = 1
    checker: str | None = None  # model_optimization_config(checker_cfg, policy=enabled|disabled); None: the default
    other: list[str] = field(default_factory=list)


def _split(args: str) -> list[str]:
    parts, depth, cur = [], 0, ""
    for ch in args:
        if ch in "[{(":
            depth += 1
        elif ch in "]})":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append(cur.strip())
            cur = ""
        else:
            cur += ch
    if cur.strip():
        parts.append(cur.strip())
    return parts


def _fail(line: str) -> BackendScriptParserException:
    return BackendScriptParserException(f"Parsing failed at:\n>!<{line}")


def _commands(text: str) -> list[str]:
    out, cur, depth = [], "", 0
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        cur = f"{cur} {line}".strip() if cur else line
        depth += line.count("(") + line.count("[") + line.count("{")
        depth -= line.count(")") + line.count("]") + line.count("}")
        if depth <= 0:
            out.append(cur)
            cur, depth = "", 0
    if cur:
        out.append(cur)
    return out


class _Layers:
    def __init__(self, net: str, names: list[str]) -> None:
        self.net = net
        self.names = names

    def resolve(self, spec: str, line: str) -> list[str]:
        spec = spec.strip()
        if spec.startswith("{") and spec.endswith("}"):
            pattern = spec[1:-1].strip()
            full = pattern if "/" in pattern else f"{self.net}/{pattern}"
            hits = [n for n in self.names if fnmatch.fnmatchcase(n, full)]
            if not hits:
                raise BackendScriptParserException(f"Layer {pattern} not found in model")
            return hits
        if spec.startswith("[") and spec.endswith("]"):
            return [n for item in _split(spec[1:-1]) for n in self.resolve(item, line)]
        if not _TOKEN.fullmatch(spec) or any(c in spec for c in "*?[]"):
            raise _fail(line)
        full = spec if "/" in spec else f"{self.net}/{spec}"
        if full not in self.names:
            raise BackendScriptParserException(f"Layer {spec} not found in model")
        return [full]


def _number(value: str, line: str) -> float:
    try:
        return float(value)
    except ValueError:
        raise _fail(line) from None


def parse_script(text: str, net: str, layer_names: list[str], into: ScriptConfig | None = None) -> ScriptConfig:
    """Parse ``text``; raise on syntax errors and unknown layers; return the accumulated config."""
    cfg = into if into is not None else ScriptConfig()
    layers = _Layers(net, layer_names)
    for line in _commands(text):
        m = _LINE.fullmatch(line)
        if m is None or m.group("cmd") not in _COMMANDS:
            raise _fail(line)
        cmd, args = m.group("cmd"), _split(m.group("args"))
        pos = [a for a in args if "=" not in a]
        kw: dict[str, Any] = {}
        for a in args:
            if "=" in a:
                k, v = (s.strip() for s in a.split("=", 1))
                if not re.fullmatch(r"[a-z_0-9]+", k):
                    raise _fail(line)
                kw[k] = v
        if cmd == "model_optimization_config" and pos[:1] == ["negative_exponent"]:
            cfg.negative_exponent.update(layers.resolve(kw.get("layers", "{*}"), line))
        elif cmd == "model_optimization_config" and pos[:1] == ["calibration"]:
            cfg.batch_size = int(_number(kw.get("batch_size", str(cfg.batch_size)), line))
            cfg.calibset_size = int(_number(kw.get("calibset_size", str(cfg.calibset_size)), line))
        elif cmd == "model_optimization_config" and pos[:1] == ["checker_cfg"]:
            policy = kw.get("policy", "enabled")
            if policy not in ("enabled", "disabled"):
                raise _fail(line)
            cfg.checker = policy
        elif cmd == "model_optimization_flavor":
            cfg.optimization_level = int(_number(kw.get("optimization_level", str(cfg.optimization_level)), line))
            cfg.compression_level = int(_number(kw.get("compression_level", str(cfg.compression_level)), line))
        elif cmd == "quantization_param":
            if not pos:
                raise _fail(line)
            targets = layers.resolve(pos[0], line)
            mode = kw.get("precision_mode")
            if mode is not None:
                bits = re.fullmatch(r"a(8|16)_w(4|8|16)(?:_a(8|16))?", mode)
                if bits is None:
                    raise _fail(line)
                for t in targets:
                    cfg.bits[t] = int(bits.group(1))
        elif cmd == "pre_quantization_optimization" and pos[:1] == ["global_avgpool_reduction"]:
            # pre_quantization_optimization(global_avgpool_reduction, layers=[...], division_factors=[a, b]) [C syntax]
            targets = layers.resolve(kw.get("layers", "{*}"), line)
            raw = kw.get("division_factors", "[]").strip()
            if not (raw.startswith("[") and raw.endswith("]")):
                raise _fail(line)
            factors = [int(_number(v, line)) for v in _split(raw[1:-1])]
            if not factors or any(f < 1 for f in factors):
                raise _fail(line)
            for t in targets:
                cfg.avgpool_reduction[t] = factors
        elif cmd == "pre_quantization_optimization" and pos[:1] == ["activation_clipping"]:
            mode = kw.get("mode", "percentile")
            targets = layers.resolve(kw.get("layers", "{*}"), line)
            if mode == "disabled":
                for t in targets:
                    cfg.clipping.pop(t, None)
                continue
            values = _split(kw.get("clipping_values", "[]").strip("[]"))
            if mode not in ("percentile", "percentile_force", "manual") or len(values) != 2:
                raise _fail(line)
            lo, hi = (_number(v, line) for v in values)
            for t in targets:
                cfg.clipping[t] = ("manual" if mode == "manual" else "percentile", lo, hi)
        else:
            cfg.other.append(line)
    return cfg
