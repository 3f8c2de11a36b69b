"""Layer identity: any layer name the DFC uses -> an HN layer -> the ONNX node(s) it came from.

The DFC names layers in three ways (dfc_api.md §2.2, §2.5, §6):

- scoped HN keys, ``convtas/avgpool6`` (the keys of ``get_hn_dict()["layers"]``) [C];
- bare HN names, ``avgpool6``, which model scripts scope automatically [C];
- names the optimizer or allocator invents while working: ``convtas/ne_activation_avgpool6`` [T],
  ``auto_spatial_reshape_from_dw66_to_conv69_…`` [T]. These are *not* HN layers, so a model script naming one
  fails on the next run with "Layer … not found in model" (HD ``issues.md``) -- the bug this module prevents.

Messages from the parser name ONNX nodes instead (``/model.23/GatherElements``); HN layers list those in
``original_names`` [C]. :func:`resolve_layer` maps any of these to one HN layer (or says why it cannot, with
the nearest names); :func:`match_patterns` resolves override patterns strictly against the HN.

Allocator messages add suffixes to HN names: ``conv5_dc``, ``<net>/conv215_dc``, ``resize1_sd0`` [T]
(``/work/shared/real_dfc/README.md``, public reports); :func:`resolve_layer` strips them (``invented:alloc_suffix``).
The suffix form ``_<1-3 letters><digits?>`` beyond ``_dc`` / ``_sd<N>`` is a guess [I].

Selectors
---------
An override pattern is a glob over layer names (above), or a selector resolved on the translated HN's graph, so
one override set means the same on every export variant (bare names like ``avgpool6`` shift when the export
changes):

- ``type:<glob>``: layers whose HN ``type`` matches, e.g. ``type:avgpool``, ``type:ew_*``;
- ``role:<name>``: the layers playing a role in Conv-TasNet, defined from the graph structure (types, params
  and edges), never from names. Evidence: the HN DFC 3.33 produced from a real Conv-TasNet
  (``/work/shared/real_dfc/real_hn.json``, 1179 layers) [C]; counts below are on that HN (24 blocks, 49 GlobLNs,
  49 PReLUs written as Max/Min).

  ====================  ==================================================================================  =====
  role                  definition                                                                          count
  ====================  ==================================================================================  =====
  ``gln_var_pool``      ``avgpool`` fed by a square: a ``feature_multiplier`` with                             49
                        ``feature_multiplier_type`` ``square`` (or none given; ONNX ``Pow``) -- the GlobLN
                        variance pool; ``convtas/avgpool6`` (input ``square3``) is the seed's failing layer
  ``gln_mean_pool``     ``avgpool`` not fed by a square whose output feeds a ``reduce_mean`` -- the GlobLN      49
                        time mean (the pool averages over W, the ``reduce_mean`` over C)
  ``gln_stats``         both GlobLN pools and the ``reduce_mean`` layers they feed                            196
  ``norm_stats``        ``gln_stats`` plus the channel-only statistics of a cLN: a ``reduce_mean`` fed by a   196
                        square, or whose value (through ``resize``) is subtracted by an ``ew_sub`` that feeds
                        a square
  ``norm_rsqrt``        ``activation`` with ``activation: inv_sqrt`` (ONNX ``Sqrt`` + ``Div`` fused)             49
  ``norm_out``          ``normalization`` (gamma*x+beta) whose input is an ``ew_mult`` scaled by a            49
                        ``norm_rsqrt`` (directly or through ``resize``) -- the end of a GlobLN/cLN chain. The
                        ``normalization`` layers of a PReLU (negations, ``mul_and_add<n>``) are fed by a
                        ``concat``, a ``reduce_max`` or another ``normalization``, never by such an ``ew_mult``
  ``prelu``             PReLU as max/min: each ``concat`` of a ``const_input`` with the PReLU input x, the    490
                        ``reduce_max`` / ``normalization`` chain after it (max half: ``reduce_max``; min half:
                        negate, ``reduce_max``, negate, slope ``mul_and_add``) and the ``ew_add`` where both
                        halves meet (10 layers per PReLU)
  ``mask``              the mask multiply (the ``ew_mult`` the decoder reads, through single-input layers)      2
                        and, on its mask input, ``activation`` layers and the conv before them (here
                        ``conv74`` with a fused ReLU, and ``ew_mult50``); the other input is the encoder
                        output (through ``shortcut``/``concat``: the ``cat([w] * n_src)``)
  ``decoder``           the single-input layers between the mask multiply and an output layer              1
                        (``deconv1``); with no mask multiply, the ``deconv`` layers on that chain, else
                        its last weight layer
  ``encoder``           the first weight layer (conv/dw/deconv/dense) after an input layer (``conv1``)          1
  ``io``                ``input_layer`` and ``output_layer`` layers                                             2
  ====================  ==================================================================================  =====

  On an HN whose norms are cLN (statistics over C only: ``reduce_mean`` layers, no time ``avgpool``) the
  ``gln_*`` roles match nothing; ``norm_stats``, ``norm_rsqrt`` and ``norm_out`` still do. The cLN lowering is
  inferred [I] from the gLN one (the ``reduce_mean`` over C in the real HN); no real cLN HN is public.

A selector that matches nothing raises :class:`~harness.backends.OverrideTargetNotFound` listing the roles and
types this HN does have. Selectors need the HN dict (``type``, ``input``, ``output``); on a names-only table they
match nothing.
"""

