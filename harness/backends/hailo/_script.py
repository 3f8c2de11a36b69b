"""Model-script (``.alls``) generation from an override set and quantization settings.

Every command and keyword below is the form seen in Hailo's own model scripts (dfc_api.md §2, evidence [C]
unless noted):

- ``model_optimization_flavor(optimization_level=N, compression_level=M)`` (§2.3);
- ``model_optimization_config(calibration, batch_size=B, calibset_size=N)`` (§2.4);
- ``model_optimization_config(negative_exponent, layers=[...], rank=0)`` (§2.5; ``rank=0`` is the only value
  Hailo uses, its meaning is undocumented);
- ``quantization_param([...], precision_mode=a16_w16)`` (§2.6);
- ``pre_quantization_optimization(activation_clipping, layers=[...], mode=percentile, clipping_values=[lo, hi])``
  (§2.7);
- ``model_optimization_config(checker_cfg, policy=enabled|disabled)`` (§2.4): the layer noise analysis that runs
  inside ``optimize()`` (hefsweep's per-layer noise table; HD disabled it to save memory [T]);
- ``pre_quantization_optimization(global_avgpool_reduction, layers=[avgpool1, avgpool10], division_factors=[2, 2])``
  (§2.7, §11; MZ ``paddle_ocr_v5_mobile_detection.alls``, ``stdc1.alls``) [C] syntax, [T] effect (a user cleared
  ``NegativeSlopeExponentNonFixable`` on a large avgpool with it). The meaning of the two factors is not public;
  MZ only shows ``[2, 2]`` on 2-D pools. hefsweep reads them as (H, W) factors [I]: Conv-TasNet's GlobLN pools are
  ``H = 1`` and average over W (kernel ``[1, 1, 1999, 1]`` in the real HN), so an override value ``k`` is written
  ``division_factors=[1, k]``; an explicit pair ``"a,b"`` (or ``(a, b)`` in code) is written as given.
- compiler (allocator) levers, one line per command after the optimizer lines, in the forms of MZ ``cfg/alls/``
  (``docs/allocator_levers.md``, [C] syntax, effect not public): ``performance_param(compiler_optimization_level=
  max)``; ``resources_param(max_compute_utilization=0.8, max_control_utilization=0.8, max_memory_utilization=0.8)``;
  ``context_switch_param(mode=enabled)``; ``allocator_param(timeout=25m)`` / ``allocator_param(timeout=43200)``.
  Values are checked and formatted by :func:`harness.backends._overrides.lever_args`; a later override of the same
  kind replaces an earlier one. They are also kept apart (:attr:`ModelScript.compiler_lines`) for a caller that
  re-loads them before ``compile()``, as MZ ``compile_model`` does with its allocator script [C].

Layer arguments are explicit lists ``[convtas/avgpool2, ...]`` of validated scoped HN names. A list of at least
:data:`GLOB_SET_MIN` names that is *exactly* the set of HN layers whose bare names start with one identifier
prefix is written as the glob set ``{<prefix>*}`` (``{*}`` for every layer), the idiom of Hailo's own scripts
(§2.2 [C]: ``{conv*}``, ``{ew_add*}``, ``{*}``): ``type:avgpool`` on the real HN is ``{avgpool*}``, not 98 names,
while the 49 ``role:gln_var_pool`` pools (``avgpool2``, ``avgpool4``, ...) stay a list because ``avgpool*`` would
also take the mean pools. Shorter lists stay explicit, as in HD's scripts [T], so a small override is auditable
name by name in the ``.alls``. Bare globs are written only for a single-scope HN (the DFC scopes them to the net).

Safety: script text is never built from user input. Override patterns are first resolved against the HN
(:func:`~harness.backends.hailo._layers.match_patterns`, which raises
:class:`~harness.backends.OverrideTargetNotFound`), and only the resulting HN names -- each checked against a
strict ``[net/]identifier`` pattern -- and numbers formatted here enter the text. A glob set's prefix is the common
prefix of such checked names, must itself be an identifier, and is written only when it selects exactly the
resolved names. An override that cannot be validated therefore never reaches ``load_model_script``.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.backends._overrides import LEVER_KINDS, LeverValueError, lever_args
from harness.backends._protocol import Override, OverrideSet, QuantSettings
from harness.backends.hailo._layers import LayerTable, bare_name, match_patterns
from harness.errors import ConfigError

__all__ = ["DEFAULT_BATCH_SIZE", "GLOB_SET_MIN", "ModelScript", "build_script", "lever_lines", "safe_layer_name"]

#: The DFC's default calibration batch size (dfc_api.md §2.8: ``DEFAULT_BATCH_SIZE`` is 8) [T].
DEFAULT_BATCH_SIZE = 8

#: A layer list this long or longer is written as a glob set when one covers it exactly (see the module docstring).
GLOB_SET_MIN = 16

_PREFIX = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_FACTOR_PAIR = re.compile(r"\s*(\d{1,4})\s*[,x]\s*(\d{1,4})\s*")
_MAX_FACTOR = 256
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:/[A-Za-z_][A-Za-z0-9_]*)?")
_OPT_LEVELS = range(0, 5)  # MZ uses 0-4 (§2.3) [C]
_COMP_LEVELS = range(0, 6)  # MZ uses 0-5 (§2.3) [C]


@dataclass(frozen=True)
class ModelScript:
    """A generated model script and what it does.

    Attributes:
        text: The ``.alls`` text (newline-terminated).
        applied: One human-readable line per override or setting that entered the script.
        ignored: Settings the DFC has no model-script equivalent for, with the reason.
        negative_exponent: HN layers given ``negative_exponent``.
        precision16: HN layers set to 16-bit (``a16_w16``), not counting a global ``{*}``.
        clipped: HN layers with activation clipping, not counting a global ``{*}``.
        avgpool_reduction: HN layers given ``global_avgpool_reduction``.
        division_factors: The ``division_factors`` written for them (one pair per override, in order).
        compiler_lines: The compiler (allocator) lever lines, as written at the end of ``text``.
    """

    text: str
    applied: tuple[str, ...] = ()
    ignored: tuple[str, ...] = ()
    negative_exponent: tuple[str, ...] = ()
    precision16: tuple[str, ...] = ()
    clipped: tuple[str, ...] = ()
    avgpool_reduction: tuple[str, ...] = ()
    division_factors: tuple[tuple[int, int], ...] = ()
    compiler_lines: tuple[str, ...] = ()

    def write(self, path: Path) -> Path:
        """Write the text to ``path`` and return it."""
        path.write_text(self.text)
        return path

    def info(self) -> dict[str, Any]:
        """JSON-serialisable facts for :attr:`Optimized.info`."""
        return {
            "negative_exponent_layers": list(self.negative_exponent),
            "precision16_layers": list(self.precision16),
            "clipped_layers": list(self.clipped),
            "global_avgpool_reduction_layers": list(self.avgpool_reduction),
            "global_avgpool_reduction_factors": [list(f) for f in self.division_factors],
            "compiler_levers": list(self.compiler_lines),
        }


def safe_layer_name(name: str) -> str:
    """Return ``name`` if it may appear in a model script.

    Raises:
        ConfigError: ``name`` is not ``identifier`` or ``net/identifier`` (quotes, brackets, newlines, globs ...).
    """
    if not _NAME.fullmatch(name):
        raise ConfigError(f"layer {name!r}", "a name the model script cannot carry safely", "[net/]identifier")
    return name


def _num(value: float) -> str:
    if not math.isfinite(value):
        raise ConfigError("model script number", repr(value), "a finite number")
    text = f"{value:.6f}".rstrip("0").rstrip(".")
    return text if text not in ("", "-0") else "0"


def _list(names: Sequence[str]) -> str:
    return "[" + ", ".join(safe_layer_name(n) for n in names) + "]"


def _glob_set(names: Sequence[str], all_names: Sequence[str]) -> str | None:
    """``{<prefix>*}`` / ``{*}`` when it selects exactly ``names`` among ``all_names``, else None."""
    chosen = set(names)
    if len(chosen) < GLOB_SET_MIN or len({n.rsplit("/", 1)[0] for n in all_names if "/" in n}) > 1:
        return None
    if chosen == set(all_names):
        return "{*}"
    prefix = os.path.commonprefix([bare_name(n) for n in chosen])
    if not _PREFIX.fullmatch(prefix):
        return None
    if {n for n in all_names if bare_name(n).startswith(prefix)} != chosen:
        return None
    return "{" + prefix + "*}"


def _layers_arg(names: Sequence[str], all_names: Sequence[str]) -> str:
    """The layer argument for ``names``: every name is checked first, then a glob set or the explicit list."""
    text = _list(names)  # raises on any unsafe name, also when a glob set is written instead
    return _glob_set(names, all_names) or text


def _factors(ov: Override) -> tuple[int, int]:
    """``global_avgpool_reduction``'s value -> ``division_factors`` (H, W) [I]: ``k`` -> ``(1, k)``; ``"a,b"``."""
    v: Any = 2 if ov.value is None else ov.value
    pair: tuple[Any, Any]
    if isinstance(v, str) and (m := _FACTOR_PAIR.fullmatch(v)):
        pair = (int(m.group(1)), int(m.group(2)))
    elif isinstance(v, tuple | list) and len(v) == 2:
        pair = (v[0], v[1])
    else:
        pair = (1, v)
    ok = all(
        not isinstance(f, bool) and isinstance(f, int | float) and int(f) == f and 1 <= f <= _MAX_FACTOR for f in pair
    )
    if not ok or pair == (1, 1):
        raise ConfigError(
            f"override {ov.kind}",
            repr(ov.value),
            f"a division factor k in [2, {_MAX_FACTOR}] (written [1, k]: the pools' W) or a pair 'a,b' of positive "
            "integers, not both 1",
        )
    return int(pair[0]), int(pair[1])


