"""The figures of ``hefsweep report``, one function per plot (Optuna's visualization module or plotly, never drawn
by hand): each takes the :class:`~harness.report._data.TrialRow` list (and the study) and returns a plotly
figure, or raises :class:`_NotEnough` saying why these trials cannot make it."""

from __future__ import annotations

import html
import logging
import math
from collections.abc import Sequence
from typing import Any

from harness.errors import HarnessError
from harness.report._data import TrialRow, _searched

log = logging.getLogger("harness.report")

_OK_COLOR, _PRUNED_COLOR = "#2ca02c", "#9a9a9a"


class _NotEnough(Exception):
    """A plot cannot be drawn from these trials (the message says why)."""


def _history(study: Any, rows: list[TrialRow], frontier: bool = False) -> Any:
    from optuna.visualization import plot_optimization_history

    if not any(r.state == "COMPLETE" for r in rows):
        raise _NotEnough("no finished (COMPLETE) trial yet")
    if frontier:  # mode: frontier: the study's values are capacities, for infeasible trials too
        fig = plot_optimization_history(study, target_name="capacity_macs (MACs per input)")
        fig.update_layout(title="Optimization history of capacity_macs (the best so far counts feasible trials only)")
        return fig
    fig = plot_optimization_history(study, target_name="si_snr_db [dB]")
    feasible = [r.value for r in rows if r.feasible and r.value is not None]
    if feasible:
        lo, hi = min(feasible), max(feasible)
        pad = max(1.0, 0.15 * (hi - lo))
        fig.update_yaxes(range=[lo - pad, hi + pad])
    n_inf = sum(1 for r in rows if r.state == "COMPLETE" and not r.feasible)
    fig.update_layout(
        title=f"Optimization history ({n_inf} infeasible trial(s) recorded at -50 dB lie below the axis)"
        if n_inf
        else "Optimization history"
    )
    return fig


def _ok_study(study: Any, rows: list[TrialRow]) -> Any:
    """An in-memory copy of the study holding only its feasible successful trials (importance of SI-SNR)."""
    import optuna
    from optuna.trial import TrialState

    feasible = {r.number for r in rows if r.feasible and r.value is not None}
    ok = [t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)) if t.number in feasible]
    copy = optuna.create_study(direction="maximize", study_name=f"{study.study_name}-ok")
    copy.add_trials(ok)
    return copy


def _importance(study: Any, rows: list[TrialRow], objective: str = "si_snr_db") -> Any:
    from optuna.visualization import plot_param_importances

    ok = _ok_study(study, rows)
    n = len(ok.trials)
    if n < 2:
        raise _NotEnough(f"parameter importances need at least 2 successful trials; the study has {n}")
    varied = [k for k in _searched(ok) if len({repr(t.params.get(k)) for t in ok.trials}) > 1]
    if not varied:
        raise _NotEnough(f"the {n} successful trials do not differ in any searched parameter")
    fig = plot_param_importances(ok, params=varied, target_name=objective)
    fig.update_layout(title=f"Parameter importances for {objective} ({n} successful trials)")
    return fig


def _importance_feasibility(study: Any, rows: list[TrialRow]) -> Any:
    from optuna.trial import TrialState
    from optuna.visualization import plot_param_importances

    done = [r for r in rows if r.state == "COMPLETE"]
    if len({r.violation for r in done}) < 2:
        if done and done[0].violation == 0:
            raise _NotEnough(f"all {len(done)} finished trials are feasible (violation 0): nothing to explain")
        raise _NotEnough("every finished trial has the same constraint violation: nothing to explain")
    complete = [t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))]
    varied = [k for k in _searched(study) if len({repr(t.params.get(k)) for t in complete}) > 1]
    if not varied:
        raise _NotEnough("the finished trials do not differ in any searched parameter")
    fig = plot_param_importances(
        study,
        params=varied,
        target=lambda t: float(sum(max(v, 0.0) for v in t.constraints.values())),
        target_name="constraint violation",
    )
    fig.update_layout(title=f"Parameter importances for the constraint violation ({len(done)} finished trials)")
    return fig


