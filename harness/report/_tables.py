"""The HTML tables of ``hefsweep report``: the loss decomposition per trial, the failure signatures and the best
feasible trials (each with a stable ``id`` the e2e tests and the browser tests look for)."""

from __future__ import annotations

import html
from collections.abc import Callable

from harness.report._data import TrialRow
from harness.report._figures import _LOSS, _decomposed


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