from __future__ import annotations

import difflib
import fnmatch
import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from harness.backends._overrides import OverrideTargetNotFound
from harness.errors import ConfigError

__all__ = [
    "ROLES",
    "SELECTORS",
    "LayerRef",
    "LayerTable",
    "bare_name",
    "layer_map",
    "layer_roles",
    "layer_types",
    "match_patterns",
    "resolve_layer",
    "roles_of",
]

#: HN layers: the ``get_hn_dict()["layers"]`` mapping (with ``original_names``) or just the scoped names.
LayerTable = Mapping[str, Mapping[str, Any]] | Sequence[str]

#: Selector prefixes inside override patterns (see the module docstring).
SELECTORS = ("type:", "role:")

#: Role name -> one-line definition (the full definitions and counts are in the module docstring).
ROLES: dict[str, str] = {
    "gln_mean_pool": "GlobLN time-mean avgpool (not fed by a square, feeds a reduce_mean)",
    "gln_var_pool": "GlobLN variance avgpool (fed by a square feature_multiplier)",
    "gln_stats": "both GlobLN pools and their reduce_means",
    "norm_stats": "GlobLN and cLN statistics (pools and reduce_means of a norm)",
    "norm_rsqrt": "the inv_sqrt activation of a norm",
    "norm_out": "the normalization (gamma*x+beta) ending a GlobLN/cLN",
    "prelu": "the const_input/concat/reduce_max/normalization/ew_add layers of a PReLU as max/min",
    "mask": "the mask conv, its activation and the ew_mult applying the mask",
    "decoder": "the deconv / decoder layers between the mask multiply and the output",
    "encoder": "the first weight layer after the input",
    "io": "input and output layers",
}

#: Names invented around an HN layer name. ``ne_activation_`` is seen in DFC messages [T] (dfc_api.md §2.5, §6);
#: ``auto_spatial_reshape_from_<a>_to_<b>`` in allocator logs [T] (HD NEXT_AGENT_FEB_22.md) -- the producer
#: ``<a>`` is taken as the layer; allocator suffixes ``_dc``, ``_sd<N>`` [T] (real_dfc README), other short
#: ``_<letters><digits>`` suffixes [I].
_INVENTED: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("ne_activation_", re.compile(r"ne_activation_(?P<layer>.+)")),
    ("auto_spatial_reshape_", re.compile(r"auto_spatial_reshape_from_(?P<layer>[a-z_]+?\d+)_to_[a-z_]+?\d+.*")),
    ("alloc_suffix", re.compile(r"(?P<layer>[A-Za-z][A-Za-z_]*?\d+)(?:_(?:dc|sd\d+|[a-z]{1,3}\d*))+")),
)

_WEIGHTS = frozenset({"conv", "dw", "deconv", "dense", "fc"})


