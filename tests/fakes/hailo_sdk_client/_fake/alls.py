"""A strict model-script (.alls) parser for the fake (dfc_api.md §2).

[C]: one command per line, ``#`` comments, ``name = command(args)`` for model modifications, bracketed
arguments may span lines, layer lists ``[a, b]``, glob sets ``{conv*}``, bare names scoped to the net
automatically, fully scoped ``<net>/<layer>`` names.
[T]: a malformed line raises ``BackendScriptParserException`` "Parsing failed at: >!<…"; a layer the model does
not have raises "Layer … not found in model" (HD ``issues.md``). Honoured: ``negative_exponent``,
``calibration``, ``checker_cfg``, ``model_optimization_flavor``, ``quantization_param(precision_mode=)``,
``activation_clipping`` and ``global_avgpool_reduction`` (``layers=[…], division_factors=[a, b]``); other commands
are syntax-checked and ignored [I]. The exception class of the latter is a guess
[I] (the script parser's class), as is raising it at load time rather than at ``optimize()``.

Compiler (allocator) commands ``performance_param`` / ``resources_param`` / ``context_switch_param`` /
``allocator_param``: keyword arguments only, with the keys Hailo's model-zoo scripts use (``cfg/alls/``, [C]; see
``docs/allocator_levers.md``) and checked values for the levers hefsweep writes (``compiler_optimization_level`` 0 /
1 / 2 / max, utilizations >= 0, ``mode`` enabled / disabled / allowed, timeouts as seconds or ``<n>m`` / ``<n>h``).
A key outside those lists, a positional argument or a bad value is a malformed line [I] (the real parser's reaction
to a misspelt allocator key is not public). They are recorded in :attr:`ScriptConfig.compiler` and have **no
effect** on the fake's allocation: what they do on the real allocator is not public [I].
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
#: Keyword arguments of the compiler commands as MZ ``cfg/alls/*.alls`` (c83fc03) spell them [C].
_COMPILER_KEYS: dict[str, frozenset[str]] = {
    "performance_param": frozenset(
        {"compiler_optimization_level", "optimize_for_batch", "optimize_for_power", "optimization_level", "fps"}
    ),
    "resources_param": frozenset(
        {"max_utilization", "max_compute_utilization", "max_control_utilization", "max_memory_utilization",
         "max_compute_16bit_utilization", "max_input_aligner_utilization", "max_apu_utilization", "strategy"}
    ),  # fmt: skip
    "context_switch_param": frozenset(
        {"mode", "toposort_mode", "slotter_chances", "auto_partition_to_buckets", "share_buckets_partition",
         "berkitizer_min_size", "berkitizer_bucket_size", "allow_auto_merge_in_multicontext"}
    ),  # fmt: skip  (the last key: a public caller, not MZ)
    "allocator_param": frozenset(
        {"automatic_reshapes", "enable_auto_spatial_reshapes", "enable_partial_row_buffers", "automatic_ddr",
         "width_splitter_defuse", "spatial_defuse_legacy", "timeout", "enable_fixer",
         "enable_post_split_average_buffers", "enable_auto_spatial_collapse", "optimize_pipeline_stoppage",
         "disable_row_per_cut", "merge_min_layer_utilization", "max_auto_defuse", "enable_muxer", "splitter_timeout",
         "enable_lcu_ecc", "cluster_timeout", "automatic_l4_portals", "validate", "seed", "ppu_reshape_slack",
         "max_auto_merge_depth", "input_layer_max_successors", "fps_ratio_impact", "enable_swapper",
         "enable_single_buffer_for_feasibility", "enable_lanes", "enable_hw_padding", "enable_defuse_with_slack",
         "enable_collapser", "enable_axis_upsize", "enable_automatic_offdevice_outputs",
         "enable_automatic_features_chunks", "defuse_by_validator", "calculate_power", "automatic_resize_reshapes",
         "automatic_l4_portals_l3_cuts_threshold", "automatic_ddr_l3_cuts_threshold", "auto_split_const_inputs",
         "force_map_on_mirror", "strategy", "run_format_fixer", "enable_automatic_join"}
    ),  # fmt: skip
}
_TIMEOUT = re.compile(r"\d+[smh]?")
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
    compiler: dict[str, dict[str, str]] = field(default_factory=dict)  # command -> key -> value (no effect [I])
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


def _compiler(cmd: str, pos: list[str], kw: dict[str, str], line: str) -> dict[str, str]:
    """Check a compiler command's arguments (see the module docstring); return its keyword arguments."""
    if pos or not kw or set(kw) - _COMPILER_KEYS[cmd]:
        raise _fail(line)
    for key, value in kw.items():
        if key == "compiler_optimization_level" and value not in ("0", "1", "2", "max"):
            raise _fail(line)
        if key.endswith("utilization") and _number(value, line) < 0:
            raise _fail(line)
        if cmd == "context_switch_param" and key == "mode" and value not in ("enabled", "disabled", "allowed"):
            raise _fail(line)
        if key.endswith("timeout") and not _TIMEOUT.fullmatch(value):
            raise _fail(line)
    return kw


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
        elif cmd in _COMPILER_KEYS:
            cfg.compiler.setdefault(cmd, {}).update(_compiler(cmd, pos, kw, line))
        else:
            cfg.other.append(line)
    return cfg
