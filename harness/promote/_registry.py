"""The registry side: :func:`promote` (verify, register or reuse the version, move the alias, append the ledger
entry; the alias is put back if the entry cannot be written) and :func:`rollback` (walk the alias back one
promotion)."""

from __future__ import annotations

import math
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from harness.errors import HarnessError
from harness.promote._ledger import Ledger
from harness.promote._records import Promotion, Verified
from harness.promote._runs import _best_run, _get_run, _require_ok
from harness.promote._store import _first_line, _now, _quote_ok, _store, _who
from harness.promote._verify import verify_run
from harness.tracking import open_client


def _alias_version(client: Any, model: str, alias: str) -> str | None:
    from mlflow.exceptions import MlflowException

    try:
        return str(client.get_model_version_by_alias(model, alias).version)
    except MlflowException as exc:
        if exc.error_code == "RESOURCE_DOES_NOT_EXIST" or "not found" in str(exc).lower():
            return None
        seen = f"MLflow error ({_first_line(exc)})"
        raise HarnessError(f"alias {alias!r} of {model!r}", seen, "a readable registry") from None


def _ensure_model(client: Any, model: str) -> None:
    from mlflow.exceptions import MlflowException

    try:
        client.get_registered_model(model)
        return
    except MlflowException as exc:
        if exc.error_code != "RESOURCE_DOES_NOT_EXIST" and "not found" not in str(exc).lower():
            seen = f"MLflow error ({_first_line(exc)})"
            raise HarnessError(f"registered model {model!r}", seen, "a usable registry") from None
    try:
        client.create_registered_model(model, description="Promoted by `hefsweep promote` (verified artifacts).")
    except MlflowException as exc:
        if exc.error_code != "RESOURCE_ALREADY_EXISTS":  # created meanwhile by another promoter: fine
            seen = f"cannot create ({_first_line(exc)})"
            raise HarnessError(f"registered model {model!r}", seen, "a writable registry") from None


def _version_tags(v: Verified) -> dict[str, str]:
    tags = {
        "hefsweep.sha256": v.sha256,
        "hefsweep.study": v.study,
        "hefsweep.run": v.run_id,
        "hefsweep.backend": v.backend,
        "hefsweep.artifact": v.artifact,
        "hefsweep.checks": ", ".join(f"{c.name}={c.status}" for c in v.checks),
        **{f"hefsweep.version.{k}": val for k, val in v.versions.items()},
        **v.tiling,
    }
    tags.update({f"hefsweep.{k}": f"{val:.4f}" for k, val in v.metrics.items()})
    return tags


def _await_ready(client: Any, mv: Any, model: str) -> Any:
    import time

    deadline = time.monotonic() + 60
    while str(getattr(mv, "status", "READY")) not in ("READY", "ModelVersionStatus.READY"):
        if time.monotonic() > deadline:
            raise HarnessError(f"version {mv.version} of {model!r}", f"status {mv.status} after 60 s", "READY")
        time.sleep(0.5)
        mv = client.get_model_version(model, mv.version)
    return mv


