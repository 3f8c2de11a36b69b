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
"""

from __future__ import annotations

import difflib
import fnmatch
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from harness.backends._overrides import OverrideTargetNotFound

__all__ = ["LayerRef", "LayerTable", "bare_name", "layer_map", "match_patterns", "resolve_layer"]

#: HN layers: the ``get_hn_dict()["layers"]`` mapping (with ``original_names``) or just the scoped names.
LayerTable = Mapping[str, Mapping[str, Any]] | Sequence[str]

#: Names invented around an HN layer name. ``ne_activation_`` is seen in DFC messages [T] (dfc_api.md §2.5, §6);
#: ``auto_spatial_reshape_from_<a>_to_<b>`` in allocator logs [T] (HD NEXT_AGENT_FEB_22.md) -- the producer
#: ``<a>`` is taken as the layer.
_INVENTED: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("ne_activation_", re.compile(r"ne_activation_(?P<layer>.+)")),
    ("auto_spatial_reshape_", re.compile(r"auto_spatial_reshape_from_(?P<layer>[a-z_]+?\d+)_to_[a-z_]+?\d+.*")),
)


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
        return tuple(str(n) for n in layers[key].get("original_names", ()))
    return ()


def _nearest(name: str, names: Sequence[str], n: int = 3) -> tuple[str, ...]:
    by_bare: dict[str, str] = {}
    for full in names:
        by_bare.setdefault(bare_name(full), full)
    hits = difflib.get_close_matches(bare_name(name), list(by_bare), n=n, cutoff=0.3)
    return tuple(by_bare[h] for h in hits)


def resolve_layer(name: str, layers: LayerTable) -> LayerRef:
    """Resolve a layer name from a DFC message (or a user) to an HN layer.

    Args:
        name: ``convtas/avgpool6``, ``avgpool6``, ``convtas/ne_activation_avgpool6``, an ONNX node name ...
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
    for prefix, pattern in _INVENTED:
        m = pattern.fullmatch(bare)
        if m and m.group("layer") in by_bare:
            return ref(by_bare[m.group("layer")], f"invented:{prefix}")
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


def match_patterns(patterns: Iterable[str], layers: LayerTable) -> dict[str, tuple[str, ...]]:
    """Resolve override patterns strictly against the HN layers.

    A pattern is a glob (``fnmatch``, case-sensitive) over scoped names when it contains a scope
    (``convtas/avgpool*``), else over bare names (``avgpool6``, ``ew_add*``). A pattern that matches no HN name is
    tried against the ONNX ``original_names`` (``*Sigmoid*``, ``/masker/*``) and maps to the HN layers holding
    them. Invented names such as ``ne_activation_avgpool6`` are never accepted here: the error suggests the HN
    layer they stand for.

    Returns:
        Pattern -> matched scoped HN names, in HN order.

    Raises:
        OverrideTargetNotFound: a pattern matches nothing; the message lists the nearest HN names.
    """
    names = _names(layers)
    out: dict[str, tuple[str, ...]] = {}
    for pattern in patterns:
        if "/" in pattern and not pattern.startswith("/"):
            hits = [n for n in names if fnmatch.fnmatchcase(n, pattern)]
        else:
            hits = [n for n in names if fnmatch.fnmatchcase(bare_name(n), pattern)]
        if not hits and isinstance(layers, Mapping):
            hits = [n for n in names if any(fnmatch.fnmatchcase(o, pattern) for o in _originals(layers, n))]
        if not hits:
            ref = resolve_layer(pattern, layers)
            near = ((ref.hn_layer,) if ref.hn_layer else ()) + tuple(
                x for x in _nearest(pattern, names) if x != ref.hn_layer
            )
            raise OverrideTargetNotFound(pattern, near[:3], len(names))
        out[pattern] = tuple(hits)
    return out


def layer_map(layers: Mapping[str, Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """HN layer -> ``{"type", "original_names"}`` (written next to the HAR as ``layer_map.json``)."""
    return {
        name: {"type": str(layer.get("type", "")), "original_names": [str(n) for n in layer.get("original_names", ())]}
        for name, layer in layers.items()
    }
