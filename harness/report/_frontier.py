"""The ``frontier`` section of ``hefsweep report``: a ``mode: frontier`` study's feasible and infeasible trials over
two capacity axes, with the largest model that compiled highlighted and its configuration listed.

A frontier trial carries its capacity in its Optuna user attributes (set by the sweep before any stage ran, so
failed trials have them too): ``capacity_params``, ``capacity_macs`` (MACs per input of W samples, the objective)
and ``capacity_arch`` (the effective ``n_filters``, ``bn_chan``, ``hid_chan``, ``skip_chan``, ``n_blocks``,
``n_repeats``, ``width``, ``n_layers``). Axes (:data:`AXES`): those, plus ``max_channels`` (the widest of N, B, H,
Sc: what a layer's output row holds per frame). Default axes: ``capacity_params`` against the other axis with the
most distinct values among the finished trials (``--frontier X,Y`` chooses them).
"""

from __future__ import annotations

import html
import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from harness.errors import HarnessError

__all__ = ["AXES", "FrontierTrial", "frontier_axes", "frontier_figure", "frontier_table", "frontier_trials", "is_frontier"]

_ARCH = ("width", "max_channels", "n_layers", "hid_chan", "bn_chan", "n_filters", "skip_chan", "n_blocks", "n_repeats")
#: The quantities a frontier plot can put on an axis.
AXES = ("capacity_params", "capacity_macs", *_ARCH)
_FEASIBLE, _INFEASIBLE, _BEST = "#2ca02c", "#d62728", "#ff7f0e"


def is_frontier(study: Any) -> bool:
    """Whether the study was made from a ``mode: frontier`` space (its recorded fingerprint says so)."""
    try:
        return json.loads(study.user_attrs.get("hefsweep.space") or "{}").get("mode") == "frontier"
    except ValueError:
        return False


@dataclass(frozen=True)
class FrontierTrial:
    """One finished frontier trial: its capacity values and outcome."""

    number: int
    feasible: bool
    values: dict[str, float]
    signature: str | None
    si_snr_db: float | None
    needs_retraining: bool
    run_id: str | None

    def describe(self) -> str:
        """The architecture on one line (``N=64 B=64 H=128 Sc=64 X=6 R=2 W=3200``)."""
        v = self.values
        return (f"N={v['n_filters']:g} B={v['bn_chan']:g} H={v['hid_chan']:g} Sc={v['skip_chan']:g} "
                f"X={v['n_blocks']:g} R={v['n_repeats']:g} W={v['width']:g}")  # fmt: skip


def frontier_trials(study: Any, rows: Sequence[Any]) -> list[FrontierTrial]:
    """The study's finished (COMPLETE) trials that carry capacity attributes, joined with their report rows."""
    by_number = {r.number: r for r in rows}
    out = []
    for t in study.get_trials(deepcopy=False):
        arch, row = t.user_attrs.get("capacity_arch"), by_number.get(t.number)
        if t.state.name != "COMPLETE" or not isinstance(arch, dict) or row is None:
            continue
        values = {k: float(v) for k, v in arch.items()}
        values["max_channels"] = max(values[k] for k in ("n_filters", "bn_chan", "hid_chan", "skip_chan"))
        values["capacity_params"] = float(t.user_attrs["capacity_params"])
        values["capacity_macs"] = float(t.user_attrs["capacity_macs"])
        si = row.metrics.get("si_snr_db")
        out.append(FrontierTrial(t.number, bool(row.feasible), values, row.signature,
                                 si if si is not None and math.isfinite(si) else None,
                                 bool(t.user_attrs.get("needs_retraining")), row.run_id))  # fmt: skip
    return out


def frontier_axes(trials: Sequence[FrontierTrial], chosen: Sequence[str] | None = None) -> tuple[str, str]:
    """The plot's two axes: ``chosen``, or ``capacity_params`` and the other axis that varies most.

    Raises:
        HarnessError: a chosen axis that is not one of :data:`AXES`.
    """
    if chosen:
        unknown = [a for a in chosen if a not in AXES]
        if unknown or len(chosen) != 2:
            raise HarnessError(f"--frontier {','.join(chosen)}", f"unknown axis {', '.join(unknown) or '(count)'}",
                               f"two of {', '.join(AXES)}")  # fmt: skip
        return chosen[0], chosen[1]
    distinct = {a: len({t.values[a] for t in trials}) for a in _ARCH}
    return "capacity_params", max(_ARCH, key=lambda a: (distinct[a], -_ARCH.index(a)))


def _best(trials: Sequence[FrontierTrial]) -> FrontierTrial | None:
    feasible = [t for t in trials if t.feasible]
    return max(feasible, key=lambda t: (t.values["capacity_macs"], -t.number)) if feasible else None