def promote(
    tracking_uri: str,
    *,
    study: str | None = None,
    run_id: str | None = None,
    name: str | None = None,
    alias: str = "champion",
    tolerance_db: float = 0.1,
    allow_version_mismatch: bool = False,
    skip_emulation: bool = False,
    root: Path | None = None,
    progress: Callable[[str], None] | None = None,
) -> Promotion:
    """Verify a trial's stored artifact, register it and move ``alias`` to it; append a ledger entry.

    Args:
        tracking_uri: MLflow tracking (and registry) URI.
        study: Promote this study's best ok trial (highest ``si_snr_db``) ...
        run_id: ... or this run (exactly one of the two).
        name: Registered model name (default ``hefsweep-<study>``).
        alias: The alias to move.
        tolerance_db: Allowed |recomputed - logged| mean SI-SNR.
        allow_version_mismatch: Let a backend version mismatch through (recorded in the ledger).
        skip_emulation: Do not re-run emulation (recorded in the ledger); needed for Hailo runs where the DFC is
            not installed.
        root: Folder of the local ledger copy.
        progress: Called with a line of text per step (for the CLI).

    Returns:
        The :class:`Promotion` (``action`` ``unchanged`` when the alias already pointed at the run's version).

    Raises:
        HarnessError: see :func:`verify_run`; also an unknown run/study, a study without ok runs, an unreachable
            store. Nothing is registered unless every check passed.
    """
    if (study is None) == (run_id is None):
        raise HarnessError("promote", "needs exactly one of --study and --run", "--study NAME or --run RUN_ID")
    if not (tolerance_db >= 0 and math.isfinite(tolerance_db)):
        raise HarnessError("--tolerance-db", tolerance_db, "a finite number >= 0")
    say = progress or (lambda s: None)
    client = open_client(tracking_uri)
    run = _best_run(client, study) if study is not None else _get_run(client, str(run_id))
    _require_ok(run)
    rid = run.info.run_id
    tags = run.data.tags
    say(
        f"run {rid} (study {tags['hefsweep.study']}, trial #{tags.get('hefsweep.trial', '?')}, "
        f"backend {run.data.params.get('backend', '?')}): {tags['hefsweep.artifact']}, "
        f"si_snr_db {run.data.metrics['si_snr_db']:.3f}"
    )
    with tempfile.TemporaryDirectory(prefix="hefsweep-promote-") as tmp:
        v = verify_run(
            client, tracking_uri, run, Path(tmp),
            tolerance_db=tolerance_db, allow_version_mismatch=allow_version_mismatch,
            skip_emulation=skip_emulation, progress=lambda c: say(f"  [{c.status}] {c.name:<9} {c.detail}"),
        )  # fmt: skip
    model = name or f"hefsweep-{v.study}"

    _ensure_model(client, model)
    previous = _alias_version(client, model, alias)
    with _store(f"registered model {model!r}", "a usable registry"):
        same = [
            mv
            for mv in client.search_model_versions(f"name = '{_quote_ok(model, 'model')}' and run_id = '{rid}'")
            if (mv.tags or {}).get("hefsweep.sha256") == v.sha256 and mv.source == f"{run.info.artifact_uri}/{v.artifact}"
        ]
    if same and str(same[0].version) == previous:
        return Promotion("unchanged", model, alias, previous, previous, rid, v.study, v.sha256, v.checks, v.metrics)
    with _store(f"registered model {model!r}", "a writable registry"):
        if same:
            mv = same[0]
        else:
            mv = client.create_model_version(
                model, source=f"{run.info.artifact_uri}/{v.artifact}", run_id=rid, tags=_version_tags(v),
                description=f"{v.artifact} of run {rid} (study {v.study})", await_creation_for=0,
            )  # fmt: skip
            mv = _await_ready(client, mv, model)
    version = str(mv.version)
    ledger = Ledger.open(client, tracking_uri, model, run.info.experiment_id, root)
    entry = {
        "when": _now(),
        "who": _who(),
        "action": "promote",
        "model": model,
        "alias": alias,
        "version": version,
        "previous_version": previous,
        "run_id": rid,
        "study": v.study,
        "backend": v.backend,
        "artifact": v.artifact,
        "source": mv.source,
        "sha256": v.sha256,
        "versions": v.versions,
        "metrics": v.metrics,
        "checks": [c.to_dict() for c in v.checks],
    }
    entries = _move_alias_and_log(client, ledger, model, alias, version, previous, entry)
    return Promotion("promote", model, alias, version, previous, rid, v.study, v.sha256, v.checks, v.metrics,
                     entries[-1], ledger.run_id, len(entries), ledger.local_path, reused=bool(same))  # fmt: skip