@dataclass(frozen=True)
class LayerRef:
    """How one layer name resolved.

    Attributes:
        named: The name as the message (or user) wrote it.
        hn_layer: The scoped HN layer key, or None when unresolved.
        onnx_nodes: The HN layer's ``original_names`` (empty when only names were available).
        via: How it resolved: ``exact``, ``scoped``, ``invented:<prefix>``, ``suffix`` or ``onnx``.
        nearest: For unresolved names, the closest scoped HN names.
    """

    named: str
    hn_layer: str | None
    onnx_nodes: tuple[str, ...] = ()
    via: str = ""
    nearest: tuple[str, ...] = ()

    @property
    def resolved(self) -> bool:
        """Whether an HN layer was found."""
        return self.hn_layer is not None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable form."""
        return {
            "named": self.named,
            "hn_layer": self.hn_layer,
            "onnx_nodes": list(self.onnx_nodes),
            "via": self.via,
            "nearest": list(self.nearest),
        }


def bare_name(name: str) -> str:
    """``convtas/avgpool6`` -> ``avgpool6`` (names without a scope are returned unchanged)."""
    return name.rsplit("/", 1)[-1] if not name.startswith("/") else name


def _names(layers: LayerTable) -> list[str]:
    return list(layers.keys()) if isinstance(layers, Mapping) else list(layers)


def _originals(layers: LayerTable, key: str) -> tuple[str, ...]:
    if isinstance(layers, Mapping):
        return tuple(str(n) for n in layers[key].get("original_names", ()) or ())
    return ()


def _nearest(name: str, names: Sequence[str], n: int = 3) -> tuple[str, ...]:
    by_bare: dict[str, str] = {}
    for full in names:
        by_bare.setdefault(bare_name(full), full)
    hits = difflib.get_close_matches(bare_name(name), list(by_bare), n=n, cutoff=0.3)
    return tuple(by_bare[h] for h in hits)


def _invented(bare: str, by_bare: Mapping[str, str], depth: int = 0) -> tuple[str, str] | None:
    """(HN key, prefix) for a name the DFC invented around an HN layer (``ne_activation_conv5_dc`` too)."""
    for prefix, pattern in _INVENTED:
        m = pattern.fullmatch(bare)
        if not m:
            continue
        inner = m.group("layer")
        if inner in by_bare:
            return by_bare[inner], prefix
        if depth < 2 and (hit := _invented(inner, by_bare, depth + 1)) is not None:
            return hit[0], prefix
    return None


def resolve_layer(name: str, layers: LayerTable) -> LayerRef:
    """Resolve a layer name from a DFC message (or a user) to an HN layer.

    Args:
        name: ``convtas/avgpool6``, ``avgpool6``, ``convtas/ne_activation_avgpool6``, ``conv5_dc``, an ONNX node ...
        layers: The HN layers (the ``get_hn_dict()["layers"]`` mapping, or the scoped names only).

    Returns:
        The :class:`LayerRef`; ``hn_layer`` is None (and ``nearest`` filled) when nothing matches.
    """
    named = name.strip().strip("'\"")
    names = _names(layers)
    by_bare: dict[str, str] = {}
    for full in names:
        by_bare.setdefault(bare_name(full), full)

    def ref(key: str, via: str) -> LayerRef:
        return LayerRef(named, key, _originals(layers, key), via)

    if named in names:
        return ref(named, "exact")
    bare = bare_name(named)
    if bare in by_bare:
        return ref(by_bare[bare], "scoped")
    if (hit := _invented(bare, by_bare)) is not None:
        return ref(hit[0], f"invented:{hit[1]}")
    parts = bare.split("_")
    for i in range(1, len(parts)):
        suffix = "_".join(parts[i:])
        if suffix in by_bare:
            return ref(by_bare[suffix], "suffix")
    if isinstance(layers, Mapping):
        for key in names:
            if named in _originals(layers, key):
                return ref(key, "onnx")
    return LayerRef(named, None, (), "", _nearest(named, names))


# -- the HN graph and its roles ------------------------------------------------------------------------------------


class _Graph:
    """Typed edges of an HN layers dict (missing keys read as empty: a names-only or partial table)."""

    def __init__(self, layers: LayerTable) -> None:
        self.order = _names(layers)
        self.layers: Mapping[str, Mapping[str, Any]] = layers if isinstance(layers, Mapping) else {}
        self.index = {n: i for i, n in enumerate(self.order)}

    def type(self, n: str) -> str:
        return str(self.layers.get(n, {}).get("type", ""))

    def params(self, n: str) -> Mapping[str, Any]:
        p = self.layers.get(n, {}).get("params")
        return p if isinstance(p, Mapping) else {}

    def ins(self, n: str) -> list[str]:
        return [str(x) for x in self.layers.get(n, {}).get("input", ()) or () if str(x) in self.index]

    def outs(self, n: str) -> list[str]:
        return [str(x) for x in self.layers.get(n, {}).get("output", ()) or () if str(x) in self.index]

    def of_type(self, *types: str) -> list[str]:
        return [n for n in self.order if self.type(n) in types]

    def is_square(self, n: str) -> bool:
        if self.type(n) == "ew_mult":  # x * x [I]
            ins = self.layers.get(n, {}).get("input", ()) or ()
            return len(ins) == 2 and ins[0] == ins[1]
        kind = self.params(n).get("feature_multiplier_type", "square")
        return self.type(n) == "feature_multiplier" and kind == "square"

    def is_rsqrt(self, n: str) -> bool:
        return self.type(n) == "activation" and self.params(n).get("activation") == "inv_sqrt"

    def back_through(self, n: str, skip: str) -> list[str]:
        """The inputs of ``n``, looking through layers of type ``skip`` (e.g. the ``resize`` broadcasts)."""
        out, todo, seen = [], list(self.ins(n)), set()
        while todo:
            x = todo.pop()
            if x in seen:
                continue
            seen.add(x)
            if self.type(x) == skip:
                todo.extend(self.ins(x))
            else:
                out.append(x)
        return out

    def nonlinear(self, n: str) -> bool:
        return self.type(n) == "activation" or self.params(n).get("activation", "linear") not in ("linear", None)

    def sort(self, names: Iterable[str]) -> tuple[str, ...]:
        return tuple(sorted(set(names), key=self.index.__getitem__))


def _prelu(g: _Graph) -> set[str]:
    """The layers of every PReLU written as max/min (see the module docstring)."""
    halves: dict[str, list[tuple[str, set[str]]]] = {}  # the ew_add both halves of one PReLU reach -> halves
    for c in g.of_type("concat"):
        consts = [x for x in g.ins(c) if g.type(x) == "const_input"]
        if len(consts) != 1 or len(g.ins(c)) != 2:
            continue
        (x,) = [i for i in g.ins(c) if i not in consts]
        group, cur = {c, *consts}, c
        for _ in range(8):
            nxt = g.outs(cur)
            if len(nxt) != 1:
                break
            cur = nxt[0]
            if g.type(cur) == "ew_add":
                halves.setdefault(cur, []).append((x, group))
                break
            if g.type(cur) not in ("reduce_max", "normalization"):
                break
            group.add(cur)
    out: set[str] = set()
    for add, hs in halves.items():
        # a PReLU: two halves of the same input x meet at this ew_add, and they are all it adds
        if len(hs) == 2 and hs[0][0] == hs[1][0] and len(g.ins(add)) == 2:
            out |= hs[0][1] | hs[1][1] | {add}
    return out


def _centres(g: _Graph, pool: str, sources: set[str]) -> bool:
    """Whether ``pool``'s value reaches (through reduce_mean / resize) an ew_sub that subtracts it from a source."""
    todo, seen = list(g.outs(pool)), set()
    while todo:
        x = todo.pop()
        if x in seen or len(seen) > 8:
            continue
        seen.add(x)
        if g.type(x) == "ew_sub" and sources & set(g.ins(x)):
            return True
        if g.type(x) in ("reduce_mean", "resize"):
            todo.extend(g.outs(x))
    return False


