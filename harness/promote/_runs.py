"""Choosing the run to promote: a study's best ok trial or a run by id, the check that it is an ok trial run, and
the study's search space (from the parent run) or, without it, the backend options its tags name."""

from __future__ import annotations

from typing import Any

from harness.errors import HarnessError
from harness.promote._store import _quote_ok, _store


def _best_run(client: Any, study: str) -> Any:
    _quote_ok(study, "study")
    with _store(f"study {study!r}", "an MLflow experiment written by `hefsweep sweep`"):
        exp = client.get_experiment_by_name(study)
    if exp is None:
        raise HarnessError(f"study {study!r}", "no MLflow experiment of that name", "a study swept into this store")
    with _store(f"study {study!r}", "searchable runs"):
        runs = client.search_runs(
            [exp.experiment_id],
            filter_string=(
                f"tags.`hefsweep.study` = '{study}' and tags.`hefsweep.role` = 'trial' "
                "and tags.`hefsweep.status` = 'ok' and tags.`hefsweep.compiled` = 'true'"
            ),
            order_by=["metrics.si_snr_db DESC"],
            max_results=1,
        )
    if not runs:
        raise HarnessError(f"study {study!r}", "has no run with hefsweep.status=ok", "at least one successful trial")
    return runs[0]


def _get_run(client: Any, run_id: str) -> Any:
    with _store(f"run {run_id}", "the id of a trial run in this tracking store"):
        return client.get_run(run_id)


def _require_ok(run: Any) -> None:
    tags = run.data.tags
    rid = run.info.run_id
    if tags.get("hefsweep.role") != "trial":
        role = tags.get("hefsweep.role", "no hefsweep.role tag")
        raise HarnessError(f"run {rid}", f"is not a trial run ({role})", "the run of a sweep trial")
    status = tags.get("hefsweep.status")
    if status != "ok":
        seen = f"status {status}" if status else "no hefsweep.status (running or interrupted)"
        if tags.get("hefsweep.signature"):
            seen += f" ({tags['hefsweep.signature']})"
        raise HarnessError(f"run {rid}", seen, "a trial with hefsweep.status=ok")
    for key in ("hefsweep.artifact", "hefsweep.artifact_sha256", "hefsweep.study"):
        if not tags.get(key):
            raise HarnessError(f"run {rid}", f"has no {key} tag", "a trial logged by `hefsweep sweep`")
    if "si_snr_db" not in run.data.metrics:
        raise HarnessError(f"run {rid}", "has no si_snr_db metric", "a trial logged by `hefsweep sweep`")


def _space_of(client: Any, run: Any, required: bool = True) -> Any:
    """The study's search space, from the parent run's ``space`` param (``None`` if absent and not required)."""
    from harness.space import load_space
    from harness.tracking import run_space_file

    try:
        path = run_space_file(client, run, "its data.evaluation is needed to re-run emulation")
    except HarnessError as exc:
        if not required:
            return None
        raise HarnessError(exc.obj, exc.seen, exc.expected, "promote where the sweep's files are, or pass --skip-emulation") from None
    return load_space(path)


def _options_from_tags(backend: str, tags: dict[str, str]) -> dict[str, Any]:
    """Backend options when the space file is not at hand: the Hailo target from the run's version tags."""
    arch = tags.get("hefsweep.version.hw_arch")
    return {"hw_arch": arch} if backend == "hailo" and arch else {}