def _move_alias_and_log(
    client: Any, ledger: Ledger, model: str, alias: str, version: str, previous: str | None, entry: dict[str, Any]
) -> list[dict[str, Any]]:
    """Move the alias, then append the ledger entry; if the append fails, put the alias back."""
    with _store(f"alias {alias!r} of {model!r}", "a writable registry"):
        client.set_registered_model_alias(model, alias, version)
    try:
        entries = ledger.append(entry)
    except BaseException:
        try:
            if previous is None:
                client.delete_registered_model_alias(model, alias)
            else:
                client.set_registered_model_alias(model, alias, previous)
        except Exception:  # noqa: BLE001, S110 - the original error is the one to report
            pass
        raise
    with _store(f"version {version} of {model!r}", "a writable registry"):
        done = {"promote": "promoted", "rollback": "rolled_back_to"}[entry["action"]]
        client.set_model_version_tag(model, version, f"hefsweep.{done}.{alias}", f"{entry['when']} by {entry['who']}")
    return entries


def rollback(tracking_uri: str, name: str, *, alias: str = "champion", root: Path | None = None) -> Promotion:
    """Move ``alias`` back to the version it pointed to before the last promotion not yet rolled back.

    Repeated rollbacks walk further back through the ledger (each rollback undoes one promotion).

    Raises:
        HarnessError: unknown model, a model without a hefsweep ledger, nothing to roll back (no promotion, or the
            last one had no previous version), or an alias that was moved outside hefsweep since.
    """
    client = open_client(tracking_uri)
    ledger = Ledger.find(client, tracking_uri, name, root)
    if ledger is None:
        raise HarnessError(f"registered model {name!r}", "has no hefsweep ledger", "a model promoted by hefsweep")
    entries = [e for e in ledger.entries() if e.get("alias") == alias]
    undone = {e.get("undoes") for e in entries if e.get("action") == "rollback"}
    active = [e for e in entries if e.get("action") == "promote" and e.get("id") not in undone]
    if not active:
        raise HarnessError(f"alias {alias!r} of {name!r}", "no promotion left to roll back in the ledger",
                           "a promotion made with `hefsweep promote`")  # fmt: skip
    last = active[-1]
    target = last.get("previous_version")
    if target is None:
        raise HarnessError(
            f"alias {alias!r} of {name!r}",
            f"nothing to roll back to: version {last['version']} was the first promoted to it",
            "an earlier version recorded in the ledger",
        )
    current = _alias_version(client, name, alias)
    if current != str(last["version"]):
        raise HarnessError(
            f"alias {alias!r} of {name!r}",
            f"points to version {current} but the ledger's last promotion set version {last['version']} "
            "(moved outside hefsweep?)",
            "the alias where hefsweep left it",
        )
    with _store(f"version {target} of {name!r}", "a version that still exists in the registry", "no longer exists"):
        mv = client.get_model_version(name, str(target))
    vt = mv.tags or {}
    entry = {
        "when": _now(),
        "who": _who(),
        "action": "rollback",
        "model": name,
        "alias": alias,
        "version": str(target),
        "previous_version": str(current),
        "undoes": last["id"],
        "run_id": mv.run_id,
        "study": vt.get("hefsweep.study"),
        "artifact": vt.get("hefsweep.artifact"),
        "source": mv.source,
        "sha256": vt.get("hefsweep.sha256"),
        "metrics": {k.removeprefix("hefsweep."): float(val) for k, val in vt.items()
                    if k in ("hefsweep.si_snr_db", "hefsweep.si_snr_worst_db")},  # fmt: skip
        "checks": [{"name": "alias", "status": "ok", "detail": f"alias was on version {current} as the ledger says"}],
    }
    entries = _move_alias_and_log(client, ledger, name, alias, str(target), str(current), entry)
    return Promotion("rollback", name, alias, str(target), str(current), str(mv.run_id), str(entry["study"]),
                     str(entry["sha256"]), (), entry["metrics"], entries[-1], ledger.run_id, len(entries),
                     ledger.local_path)  # fmt: skip