def _encoder_side(g: _Graph, n: str, encoders: set[str], depth: int = 0) -> bool:
    if n in encoders:
        return True
    if depth > 8 or g.type(n) not in ("shortcut", "concat") or not g.ins(n):
        return False
    return all(_encoder_side(g, i, encoders, depth + 1) for i in g.ins(n))


def _roles(g: _Graph) -> dict[str, set[str]]:
    r: dict[str, set[str]] = {name: set() for name in ROLES}
    pools = g.of_type("avgpool")
    r["gln_var_pool"] = {p for p in pools if any(g.is_square(i) for i in g.ins(p))}
    r["gln_mean_pool"] = {
        p for p in pools if p not in r["gln_var_pool"] and (
            any(g.type(o) == "reduce_mean" for o in g.outs(p)) or _centres(g, p, set(g.ins(p)))
        )
    }  # fmt: skip
    gln_pools = r["gln_var_pool"] | r["gln_mean_pool"]
    r["gln_stats"] = gln_pools | {o for p in gln_pools for o in g.outs(p) if g.type(o) == "reduce_mean"}

    def centring(m: str) -> bool:  # a reduce_mean whose value (through resize) an ew_sub feeding a square subtracts
        subs = [o for o in g.outs(m) if g.type(o) == "ew_sub"]
        for o in g.outs(m):
            while g.type(o) == "resize" and len(g.outs(o)) == 1:
                o = g.outs(o)[0]
            if g.type(o) == "ew_sub":
                subs.append(o)
        return any(g.is_square(s) for sub in subs for s in g.outs(sub))

    cln = {m for m in g.of_type("reduce_mean") if any(g.is_square(i) for i in g.ins(m)) or centring(m)}
    r["norm_stats"] = r["gln_stats"] | cln
    r["norm_rsqrt"] = {a for a in g.of_type("activation") if g.is_rsqrt(a)}
    r["norm_out"] = {
        n for n in g.of_type("normalization")
        if any(g.type(m) == "ew_mult" and any(g.is_rsqrt(x) for x in g.back_through(m, "resize")) for m in g.ins(n))
    }  # fmt: skip
    r["prelu"] = _prelu(g)
    r["io"] = set(g.of_type("input_layer", "output_layer"))

    encoders: set[str] = set()
    for inp in g.of_type("input_layer"):
        cur, seen = inp, set()
        while cur not in seen:
            seen.add(cur)
            nxt = g.outs(cur)
            if not nxt:
                break
            cur = nxt[0]
            if g.type(cur) in _WEIGHTS:
                encoders.add(cur)
                break
            if len(nxt) != 1:
                break
    r["encoder"] = encoders

    chain: list[str] = []
    mults: list[str] = []
    for out in g.of_type("output_layer"):
        todo, seen = list(g.ins(out)), set()
        while todo:
            cur = todo.pop()
            if cur in seen:
                continue
            seen.add(cur)
            ins = g.ins(cur)
            if g.type(cur) == "ew_mult" and len(ins) == 2:
                mults.append(cur)
            elif cur in encoders:
                continue
            elif g.type(cur) == "concat" and len(ins) > 1:
                todo.extend(ins)  # per-source parts (masked encodings, decoders) joined before the output
            elif len(ins) == 1 and g.type(cur) not in ("input_layer", "output_layer"):
                chain.append(cur)
                todo.extend(ins)
    if mults:
        r["decoder"] = set(chain)
    else:
        deconvs = [c for c in chain if g.type(c) == "deconv"]
        weights = [c for c in chain if g.type(c) in _WEIGHTS]
        r["decoder"] = set(deconvs or weights[:1])
    for m in mults:
        sides = [i for i in g.ins(m) if not _encoder_side(g, i, encoders)]
        if len(sides) > 1:
            sides = [i for i in sides if g.nonlinear(i)] or sides
        if len(sides) == len(g.ins(m)):  # no encoder side found: the mask input is the nonlinear one
            sides = [i for i in sides if g.nonlinear(i)][:1]
        if not sides:
            continue
        r["mask"].add(m)
        for s in sides:
            cur = s
            while g.type(cur) == "activation" and len(g.ins(cur)) == 1:
                r["mask"].add(cur)
                cur = g.ins(cur)[0]
            if g.type(cur) in _WEIGHTS:
                r["mask"].add(cur)
    return r