def _variants(rows: list[TrialRow]) -> Any:
    import plotly.graph_objects as go

    ok = [r for r in rows if r.status == "ok" and r.value is not None]
    if not ok:
        raise _NotEnough("no successful trial yet")

    def label(r: TrialRow) -> str:
        return f"prelu={r.params.get('prelu', '?')}, norm={r.params.get('norm', '?')}"

    fig = go.Figure()
    order = sorted({label(r) for r in ok})
    for fill in sorted({str(r.params.get("calib_fill", "?")) for r in ok}):
        group = [r for r in ok if str(r.params.get("calib_fill", "?")) == fill]
        fig.add_trace(
            go.Box(
                x=[label(r) for r in group],
                y=[r.value for r in group],
                name=f"calib_fill={fill}",
                boxpoints="all",
                jitter=0.4,
                pointpos=0,
                text=[f"trial #{r.number}" for r in group],
                hovertemplate="%{text}<br>%{x}<br>si_snr_db %{y:.2f} dB<extra>%{fullData.name}</extra>",
            )
        )
    fig.update_layout(
        title=f"si_snr_db per variant (prelu x norm), grouped by calibration fill ({len(ok)} successful trials)",
        boxmode="group",
        xaxis={"categoryorder": "array", "categoryarray": order, "title": "variant"},
        yaxis={"title": "si_snr_db [dB]"},
        legend={"title": "calibration policy"},
    )
    return fig


#: The decomposition of the objective, as logged per trial (see ``harness.pipeline._metrics``).
_LOSS = (("si_snr_db", "objective"), ("substitution_si_snr_db", "substitution"), ("quant_si_snr_db", "quantization"))


def _decomposed(rows: list[TrialRow]) -> list[TrialRow]:
    return [r for r in rows if r.status == "ok" and all(k in r.metrics for k, _ in _LOSS)]


def _loss(rows: list[TrialRow]) -> Any:
    import plotly.graph_objects as go

    ok = _decomposed(rows)
    if not ok:
        raise _NotEnough("no successful trial logged substitution_si_snr_db and quant_si_snr_db (trials before the end-to-end objective)")
    x = [r.metrics["substitution_si_snr_db"] for r in ok]
    y = [r.metrics["quant_si_snr_db"] for r in ok]
    z = [r.metrics["si_snr_db"] for r in ok]
    text = [
        f"trial #{r.number}<br>prelu={r.params.get('prelu', '?')}, norm={r.params.get('norm', '?')}<br>"
        f"si_snr_db {v:.2f} dB" for r, v in zip(ok, z, strict=True)
    ]  # fmt: skip
    fig = go.Figure(
        go.Scatter(
            x=x, y=y, mode="markers+text", text=[f"#{r.number}" for r in ok], textposition="top center",
            customdata=text, hovertemplate="%{customdata}<br>substitution %{x:.2f} dB<br>quantization %{y:.2f} dB<extra></extra>",
            marker={"size": 11, "color": z, "colorscale": "Viridis", "showscale": True, "colorbar": {"title": "si_snr_db"}},
            name="trials",
        )
    )  # fmt: skip
    lo, hi = min(x + y), max(x + y)
    fig.add_trace(go.Scatter(x=[lo, hi], y=[lo, hi], mode="lines", line={"dash": "dot", "color": "#999"},
                             name="equal losses", hoverinfo="skip"))  # fmt: skip
    fig.update_layout(
        title=f"Substitution loss vs quantization loss ({len(ok)} successful trials; the objective is about the lower)",
        xaxis={"title": "substitution_si_snr_db [dB] (substituted vs original float)"},
        yaxis={"title": "quant_si_snr_db [dB] (quantized vs substituted float)"},
        legend={"orientation": "h", "y": -0.25},
    )
    return fig


def _signatures(rows: list[TrialRow]) -> Any:
    import plotly.graph_objects as go

    shown = [r for r in rows if r.status in ("ok", "pruned", "failed", "lost")]
    if not shown:
        raise _NotEnough("no finished trial yet")

    def outcome(r: TrialRow) -> str:
        return r.status if r.status in ("ok", "pruned") else str(r.signature or f"{r.status}:-")

    cats = [c for c in ("ok", "pruned") if any(outcome(r) == c for r in shown)]
    cats += sorted({outcome(r) for r in shown} - {"ok", "pruned"})
    fig = go.Figure()
    for c in cats:
        group = [r for r in shown if outcome(r) == c]
        color = {"ok": _OK_COLOR, "pruned": _PRUNED_COLOR}.get(c)
        fig.add_trace(
            go.Scatter(
                x=[r.number for r in group],
                y=[c] * len(group),
                mode="markers",
                name=c if len(c) < 60 else c[:57] + "...",
                marker={"size": 11, "symbol": "circle" if c in ("ok", "pruned") else "x", **({"color": color} if color else {})},
                text=[", ".join(f"{k}={v}" for k, v in r.params.items()) for r in group],
                hovertemplate="trial #%{x}<br>%{y}<br>%{text}<extra></extra>",
            )
        )
    fig.update_layout(
        title="Outcome of each trial over the study (failure signatures)",
        xaxis={"title": "trial number"},
        yaxis={"type": "category", "categoryorder": "array", "categoryarray": cats[::-1], "automargin": True},
        showlegend=False,
    )
    return fig