def _level(ov: Override, allowed: range) -> int:
    v = ov.value
    if isinstance(v, bool) or not isinstance(v, int | float) or int(v) != v or int(v) not in allowed:
        raise ConfigError(f"override {ov.kind}", repr(v), f"an integer in [{allowed.start}, {allowed.stop - 1}]")
    return int(v)


def _percentile(ov_or_value: Any, what: str) -> float:
    v = ov_or_value
    if isinstance(v, bool) or not isinstance(v, int | float) or not 50.0 < float(v) <= 100.0:
        raise ConfigError(what, repr(v), "a percentile in (50, 100], e.g. 99.99")
    return float(v)


def build_script(
    overrides: OverrideSet,
    settings: QuantSettings,
    layers: LayerTable,
    *,
    calibset_size: int,
    batch_size: int | None = None,
    layer_noise: str = "default",
) -> ModelScript:
    """Build the model script for one trial.

    Args:
        overrides: The trial's override set (patterns over HN layer names, see :func:`match_patterns`).
        settings: Backend-neutral quantization settings (method, default bit widths ...).
        layers: The HN layers (``get_hn_dict()["layers"]``, or only their names).
        calibset_size: Number of calibration samples handed to ``optimize()``.
        batch_size: Calibration batch size; default ``min(8, calibset_size)``.
        layer_noise: ``enabled`` / ``disabled`` write ``checker_cfg``'s policy; ``default`` leaves it to the DFC.

    Returns:
        The :class:`ModelScript`. Nothing is written.

    Raises:
        OverrideTargetNotFound: an override pattern matches no HN layer (raised before any text exists).
        ConfigError: an override value is out of range, or a layer name is unsafe.
    """
    if calibset_size < 1:
        raise ConfigError("calibration set", f"{calibset_size} samples", "at least 1 sample")
    batch = batch_size if batch_size is not None else min(DEFAULT_BATCH_SIZE, calibset_size)
    resolved = match_patterns([p for ov in overrides.overrides for p in (ov.layers or ("*",))], layers)
    all_names = list(layers.keys()) if isinstance(layers, Mapping) else list(layers)

    def targets(ov: Override) -> list[str]:
        return list(dict.fromkeys(n for p in (ov.layers or ("*",)) for n in resolved[p]))

    flavor: dict[str, int] = {}
    body: list[str] = []
    applied: list[str] = []
    ignored: list[str] = []
    negexp: list[str] = []
    p16: list[str] = []
    clipped: list[str] = []
    reduced: list[str] = []
    factors: list[tuple[int, int]] = []
    levers: dict[str, str] = {}  # command -> its line; a later override of the same kind replaces an earlier one

    def arg(names: list[str]) -> str:
        return _layers_arg(names, all_names)

    def where(ov: Override, names: list[str], text: str) -> str:
        return f"{len(names)} layers ({', '.join(ov.layers) or '*'}{' as ' + text if text.startswith('{') else ''})"

    # Backend-neutral settings first, so that per-layer overrides below take precedence.
    if settings.method == "percentile":
        p = _percentile(settings.percentile, "settings.percentile")
        body.append(
            "pre_quantization_optimization(activation_clipping, layers={*}, mode=percentile, "
            f"clipping_values=[{_num(100.0 - p)}, {_num(p)}])"
        )
        applied.append(f"percentile calibration: activation clipping at [{_num(100.0 - p)}, {_num(p)}] on all layers")
    elif settings.method == "minmax":
        applied.append("minmax calibration: the DFC's default statistics (no model-script command needed)")
    elif settings.method == "entropy":
        ignored.append("method=entropy: no public DFC model-script equivalent; the DFC's default statistics are used")
    if settings.activation_bits == 16:
        mode = "a16_w16" if settings.weight_bits == 16 else "a16_w8"
        body.append(f"quantization_param({{*}}, precision_mode={mode})")
        applied.append(f"{mode} on all layers")
    elif settings.weight_bits == 16:
        ignored.append("weight_bits=16 with 8-bit activations: no such DFC precision mode (a8_w16)")
    if not settings.per_channel:
        ignored.append("per_channel=False: the DFC chooses weight quantization granularity itself")

    for ov in overrides.overrides:
        if ov.kind == "optimization_level":
            flavor["optimization_level"] = _level(ov, _OPT_LEVELS)
            applied.append(f"optimization_level={flavor['optimization_level']}")
        elif ov.kind == "compression_level":
            flavor["compression_level"] = _level(ov, _COMP_LEVELS)
            applied.append(f"compression_level={flavor['compression_level']}")
        elif ov.kind == "negative_exponent":
            names = targets(ov)
            rank = 0 if ov.value is None else _level(ov, range(0, 2))
            text = arg(names)
            body.append(f"model_optimization_config(negative_exponent, layers={text}, rank={rank})")
            negexp += names
            applied.append(f"negative_exponent on {where(ov, names, text)}")
        elif ov.kind == "precision16":
            names = targets(ov)
            text = arg(names)
            body.append(f"quantization_param({text}, precision_mode=a16_w16)")
            p16 += names
            applied.append(f"precision16 on {where(ov, names, text)}")
        elif ov.kind == "activation_clipping":
            names = targets(ov)
            p = _percentile(99.99 if ov.value is None else ov.value, "override activation_clipping value")
            text = arg(names)
            body.append(
                f"pre_quantization_optimization(activation_clipping, layers={text}, mode=percentile, "
                f"clipping_values=[{_num(100.0 - p)}, {_num(p)}])"
            )
            clipped += names
            applied.append(f"activation_clipping at {_num(p)} on {where(ov, names, text)}")
        elif ov.kind == "global_avgpool_reduction":
            names = targets(ov)
            a, b = _factors(ov)
            if isinstance(layers, Mapping):
                other = [n for n in names if str(layers[n].get("type", "")) != "avgpool"]
                if other:
                    shown = ", ".join(other[:3]) + (", ..." if len(other) > 3 else "")
                    raise ConfigError(
                        f"override {ov.kind} on {', '.join(ov.layers) or '*'}",
                        f"{len(other)} matched layers are not avgpool ({shown})",
                        "avgpool layers only (e.g. role:gln_var_pool, role:gln_mean_pool, type:avgpool)",
                    )
            text = arg(names)
            body.append(
                f"pre_quantization_optimization(global_avgpool_reduction, layers={text}, division_factors=[{a}, {b}])"
            )
            reduced += names
            factors.append((a, b))
            applied.append(f"global_avgpool_reduction by [{a}, {b}] on {where(ov, names, text)}")
        elif ov.kind in LEVER_KINDS:
            command, line = _lever_line(ov)
            levers.pop(command, None)
            levers[command] = line
        else:  # pragma: no cover - OverrideKind is a closed Literal
            raise ConfigError(f"override kind {ov.kind!r}", "unknown", "a kind from harness.backends.Override")

    head = []
    if flavor:
        head.append("model_optimization_flavor(" + ", ".join(f"{k}={v}" for k, v in flavor.items()) + ")")
    head.append(f"model_optimization_config(calibration, batch_size={int(batch)}, calibset_size={int(calibset_size)})")
    if layer_noise in ("enabled", "disabled"):
        head.append(f"model_optimization_config(checker_cfg, policy={layer_noise})")
        applied.append(f"layer noise analysis {layer_noise}")
    elif layer_noise != "default":
        raise ConfigError("backend option layer_noise", repr(layer_noise), "one of 'default', 'enabled', 'disabled'")
    applied += [f"compiler lever {line}" for line in levers.values()]
    return ModelScript(
        text="\n".join(head + body + list(levers.values())) + "\n",
        applied=tuple(applied),
        ignored=tuple(ignored),
        negative_exponent=tuple(dict.fromkeys(negexp)),
        precision16=tuple(dict.fromkeys(p16)),
        clipped=tuple(dict.fromkeys(clipped)),
        avgpool_reduction=tuple(dict.fromkeys(reduced)),
        division_factors=tuple(factors),
        compiler_lines=tuple(levers.values()),
    )


def _lever_line(ov: Override) -> tuple[str, str]:
    """(command, model-script line) of one compiler lever override."""
    if ov.layers:
        raise ConfigError(f"override {ov.kind}", f"layers {list(ov.layers)}", "none (a global compiler lever)")
    try:
        text = lever_args(ov.kind, ov.value)
    except LeverValueError:
        raise ConfigError(f"override {ov.kind}", repr(ov.value), LEVER_KINDS[ov.kind][1]) from None
    command = LEVER_KINDS[ov.kind][0]
    return command, f"{command}({text})"


def lever_lines(overrides: OverrideSet) -> tuple[str, ...]:
    """The compiler lever lines of an override set, one per command (a later override of a kind replaces an earlier
    one), in the order written by :func:`build_script`; its other kinds are not compile-side and are skipped."""
    levers: dict[str, str] = {}
    for ov in overrides.overrides:
        if ov.kind in LEVER_KINDS:
            command, line = _lever_line(ov)
            levers.pop(command, None)
            levers[command] = line
    return tuple(levers.values())