def layer_roles(layers: LayerTable) -> dict[str, tuple[str, ...]]:
    """Role -> the HN layers playing it, in HN order (every role of :data:`ROLES`; empty when absent).

    Roles are read from the graph (``type``, ``params``, ``input``, ``output``); a names-only table has none.
    """
    g = _Graph(layers)
    return {name: g.sort(found) for name, found in _roles(g).items()}


def roles_of(layer: str, layers: LayerTable) -> tuple[str, ...]:
    """The roles an HN layer plays, e.g. ``("gln_var_pool", "gln_stats", "norm_stats")`` for ``convtas/avgpool6``."""
    return tuple(name for name, found in layer_roles(layers).items() if layer in found)


def layer_types(layers: LayerTable) -> dict[str, int]:
    """HN type -> number of layers (most frequent first); empty for a names-only table."""
    if not isinstance(layers, Mapping):
        return {}
    return dict(Counter(str(v.get("type", "")) for v in layers.values() if v.get("type")).most_common())


def _selector(pattern: str, layers: LayerTable, roles: dict[str, tuple[str, ...]] | None) -> list[str]:
    kind, _, arg = pattern.partition(":")
    if kind == "type":
        g = _Graph(layers)
        return [n for n in g.order if fnmatch.fnmatchcase(g.type(n), arg)]
    if arg not in ROLES:
        raise ConfigError(f"override pattern {pattern!r}", "unknown role", f"one of role:{', role:'.join(ROLES)}")
    return list((roles or {}).get(arg, ()))


