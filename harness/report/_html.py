"""The page of ``hefsweep report``: :func:`build_report` loads the trials, draws each section's figures and
tables into one self-contained HTML file (plotly inlined once) and logs it to the study's parent MLflow run."""

from __future__ import annotations

import datetime as _dt
import html
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.errors import HarnessError
from harness.report._data import DEFAULT_UI, _load_study, _mlflow, _searched, collect_trials, run_url
from harness.report._figures import (
    _boundary_params, _feasibility, _history, _importance, _importance_feasibility, _loss, _NotEnough,
    _signatures, _variants,
)  # fmt: skip
from harness.report._tables import _best_table, _loss_table, _signature_table

__all__ = ["SECTIONS", "ReportResult", "build_report"]

SECTIONS = ("history", "importance", "variants", "loss", "failures", "feasibility", "best")


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


_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px auto;max-width:1200px;color:#222;padding:0 16px}
h1{font-size:1.6em;margin-bottom:4px} h2{border-bottom:1px solid #ddd;padding-bottom:4px;margin-top:36px}
.meta{color:#555} .na{color:#8a6d3b;background:#fcf8e3;border:1px solid #faebcc;padding:8px 12px;border-radius:4px}
table{border-collapse:collapse;margin:12px 0;font-size:.92em} th,td{border:1px solid #ddd;padding:4px 8px;text-align:left}
th{background:#f5f5f5} td.num{text-align:right;font-variant-numeric:tabular-nums} nav a{margin-right:14px}
.counts span{display:inline-block;margin-right:16px} code{font-size:.95em}
"""


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

    A ``mode: frontier`` study (:mod:`harness.report._frontier`) gets a ``frontier`` section (over ``frontier_axes``,
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
    from harness.report._frontier import frontier_axes as pick_axes, frontier_trials, is_frontier

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
        from harness.report._frontier import frontier_figure, frontier_table

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
