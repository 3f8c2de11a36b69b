"""``hefsweep report``: one self-contained HTML page about a study, also logged to its parent MLflow run.

Sections (each a plot drawn by Optuna's visualization module or plotly, never by hand, plus tables):

- ``history``: Optuna's optimization history (infeasible trials are recorded at -50 dB and drawn below the axis).
- ``importance``: Optuna's parameter importances for SI-SNR over successful trials, and for the constraint
  violation over all finished trials (both need enough trials that differ; otherwise the section says so).
- ``variants``: SI-SNR (``si_snr_db``) of successful trials per model variant (prelu x norm), grouped by
  calibration fill policy.
- ``loss``: where each successful trial's SI-SNR goes: the substitution loss (``substitution_si_snr_db``, substituted
  vs original float) against the quantization loss (``quant_si_snr_db``, quantized vs substituted float), colored by
  the objective (``si_snr_db``, quantized vs original float), plus a table per trial.
- ``failures``: failure signatures -- count, stage, first and last trial, a run link -- and a scatter of trial
  number vs outcome.
- ``feasibility``: two parameters against each other, each finished trial colored by its constraint violation
  (Optuna's ``trial.constraints``; feasible means every constraint <= 0).
- ``best``: the best feasible trials with links to their MLflow runs (``<ui>/#/experiments/<id>/runs/<run>``).

The plotly library is inlined once (the first plot), so the file opens offline.
"""

from __future__ import annotations

import datetime as _dt
import html
import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.errors import HarnessError

__all__ = ["ReportResult", "TrialRow", "build_report", "collect_trials", "default_report_dir", "run_url"]

log = logging.getLogger("harness.report")

DEFAULT_UI = "http://127.0.0.1:5000"
SECTIONS = ("history", "importance", "variants", "loss", "failures", "feasibility", "best")
_OK_COLOR, _PRUNED_COLOR = "#2ca02c", "#9a9a9a"


def default_report_dir(root: Path, study: str) -> Path:
    """``<root>/reports/<study>``."""
    return Path(root) / "reports" / study


def run_url(base: str, experiment_id: str, run_id: str) -> str:
    """The MLflow UI page of one run."""
    return f"{base.rstrip('/')}/#/experiments/{experiment_id}/runs/{run_id}"


@dataclass
class TrialRow:
    """What the report knows about one trial (Optuna's record joined with its MLflow run)."""

    number: int
    state: str  # Optuna state: COMPLETE, PRUNED, FAIL, RUNNING, WAITING
    status: str  # ok | failed | pruned | lost | running
    value: float | None
    params: dict[str, Any]
    constraints: dict[str, float]
    signature: str | None
    run_id: str | None
    metrics: dict[str, float] = field(default_factory=dict)

    @property
    def violation(self) -> float:
        """Sum of positive constraint values (0: feasible)."""
        return float(sum(max(v, 0.0) for v in self.constraints.values()))

    @property
    def feasible(self) -> bool:
        return self.status == "ok" and self.violation <= 0.0


@dataclass
class ReportResult:
    """What :func:`build_report` wrote."""

    path: Path
    study: str
    n_trials: int
    counts: dict[str, int]
    plots: list[str]
    notes: dict[str, str]
    experiment_id: str | None
    parent_run_id: str | None
    logged: bool


# -- data -------------------------------------------------------------------------------------------------------
def _load_study(study: str, storage: str) -> Any:
    import optuna

    from harness.sweep import study_summary

    study_summary(study, storage)  # one-line errors for a missing store or study
    return optuna.load_study(study_name=study, storage=storage)


def _mlflow(tracking_uri: str, study: str) -> tuple[Any, Any, Any, dict[str, Any]]:
    """(client, experiment or None, parent run or None, child runs by id)."""
    from mlflow import MlflowClient

    try:
        client = MlflowClient(tracking_uri=tracking_uri)
        exp = client.get_experiment_by_name(study)
        if exp is None:
            return client, None, None, {}
        parents = client.search_runs(
            [exp.experiment_id],
            filter_string=f"tags.`hefsweep.study` = '{study}' and tags.`hefsweep.role` = 'parent'",
            max_results=1,
        )
        children: dict[str, Any] = {}
        token = None
        while True:
            page = client.search_runs(
                [exp.experiment_id], filter_string="tags.`hefsweep.role` = 'trial'", max_results=1000, page_token=token
            )
            children.update({r.info.run_id: r for r in page})
            token = page.token
            if not token:
                break
    except Exception as exc:  # noqa: BLE001 - store failures are user errors
        from harness.tracking import tracking_store_error

        raise tracking_store_error(tracking_uri, exc) from None
    return client, exp, (parents[0] if parents else None), children