def match_patterns(patterns: Iterable[str], layers: LayerTable) -> dict[str, tuple[str, ...]]:
    """Resolve override patterns strictly against the HN layers.

    A pattern is a selector (``type:<glob>``, ``role:<name>``, see the module docstring), or a glob (``fnmatch``,
    case-sensitive) over scoped names when it contains a scope (``convtas/avgpool*``), else over bare names
    (``avgpool6``, ``ew_add*``). A glob that matches no HN name is tried against the ONNX ``original_names``
    (``*Sigmoid*``, ``/masker/*``) and maps to the HN layers holding them. Invented names such as
    ``ne_activation_avgpool6`` are never accepted here: the error suggests the HN layer they stand for.

    Returns:
        Pattern -> matched scoped HN names, in HN order.

    Raises:
        OverrideTargetNotFound: a pattern matches nothing; the message lists the nearest HN names (for a selector:
            the nearest selectors) and the roles and types this HN has.
        ConfigError: ``role:<name>`` names no known role.
    """
    patterns = list(patterns)
    names = _names(layers)
    roles = layer_roles(layers) if any(p.startswith("role:") for p in patterns) else None
    out: dict[str, tuple[str, ...]] = {}
    for pattern in patterns:
        if pattern.startswith(SELECTORS):
            hits = _selector(pattern, layers, roles)
        elif "/" in pattern and not pattern.startswith("/"):
            hits = [n for n in names if fnmatch.fnmatchcase(n, pattern)]
        else:
            hits = [n for n in names if fnmatch.fnmatchcase(bare_name(n), pattern)]
        if not hits and isinstance(layers, Mapping) and not pattern.startswith(SELECTORS):
            hits = [n for n in names if any(fnmatch.fnmatchcase(o, pattern) for o in _originals(layers, n))]
        if not hits:
            raise _not_found(pattern, layers, names, roles)
        out[pattern] = tuple(hits)
    return out


def _not_found(
    pattern: str, layers: LayerTable, names: Sequence[str], roles: dict[str, tuple[str, ...]] | None
) -> OverrideTargetNotFound:
    present_roles = {k: len(v) for k, v in (roles if roles is not None else layer_roles(layers)).items() if v}
    types = layer_types(layers)
    if pattern.startswith(SELECTORS):
        kind, _, arg = pattern.partition(":")
        pool = list(present_roles) if kind == "role" else list(types)
        near: tuple[str, ...] = tuple(f"{kind}:{x}" for x in difflib.get_close_matches(arg, pool, n=3, cutoff=0.3))
    else:
        ref = resolve_layer(pattern, layers)
        own = (ref.hn_layer,) if ref.hn_layer else ()
        near = own + tuple(x for x in _nearest(pattern, names) if x != ref.hn_layer)
    structured = isinstance(layers, Mapping)
    return OverrideTargetNotFound(
        pattern, near[:3], len(names), roles=present_roles if structured else None, types=types if structured else None
    )


def layer_map(layers: Mapping[str, Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """HN layer -> ``{"type", "original_names", "input", "output", "output_shapes", "params"}`` (written next to the
    HAR as ``layer_map.json``): enough of the HN for roles and diagnoses in the harness, which never loads the HAR."""
    return {
        name: {
            "type": str(layer.get("type", "")),
            "original_names": [str(n) for n in layer.get("original_names", ())],
            "input": [str(n) for n in layer.get("input", ())],
            "output": [str(n) for n in layer.get("output", ())],
            "output_shapes": [list(x) for x in layer.get("output_shapes", ())],
            "params": dict(layer.get("params") or {}),
        }
        for name, layer in layers.items()
    }
