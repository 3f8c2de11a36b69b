"""The data of ``hefsweep report``: a study's trials (Optuna) joined with their MLflow runs as :class:`TrialRow`,
and the MLflow UI links."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["DEFAULT_UI", "TrialRow", "collect_trials", "default_report_dir", "run_url"]

DEFAULT_UI = "http://127.0.0.1:5000"


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