def collect_trials(study: Any, runs: dict[str, Any]) -> list[TrialRow]:
    """Every trial of the study as a :class:`TrialRow` (params include fixed dimensions, metrics from MLflow)."""
    rows: list[TrialRow] = []
    for t in study.get_trials(deepcopy=False):
        attrs = t.user_attrs
        run_id = attrs.get("mlflow_run_id")
        run = runs.get(run_id) if run_id else None
        # fixed dimensions are MLflow params only (older studies also kept them as fixed.* user attributes);
        # searched ones come typed from Optuna
        params: dict[str, Any] = {k: v for k, v in (run.data.params.items() if run is not None else ()) if k != "backend"}
        params.update({k.removeprefix("fixed."): v for k, v in attrs.items() if k.startswith("fixed.")})
        params.update(t.params)
        state = t.state.name
        status = attrs.get("status") or {"PRUNED": "pruned", "FAIL": "lost", "COMPLETE": "ok"}.get(state, "running")
        if state == "FAIL":
            status = "lost"
        signature = attrs.get("signature")
        if signature is None and run is not None and status in ("failed", "lost"):
            signature = run.data.tags.get("hefsweep.signature")
        if status == "lost" and signature is None:
            signature = "harness:Lost:-"
        value = t.value if t.value is not None and math.isfinite(t.value) else None
        rows.append(
            TrialRow(
                number=t.number,
                state=state,
                status=status,
                value=value,
                params=params,
                constraints=dict(t.constraints),
                signature=signature,
                run_id=run_id,
                metrics=dict(run.data.metrics) if run is not None else {},
            )
        )
    return rows


def _searched(study: Any) -> list[str]:
    """Searched parameter names, in the order the trials first used them."""
    names: dict[str, None] = {}
    for t in study.get_trials(deepcopy=False):
        for k in t.params:
            names.setdefault(k, None)
    return list(names)


# -- figures ----------------------------------------------------------------------------------------------------
@dataclass
class _Section:
    key: str
    title: str
    intro: str
    parts: list[str] = field(default_factory=list)


class _Html:
    """Turns figures into divs; the plotly library goes inline with the first figure only."""

    def __init__(self) -> None:
        self.js_done = False
        self.plots: list[str] = []
        self.notes: dict[str, str] = {}

    def fig(self, fig: Any, div_id: str, height: int = 420) -> str:
        fig.update_layout(height=height, margin={"l": 60, "r": 30, "t": 60, "b": 60})
        fig.update_xaxes(automargin=True)
        fig.update_yaxes(automargin=True)
        out = fig.to_html(
            full_html=False,
            include_plotlyjs=not self.js_done,
            div_id=div_id,
            config={"displaylogo": False, "responsive": True},
        )
        self.js_done = True
        self.plots.append(div_id)
        return f'<div class="plot">{out}</div>'

    def missing(self, div_id: str, why: str) -> str:
        self.notes[div_id] = why
        return f'<div id="{div_id}" class="na">Not drawn: {html.escape(why)}</div>'

    def try_fig(self, make: Callable[[], Any], div_id: str, why_prefix: str, height: int = 420) -> str:
        import warnings

        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # Optuna's experimental / "low target" notes, not the reader's concern
                fig = make()
        except _NotEnough as exc:
            return self.missing(div_id, str(exc))
        except HarnessError:
            raise
        except Exception as exc:  # noqa: BLE001 - Optuna raises several types for too few / too uniform trials
            return self.missing(div_id, f"{why_prefix} ({type(exc).__name__}: {str(exc).splitlines()[0][:200]})")
        return self.fig(fig, div_id, height)


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