def _boundary_params(study: Any, rows: list[TrialRow], chosen: Sequence[str] | None) -> list[str]:
    searched = _searched(study)
    if chosen:
        unknown = [p for p in chosen if p not in searched and not any(p in r.params for r in rows)]
        if unknown:
            raise HarnessError(
                f"--boundary {','.join(chosen)}", f"unknown parameter(s) {', '.join(unknown)}", f"two of {searched}"
            )
        return list(chosen)[:2]
    done = [r for r in rows if r.state == "COMPLETE"]
    varied = [k for k in searched if len({repr(r.params.get(k)) for r in done}) > 1]
    if len(varied) <= 2:
        return varied
    try:  # the two parameters that explain the violation best
        import optuna

        imp = optuna.importance.get_param_importances(
            study,
            params=varied,
            target=lambda t: float(sum(max(v, 0.0) for v in t.constraints.values())),
        )
        ranked = [k for k, v in imp.items() if math.isfinite(v)]
        if len(ranked) >= 2 and len({r.violation for r in done}) > 1:
            return ranked[:2]
    except Exception as exc:  # noqa: BLE001 - fall back to the most varied parameters
        log.debug("feasibility importances unavailable: %s", exc)
    return sorted(varied, key=lambda k: -len({repr(r.params.get(k)) for r in done}))[:2]


def _axis(values: list[Any], name: str, rng: Any) -> tuple[list[float], dict[str, Any]]:
    """Numeric positions for an axis: numbers as they are; categories as 0..k-1 with jitter and their labels."""
    numeric = all(isinstance(v, int | float) and not isinstance(v, bool) for v in values)
    if numeric:
        return [float(v) for v in values], {"title": name}
    cats = sorted({repr(v) if v is None else str(v) for v in values})
    index = {c: i for i, c in enumerate(cats)}
    pos = [index[repr(v) if v is None else str(v)] + float(rng.uniform(-0.18, 0.18)) for v in values]
    return pos, {"title": name, "tickmode": "array", "tickvals": list(range(len(cats))), "ticktext": cats, "range": [-0.5, len(cats) - 0.5]}


def _feasibility(study: Any, rows: list[TrialRow], chosen: Sequence[str] | None) -> Any:
    import numpy as np
    import plotly.graph_objects as go

    done = [r for r in rows if r.state == "COMPLETE"]
    if not done:
        raise _NotEnough("no finished trial yet")
    params = _boundary_params(study, rows, chosen)
    rng = np.random.default_rng(0)
    px, py = (params + ["trial number", "trial number"])[:2] if params else ("trial number", "violation")
    if len(params) == 1:
        py = "trial number"

    def val(r: TrialRow, p: str) -> Any:
        if p == "trial number":
            return r.number
        if p == "violation":
            return r.violation
        return r.params.get(p)

    xs, xaxis = _axis([val(r, px) for r in done], px, rng)
    ys, yaxis = _axis([val(r, py) for r in done], py, rng)
    fig = go.Figure()
    feas = [i for i, r in enumerate(done) if r.feasible]
    infeas = [i for i, r in enumerate(done) if not r.feasible]
    if feas:
        fig.add_trace(
            go.Scatter(
                x=[xs[i] for i in feas], y=[ys[i] for i in feas], mode="markers", name="feasible",
                marker={"size": 12, "color": _OK_COLOR, "symbol": "circle", "line": {"width": 1, "color": "#1b5e20"}},
                text=[f"trial #{done[i].number}<br>si_snr_db {done[i].value:.2f} dB" if done[i].value is not None else f"trial #{done[i].number}" for i in feas],
                hovertemplate="%{text}<extra>feasible</extra>",
            )
        )  # fmt: skip
    if infeas:
        fig.add_trace(
            go.Scatter(
                x=[xs[i] for i in infeas], y=[ys[i] for i in infeas], mode="markers", name="infeasible (violation > 0 or failed)",
                marker={
                    "size": 13, "symbol": "x", "color": [done[i].violation for i in infeas], "colorscale": "OrRd",
                    "cmin": 0, "showscale": True, "colorbar": {"title": "violation"},
                },
                text=[f"trial #{done[i].number}<br>{html.escape(str(done[i].signature))}<br>violation {done[i].violation:g}" for i in infeas],
                hovertemplate="%{text}<extra>infeasible</extra>",
            )
        )  # fmt: skip
    fig.update_layout(
        title=f"Feasibility boundary: {px} vs {py} ({len(feas)} feasible, {len(infeas)} infeasible)",
        xaxis=xaxis,
        yaxis=yaxis,
        legend={"orientation": "h", "y": -0.2},
    )
    return fig