def _hover(t: FrontierTrial) -> str:
    what = "feasible" if t.feasible else html.escape(str(t.signature or "infeasible"))
    si = f"<br>si_snr_db {t.si_snr_db:.2f} dB (vs the original; needs retraining)" if t.si_snr_db is not None and t.needs_retraining else ""
    return (f"trial #{t.number}: {what}<br>{t.describe()}<br>{t.values['capacity_params']:,.0f} params, "
            f"{t.values['capacity_macs'] / 1e6:,.1f} MMAC per input{si}")  # fmt: skip


def frontier_figure(trials: Sequence[FrontierTrial], axes: tuple[str, str]) -> Any:
    """Feasible (circles) and infeasible (crosses) trials over ``axes``; the largest feasible model as a star.

    Raises:
        ValueError: no frontier trial (the caller shows why instead of a plot).
    """
    import plotly.graph_objects as go

    if not trials:
        raise ValueError("no finished trial with capacity attributes (a study made before mode: frontier?)")
    x, y = axes
    fig = go.Figure()
    for feasible, name, color, symbol in ((True, "feasible (compiled)", _FEASIBLE, "circle"),
                                          (False, "infeasible (failed)", _INFEASIBLE, "x")):  # fmt: skip
        group = [t for t in trials if t.feasible == feasible]
        if group:
            fig.add_trace(go.Scatter(
                x=[t.values[x] for t in group], y=[t.values[y] for t in group], mode="markers", name=name,
                marker={"size": 12, "color": color, "symbol": symbol, "line": {"width": 1, "color": "#333"}},
                text=[_hover(t) for t in group], hovertemplate="%{text}<extra></extra>",
            ))  # fmt: skip
    best = _best(trials)
    if best is not None:
        fig.add_trace(go.Scatter(
            x=[best.values[x]], y=[best.values[y]], mode="markers", name=f"largest feasible: trial #{best.number}",
            marker={"size": 22, "color": _BEST, "symbol": "star", "line": {"width": 1, "color": "#333"}},
            text=[_hover(best)], hovertemplate="%{text}<extra></extra>",
        ))  # fmt: skip
        fig.add_annotation(x=best.values[x], y=best.values[y], text=f"#{best.number} {best.describe()}",
                           showarrow=True, arrowhead=2, ax=40, ay=-40)  # fmt: skip
    n_ok = sum(t.feasible for t in trials)

    def axis(name: str) -> dict[str, Any]:
        values = [t.values[name] for t in trials]
        wide = min(values) > 0 and max(values) / min(values) > 20
        return {"title": name + (" (MACs per input of W samples)" if name == "capacity_macs" else ""),
                **({"type": "log"} if wide else {})}  # fmt: skip

    fig.update_layout(
        title=f"Capacity frontier: {x} vs {y} ({n_ok} feasible, {len(trials) - n_ok} infeasible)",
        xaxis=axis(x), yaxis=axis(y), legend={"orientation": "h", "y": -0.2},
    )  # fmt: skip
    return fig


def frontier_table(trials: Sequence[FrontierTrial], link: Callable[[str | None], str], top: int = 5) -> str:
    """The largest feasible models (by the objective, ``capacity_macs``), largest first, with their configuration."""
    feasible = sorted((t for t in trials if t.feasible), key=lambda t: (-t.values["capacity_macs"], t.number))[:top]
    if not feasible:
        return '<p class="na" id="table-frontier">No frontier trial compiled yet.</p>'
    cols = ("n_filters", "bn_chan", "hid_chan", "skip_chan", "n_blocks", "n_repeats", "width")
    head = ("<tr><th>rank</th><th>trial</th><th>capacity_macs</th><th>capacity_params</th>"
            + "".join(f"<th>{c}</th>" for c in cols) + "<th>needs retraining</th><th>si_snr_db</th><th>MLflow run</th></tr>")  # fmt: skip
    body = []
    for i, t in enumerate(feasible, 1):
        si = "" if t.si_snr_db is None else f"{t.si_snr_db:.2f}"
        body.append(
            f"<tr><td class='num'>{i}</td><td class='num'>#{t.number}</td>"
            f"<td class='num'>{t.values['capacity_macs']:,.0f}</td><td class='num'>{t.values['capacity_params']:,.0f}</td>"
            + "".join(f"<td class='num'>{t.values[c]:g}</td>" for c in cols)
            + f"<td>{'yes' if t.needs_retraining else 'no'}</td><td class='num'>{si}</td><td>{link(t.run_id)}</td></tr>"
        )
    return f'<table id="table-frontier">{head}{"".join(body)}</table>'