def _loss_table(rows: list[TrialRow]) -> str:
    ok = sorted(_decomposed(rows), key=lambda r: -r.metrics["si_snr_db"])
    if not ok:
        return '<p class="na" id="table-loss">No trial with the SI-SNR decomposition.</p>'
    extra = [k for k in ("orig_float_si_snri_db", "float_si_snri_db", "quant_si_snri_db") if any(k in r.metrics for r in ok)]
    head = (
        "<tr><th>trial</th><th>variant</th><th>si_snr_db (objective)</th><th>substitution_si_snr_db</th>"
        "<th>quant_si_snr_db</th><th>limited by</th>" + "".join(f"<th>{k}</th>" for k in extra) + "</tr>"
    )
    body = []
    for r in ok:
        m = r.metrics
        worse = "substitution" if m["substitution_si_snr_db"] < m["quant_si_snr_db"] else "quantization"
        body.append(
            f"<tr><td class='num'>#{r.number}</td>"
            f"<td>prelu={html.escape(str(r.params.get('prelu', '?')))}, norm={html.escape(str(r.params.get('norm', '?')))}</td>"
            + "".join(f"<td class='num'>{m[k]:.2f}</td>" for k, _ in _LOSS)
            + f"<td>{worse}</td>"
            + "".join(f"<td class='num'>{m[k]:.2f}</td>" if k in m else "<td></td>" for k in extra)
            + "</tr>"
        )
    return f'<table id="table-loss">{head}{"".join(body)}</table>'


def _signature_table(rows: list[TrialRow], link: Callable[[str | None], str]) -> str:
    failed = [r for r in rows if r.status in ("failed", "lost") and r.signature]
    if not failed:
        return '<p class="na" id="table-signatures">No failed trials.</p>'
    groups: dict[str, list[TrialRow]] = {}
    for r in sorted(failed, key=lambda r: r.number):
        groups.setdefault(str(r.signature), []).append(r)
    body = []
    for sig, rs in sorted(groups.items(), key=lambda kv: (-len(kv[1]), kv[0])):
        body.append(
            "<tr>"
            f"<td><code>{html.escape(sig)}</code></td><td>{html.escape(sig.split(':')[0])}</td>"
            f"<td class='num'>{len(rs)}</td><td class='num'>#{rs[0].number}</td><td class='num'>#{rs[-1].number}</td>"
            f"<td class='num'>{rs[-1].violation:g}</td><td>{link(rs[-1].run_id)}</td>"
            "</tr>"
        )
    head = "<tr><th>signature</th><th>stage</th><th>count</th><th>first</th><th>last</th><th>violation</th><th>last run</th></tr>"
    return f'<table id="table-signatures">{head}{"".join(body)}</table>'


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


def _best_table(rows: list[TrialRow], top: int, params: list[str], link: Callable[[str | None], str]) -> str:
    best = sorted((r for r in rows if r.feasible and r.value is not None), key=lambda r: -float(r.value or 0.0))[:top]
    if not best:
        return '<p class="na" id="table-best">No feasible successful trial yet.</p>'
    cols = [p for p in params if p]
    head = (
        "<tr><th>rank</th><th>trial</th><th>si_snr_db</th><th>si_snr_worst_db</th>"
        "<th>substitution_si_snr_db</th><th>quant_si_snr_db</th>"
        + "".join(f"<th>{html.escape(p)}</th>" for p in cols)
        + "<th>MLflow run</th></tr>"
    )
    body = []
    for i, r in enumerate(best, 1):
        worst = r.metrics.get("si_snr_worst_db")
        body.append(
            f"<tr><td class='num'>{i}</td><td class='num'>#{r.number}</td><td class='num'>{r.value:.2f}</td>"
            f"<td class='num'>{'' if worst is None else f'{worst:.2f}'}</td>"
            + "".join(f"<td class='num'>{_num(r.metrics.get(k))}</td>" for k in ("substitution_si_snr_db", "quant_si_snr_db"))
            + "".join(f"<td>{html.escape(str(r.params.get(p, '')))}</td>" for p in cols)
            + f"<td>{link(r.run_id)}</td></tr>"
        )
    return f'<table id="table-best">{head}{"".join(body)}</table>'


def _num(v: float | None) -> str:
    return "" if v is None else f"{v:.2f}"


