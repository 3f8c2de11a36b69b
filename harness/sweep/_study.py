"""The study: created or opened with its fingerprint checked (``_open_study``: the search space and the content
of its checkpoint and data; ``_inputs_changed`` says what changed), its pruner, the count of finished trials, and
the queries of an existing study (:func:`study_summary`, :func:`study_space_file`)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from harness.errors import ConfigError, HarnessError
from harness.space import SearchSpace
from harness.sweep._storage import _storage_error, is_storage_error


def _open_study(space: SearchSpace, name: str, storage: Any, url: str) -> Any:
    import optuna

    # the study fingerprint: the search space, and the content of the checkpoint and the data it is computed from
    space_part, content = space.fingerprint(), space.content_fingerprint()
    fingerprint = json.dumps({**space_part, "content": content}, sort_keys=True)
    try:
        study = optuna.create_study(
            study_name=name,
            storage=storage,
            load_if_exists=True,
            direction="maximize",
            sampler=optuna.samplers.TPESampler(seed=space.seed, n_startup_trials=4),
            pruner=_pruner(space),
        )
        stored = study.user_attrs.get("hefsweep.space")
        if stored is None:
            study.set_user_attr("hefsweep.space", fingerprint)
            if space.source is not None:
                study.set_user_attr("hefsweep.space_file", str(space.source))
        else:
            if stored != fingerprint and json.loads(stored) == space_part:
                # a study created before the fingerprint covered the inputs, over the same space: from now on it does
                study.set_user_attr("hefsweep.space", fingerprint)
                stored = fingerprint
            if stored == fingerprint:
                # a trial whose owner process on this machine is gone (a sweep SIGKILLed and resumed right away) is
                # failed and retried now, even when this sweep runs no trial of its own
                optuna.storages.fail_stale_trials(study)
    except Exception as exc:
        if not is_storage_error(exc):
            raise  # a bug: its traceback, exit 2
        raise _storage_error(url, exc) from None
    if stored is not None and stored != fingerprint:
        where = f"study {name!r} in {url.split('@')[-1]}"
        old = json.loads(stored)
        if {k: v for k, v in old.items() if k != "content"} != space_part:
            raise ConfigError(where, "exists with a different search space",
                              "the space it was created with (use another --study name)")  # fmt: skip
        raise ConfigError(
            where,
            _inputs_changed(old.get("content") or {}, content, space),
            "the checkpoint and data it was created with (use --study NAME for a new study)",
        )
    return study


def _inputs_changed(old: dict[str, str], new: dict[str, str], space: SearchSpace) -> str:
    """What changed since a study was created, on one line: each changed input, its new and its recorded hash."""
    labels = {
        "checkpoint": f"checkpoint {space.checkpoint}",
        "calibration": f"calibration data {space.data.calibration}",
        "evaluation": f"evaluation data {space.data.evaluation}",
    }
    changed = [
        f"{label} (sha256 {new[k][:12]}, was {str(old.get(k))[:12]})" for k, label in labels.items() if old.get(k) != new[k]
    ]
    return "changed since the study was created: " + ", ".join(changed)


def _pruner(space: SearchSpace) -> Any:
    import optuna

    if space.pruner is None:
        return optuna.pruners.NopPruner()
    return optuna.pruners.WilcoxonPruner(
        p_threshold=space.pruner.p_threshold, n_startup_steps=space.pruner.n_startup_steps
    )


def study_summary(study: str, storage: str) -> Any:
    """The Optuna ``StudySummary`` of an existing study.

    Raises:
        HarnessError: no such sqlite file (Optuna would create one), an unusable storage, or no such study.
    """
    import optuna

    if storage.startswith("sqlite:///") and not Path(storage.removeprefix("sqlite:///")).is_file():
        raise HarnessError(
            f"Optuna storage {storage}", "no such database file", "the store of a sweep (`--root` or `--storage`)"
        )
    try:
        summaries = {s.study_name: s for s in optuna.get_all_study_summaries(storage, include_best_trial=False)}
    except Exception as exc:
        if not is_storage_error(exc):
            raise  # a bug: its traceback, exit 2
        raise _storage_error(storage, exc) from None
    if study not in summaries:
        names = sorted(summaries)
        shown = ", ".join(names[:10]) + (" ..." if len(names) > 10 else "")
        raise HarnessError(f"study {study!r}", f"not found in {storage.split('@')[-1]}",
                           f"one of: {shown or 'none (run `hefsweep sweep` first)'}")  # fmt: skip
    return summaries[study]


def study_space_file(study: str, storage: str) -> Path:
    """The search-space file a study was created from (recorded in the study's user attributes).

    Raises:
        HarnessError: the study does not exist or has no recorded space file.
    """
    summary = study_summary(study, storage)
    path = summary.user_attrs.get("hefsweep.space_file")
    if not path:
        raise HarnessError(f"study {study!r}", "no recorded space file", "--space SPACE.yaml")
    return Path(path)


def _done(study: Any) -> int:
    from optuna.trial import TrialState

    return len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED)))