_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px auto;max-width:1200px;color:#222;padding:0 16px}
h1{font-size:1.6em;margin-bottom:4px} h2{border-bottom:1px solid #ddd;padding-bottom:4px;margin-top:36px}
.meta{color:#555} .na{color:#8a6d3b;background:#fcf8e3;border:1px solid #faebcc;padding:8px 12px;border-radius:4px}
table{border-collapse:collapse;margin:12px 0;font-size:.92em} th,td{border:1px solid #ddd;padding:4px 8px;text-align:left}
th{background:#f5f5f5} td.num{text-align:right;font-variant-numeric:tabular-nums} nav a{margin-right:14px}
.counts span{display:inline-block;margin-right:16px} code{font-size:.95em}
"""


# -- the command ------------------------------------------------------------------------------------------------
def build_report(
    study_name: str,
    *,
    storage: str,
    tracking_uri: str,
    out_dir: Path,
    ui_url: str = DEFAULT_UI,
    top: int = 10,
    boundary: Sequence[str] | None = None,
    log_to_parent: bool = True,
    frontier_axes: Sequence[str] | None = None,
) -> ReportResult:
    """Write ``out_dir/report.html`` for a study and log it to the study's parent run as ``report/report.html``.

    A ``mode: frontier`` study (:mod:`harness.report_frontier`) gets a ``frontier`` section (over ``frontier_axes``,
    default: chosen from the trials); its history and importances are of its objective, ``capacity_macs``, and the
    other sections show the trials' SI-SNR.

    Raises:
        HarnessError: unknown study, a study without trials, unreachable stores, plotly missing.
    """
    import optuna

    from harness.tracking import runs_url

    try:
        import plotly  # noqa: F401
    except ImportError:
        raise HarnessError("plotly", "not installed", "plotly (pip install plotly) for hefsweep report") from None
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    study = _load_study(study_name, storage)
    if not study.get_trials(deepcopy=False):
        raise HarnessError(f"study {study_name!r}", "has no trials", "a study with at least one trial (run `hefsweep sweep`)")
    client, exp, parent, runs = _mlflow(tracking_uri, study_name)
    rows = collect_trials(study, runs)
    from harness.report_frontier import frontier_axes as pick_axes, frontier_trials, is_frontier

    frontier = is_frontier(study)
    if frontier_axes and not frontier:
        raise HarnessError(f"--frontier {','.join(frontier_axes)}", f"study {study_name!r} is not a frontier study",
                           "a study made from a mode: frontier space")  # fmt: skip
    if frontier:  # the Optuna value is the capacity: the SI-SNR sections read the trials' si_snr_db instead
        fronts = frontier_trials(study, rows)
        axes = pick_axes(fronts, frontier_axes)  # a bad --frontier is the user's error, not a note
        for r in rows:
            r.value = r.metrics.get("si_snr_db") if r.status == "ok" else None
    if boundary:
        boundary = _boundary_params(study, rows, boundary)  # a bad --boundary is the user's error, not a note
    exp_id = exp.experiment_id if exp is not None else None

    def link(run_id: str | None) -> str:
        if not run_id or exp_id is None:
            return "-"
        url = run_url(ui_url, exp_id, run_id)
        return f'<a class="run-link" href="{html.escape(url)}">{html.escape(run_id[:12])}</a>'

    h = _Html()
    counts = {s: sum(r.status == s for r in rows) for s in ("ok", "failed", "pruned", "lost", "running")}
    searched = _searched(study)
    sections = [
        _Section("history", "Optimization history", "Objective (mean per-clip SI-SNR of the quantized model vs the original float model, before any substitution) per trial, and the best so far."),
        _Section("importance", "Parameter importances", "Which parameters move SI-SNR among successful trials, and which decide feasibility."),
        _Section("variants", "SI-SNR per variant", "si_snr_db of successful trials per model variant (prelu x norm), one box per calibration fill policy."),
        _Section("loss", "Substitution vs quantization loss", "Where each trial's SI-SNR goes: substitution_si_snr_db (substituted vs original float model) and quant_si_snr_db (quantized vs substituted float); the objective si_snr_db (quantized vs original) is bounded by the lower of the two."),
        _Section("failures", "Failure signatures", "Each failure signature with its count and the first and last trial that hit it; then every trial's outcome over time."),
        _Section("feasibility", "Feasibility boundary", "Finished trials over two parameters; crosses are infeasible (colored by constraint violation), circles feasible."),
        _Section("best", "Best trials", f"The {top} best feasible trials, with links to their MLflow runs."),
    ]  # fmt: skip
    if frontier:
        sections.insert(-1, _Section("frontier", "Capacity frontier", "mode: frontier: each finished trial over two capacity axes, feasible (every stage passed, compile included) or not; the star is the largest feasible model by the objective capacity_macs (MACs per input of W samples). Resized models need retraining: their SI-SNR is against the original model, before any."))  # fmt: skip
    s = {sec.key: sec for sec in sections}
    s["history"].parts.append(h.try_fig(lambda: _history(study, rows, frontier), "plot-history", "optimization history unavailable"))
    objective = "capacity_macs" if frontier else "si_snr_db"
    s["importance"].parts.append(h.try_fig(lambda: _importance(study, rows, objective), "plot-importance", "importances unavailable"))
    s["importance"].parts.append(
        h.try_fig(lambda: _importance_feasibility(study, rows), "plot-importance-feasibility", "feasibility importances unavailable")
    )
    s["variants"].parts.append(h.try_fig(lambda: _variants(rows), "plot-variants", "variant plot unavailable"))
    s["loss"].parts.append(h.try_fig(lambda: _loss(rows), "plot-loss", "loss plot unavailable"))
    s["loss"].parts.append(_loss_table(rows))
    s["failures"].parts.append(_signature_table(rows, link))
    s["failures"].parts.append(h.try_fig(lambda: _signatures(rows), "plot-signatures", "signature plot unavailable", 360))
    s["feasibility"].parts.append(
        h.try_fig(lambda: _feasibility(study, rows, boundary), "plot-feasibility", "feasibility plot unavailable", 480)
    )
    s["best"].parts.append(_best_table(rows, top, searched, link))
    if frontier:
        from harness.report_frontier import frontier_figure, frontier_table

        s["frontier"].parts.append(h.try_fig(lambda: frontier_figure(fronts, axes), "plot-frontier", "frontier plot unavailable", 520))
        s["frontier"].parts.append(frontier_table(fronts, link))

    now = _dt.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
    links = []
    if exp_id is not None:
        links.append(f'<a id="runs-link" href="{html.escape(runs_url(ui_url, exp_id))}">MLflow runs table</a>')
        if parent is not None:
            links.append(f'<a href="{html.escape(run_url(ui_url, exp_id, parent.info.run_id))}">parent run</a>')
    best_txt = ""
    feasible = [r for r in rows if r.feasible and r.value is not None]
    if feasible:
        b = max(feasible, key=lambda r: float(r.value or 0.0))
        best_txt = f" Best feasible: trial #{b.number}, si_snr_db {b.value:.2f} dB ({link(b.run_id)})."
    if frontier and any(t.feasible for t in fronts):  # the objective is capacity: name the largest feasible model
        big = max((t for t in fronts if t.feasible), key=lambda t: (t.values["capacity_macs"], -t.number))
        best_txt = (f" Largest feasible model: trial #{big.number}, {big.describe()}, "
                    f"{big.values['capacity_macs'] / 1e6:,.1f} MMAC per input ({link(big.run_id)}).{best_txt}")  # fmt: skip
    backend = parent.data.params.get("backend", "") if parent is not None else ""
    header = (
        f"<h1>hefsweep study <code>{html.escape(study_name)}</code></h1>"
        f"<p class='meta'>{len(rows)} trials{f', backend {html.escape(backend)}' if backend else ''}; "
        f"Optuna storage <code>{html.escape(storage.split('@')[-1])}</code>; generated {html.escape(now)}. "
        f"{' · '.join(links)}</p>"
        "<p class='counts'>" + "".join(f"<span><b>{n}</b> {k}</span>" for k, n in counts.items() if n or k in ("ok", "failed")) + "</p>"
        f"<p>{best_txt}</p>"
        "<nav>" + "".join(f'<a href="#{sec.key}">{html.escape(sec.title)}</a>' for sec in sections) + "</nav>"
    )
    body = "".join(
        f'<section id="{sec.key}"><h2>{html.escape(sec.title)}</h2><p>{html.escape(sec.intro)}</p>{"".join(sec.parts)}</section>'
        for sec in sections
    )
    page = (
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
        f"<title>hefsweep report: {html.escape(study_name)}</title><style>{_CSS}</style></head>"
        f"<body>{header}{body}</body></html>"
    )
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "report.html"
    tmp = path.with_name(".report.html.tmp")
    tmp.write_text(page, encoding="utf-8")
    tmp.replace(path)

    logged = False
    if log_to_parent and parent is not None:
        try:
            client.log_artifact(parent.info.run_id, str(path), "report")
            logged = True
        except Exception as exc:  # noqa: BLE001 - the file exists; say so instead of failing
            raise HarnessError(
                f"parent run {parent.info.run_id}",
                f"report not logged ({type(exc).__name__}: {str(exc).splitlines()[0][:160]})",
                "a writable MLflow artifact store",
                hint=f"the report itself was written to {path}",
            ) from None
    return ReportResult(
        path=path,
        study=study_name,
        n_trials=len(rows),
        counts=counts,
        plots=list(h.plots),
        notes=dict(h.notes),
        experiment_id=exp_id,
        parent_run_id=parent.info.run_id if parent is not None else None,
        logged=logged,
    )
