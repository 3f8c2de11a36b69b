"""Minimal override sets: delta debugging (Zeller's ddmin) of a passing trial's overrides.

A trial that passes with an override set of many entries rarely needs all of them. :func:`minimize_overrides`
splits the set into *atoms* -- one per (override, layer pattern), so an override naming three layers is three
atoms, and a global override (no layers) is one -- and searches for a subset that still passes and is
1-minimal: removing any single atom from it makes the test fail. It is the classic ddmin with the roles of
pass and fail swapped ("interesting" = passes), plus two usual refinements: the empty set is probed first, and
no subset is probed twice.

Probe sets keep the original shape: the atoms kept from one override are put back together as that override
with fewer layers, so probing the full set is exactly the original set (and hits the trial's cached stages).

:func:`minimize_run` is ``hefsweep minimize RUN_ID``: it re-reads a passing trial from MLflow, probes subsets
with the pipeline (sharing the stage cache), logs every probe as an MLflow run and tags the original trial
with the result.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import sys
import time
import typing
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from harness.backends._protocol import Override, OverrideSet
from harness.errors import HarnessError

__all__ = [
    "Atom",
    "MinimizeResult",
    "NotPassing",
    "assemble",
    "minimize_overrides",
    "minimize_run",
    "split_atoms",
]


class NotPassing(HarnessError):
    """The override set to minimize does not pass the test in the first place (nothing to minimize)."""


@dataclass(frozen=True)
class Atom:
    """The unit ddmin removes: one layer pattern of one override (or a whole global override).

    Attributes:
        index: Position of the override it came from in the original set.
        kind: The override's kind.
        layer: One of its layer patterns; None for an override without layers.
        value: The override's value.
    """

    index: int
    kind: str
    layer: str | None
    value: float | int | str | None = None

    def label(self) -> str:
        """``kind:layer`` (``kind=value`` for global overrides)."""
        if self.layer is None:
            return f"{self.kind}={self.value}" if self.value is not None else self.kind
        return f"{self.kind}:{self.layer}"

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable form."""
        return dataclasses.asdict(self)


def split_atoms(overrides: OverrideSet) -> list[Atom]:
    """One atom per (override, layer pattern); duplicate patterns within an override count once."""
    atoms: list[Atom] = []
    for i, ov in enumerate(overrides.overrides):
        if not ov.layers:
            atoms.append(Atom(i, ov.kind, None, ov.value))
        for layer in dict.fromkeys(ov.layers):
            atoms.append(Atom(i, ov.kind, layer, ov.value))
    return atoms


def assemble(original: OverrideSet, atoms: Sequence[Atom], name: str | None = None) -> OverrideSet:
    """The override set made of ``atoms``, in the original's order and shape.

    Each original override whose atoms are (partly) kept comes back with just the kept layer patterns; an
    override none of whose atoms is kept is dropped.
    """
    kept: dict[int, list[str]] = {}
    for a in atoms:
        kept.setdefault(a.index, [])
        if a.layer is not None:
            kept[a.index].append(a.layer)
    out: list[Override] = []
    for i, ov in enumerate(original.overrides):
        if i not in kept:
            continue
        layers = tuple(layer for layer in dict.fromkeys(ov.layers) if layer in kept[i])
        out.append(Override(ov.kind, layers, ov.value))
    return OverrideSet(original.name if name is None else name, tuple(out))


def minimize_overrides(
    test: Callable[[OverrideSet], bool],
    overrides: OverrideSet,
    log: Callable[[dict[str, Any]], None],
    *,
    max_probes: int | None = None,
) -> OverrideSet:
    """Shrink ``overrides`` to a 1-minimal subset that still passes ``test`` (ddmin).

    Probes, in order: the full set (must pass), the empty set, then ddmin's subsets and complements at
    granularity n = 2, 4, ... |atoms|. A subset is never probed twice. With k atoms the number of probes is
    at most k^2 + 3k + 2 (Zeller's worst case plus the two initial probes); when one small subset is what
    passes, it is close to 2 * (size of that subset) * log2(k).

    Args:
        test: True when a set passes (e.g. a pipeline run that compiles and reaches an SI-SNR floor).
        overrides: The set to minimize.
        log: Called once per probe with ``{"probe", "phase", "granularity", "atoms", "n_atoms", "overrides",
            "passed", "seconds"}`` (``phase``: ``full``, ``empty``, ``subset`` or ``complement``).
        max_probes: Stop after this many probes and return the smallest passing set found so far (then it
            is passing but maybe not 1-minimal).

    Returns:
        The smallest passing set found, in the shape of ``overrides`` (same name). 1-minimal unless
        ``max_probes`` stopped the search.

    Raises:
        NotPassing: the full set does not pass.
        ValueError: ``max_probes`` < 1.
    """
    if max_probes is not None and max_probes < 1:
        raise ValueError(f"max_probes {max_probes}; expected >= 1")
    atoms = split_atoms(overrides)
    seen: dict[frozenset[Atom], bool] = {}
    count = 0

    class _Budget(Exception):
        pass

    def probe(subset: Sequence[Atom], phase: str, n: int) -> bool:
        nonlocal count
        k = frozenset(subset)
        if k in seen:
            return seen[k]
        if max_probes is not None and count >= max_probes:
            raise _Budget
        count += 1
        probe_set = assemble(overrides, subset)
        start = time.monotonic()
        passed = bool(test(probe_set))
        seen[k] = passed
        log(
            {
                "probe": count,
                "phase": phase,
                "granularity": n,
                "atoms": [a.label() for a in subset],
                "n_atoms": len(subset),
                "overrides": probe_set.to_dict(),
                "passed": passed,
                "seconds": time.monotonic() - start,
            }
        )
        return passed

    if not probe(atoms, "full", 1):
        raise NotPassing(
            f"override set {overrides.name!r}", "does not pass with all its overrides", "a passing set to minimize"
        )
    current = list(atoms)
    try:
        if current and probe([], "empty", 0):
            return assemble(overrides, [])
        n = 2
        while len(current) >= 2:
            chunks = _split(current, n)
            reduced = False
            for chunk in chunks:  # reduce to a subset
                if probe(chunk, "subset", n):
                    current, n, reduced = chunk, 2, True
                    break
            if not reduced and n > 2:  # reduce to a complement (for n == 2 the complements are the subsets)
                for chunk in chunks:
                    complement = [a for a in current if a not in chunk]
                    if probe(complement, "complement", n):
                        current, n, reduced = complement, max(n - 1, 2), True
                        break
            if not reduced:
                if n >= len(current):
                    break
                n = min(2 * n, len(current))
    except _Budget:
        pass
    return assemble(overrides, current)


def _split(items: list[Atom], n: int) -> list[list[Atom]]:
    """``items`` in ``n`` contiguous chunks of (nearly) equal size."""
    out: list[list[Atom]] = []
    start = 0
    for i in range(n):
        end = start + (len(items) - start) // (n - i)
        out.append(items[start:end])
        start = end
    return [c for c in out if c]


# -- hefsweep minimize RUN_ID ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class MinimizeResult:
    """What :func:`minimize_run` found.

    Attributes:
        run_id: The minimized trial's MLflow run.
        original: Its override set.
        minimal: The minimal passing set.
        probes: One dict per probe (see :func:`minimize_overrides`), plus ``run_id`` / ``signature`` / metrics.
        seconds: Wall time of the minimization.
    """

    run_id: str
    original: OverrideSet
    minimal: OverrideSet
    probes: tuple[dict[str, Any], ...]
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable summary (the ``minimize/minimal_override_set.json`` artifact)."""
        kept = {a.label() for a in split_atoms(self.minimal)}
        return {
            "of": self.run_id,
            "original": self.original.to_dict(),
            "minimal": self.minimal.to_dict(),
            "atoms_kept": [a.label() for a in split_atoms(self.original) if a.label() in kept],
            "atoms_removed": [a.label() for a in split_atoms(self.original) if a.label() not in kept],
            "n_probes": len(self.probes),
            "probes": list(self.probes),
            "seconds": self.seconds,
        }


def override_set_from_dict(d: dict[str, Any]) -> OverrideSet:
    """Inverse of :meth:`OverrideSet.to_dict`."""
    return OverrideSet(
        str(d.get("name", "")),
        tuple(Override(o["kind"], tuple(o.get("layers") or ()), o.get("value")) for o in d.get("overrides", ())),
    )


def trial_config_from_params(params: dict[str, str]) -> Any:
    """A :class:`~harness.pipeline.TrialConfig` from a trial run's MLflow params (strings)."""
    from harness.pipeline import TrialConfig

    hints = typing.get_type_hints(TrialConfig)
    values: dict[str, Any] = {}
    for f in dataclasses.fields(TrialConfig):
        if f.name not in params:
            continue
        raw = params[f.name]
        args = typing.get_args(hints[f.name]) or (hints[f.name],)
        if raw == "None" and type(None) in args:
            values[f.name] = None
        elif int in args:
            values[f.name] = int(raw)
        elif float in args:
            values[f.name] = float(raw)
        else:
            values[f.name] = raw
    return TrialConfig(**values)


def minimize_run(
    run_id: str,
    *,
    root: Path = Path("mlruns"),
    tracking_uri: str | None = None,
    cache_dir: Path | None = None,
    space_path: Path | None = None,
    min_si_snr_db: float | None = None,
    max_probes: int | None = None,
    stream: TextIO | None = None,
) -> MinimizeResult:
    """Minimize a passing trial's override set, probing with the pipeline and logging to MLflow.

    The trial's configuration comes from its run's params, its search space from the parent run's ``space``
    param (or ``space_path``), its override set from ``trial.json`` (the repaired final set, if the trial was
    repaired) or else the space's named set. A probe passes when every stage through compile and emulate
    passes (status ``ok``) and, with ``min_si_snr_db``, ``si_snr_db >= min_si_snr_db``. Probes run without
    the repair loop, so each tests exactly its set. Each probe is a child run of the sweep's parent run
    (tags ``hefsweep.role=minimize-probe``, ``hefsweep.minimize.of=<run_id>``); the original run gets the tag
    ``hefsweep.minimal_override_set`` and the artifact ``minimize/minimal_override_set.json``.

    Raises:
        HarnessError: unknown run, a run that is not a passing trial, unreadable space, unreachable store.
        NotPassing: the trial does not pass the criterion with its own override set.
    """
    from harness.cache import StageCache, default_cache_root
    from harness.pipeline import Pipeline
    from harness.space import load_space
    from harness.tracking import Tracker, default_tracking_uri, open_client, run_space_file, trial_run

    stream = stream or sys.stdout
    uri = tracking_uri or default_tracking_uri(root)
    client = open_client(uri)
    run = trial_run(client, run_id, uri)
    tags, params = run.data.tags, run.data.params
    status = tags.get("hefsweep.status")
    if status != "ok" or run.info.status != "FINISHED":
        sig = tags.get("hefsweep.signature", "-")
        raise HarnessError(
            f"MLflow run {run_id}",
            f"trial did not pass (status {status or run.info.status}, signature {sig})",
            "a passing trial: minimize shrinks the override set of a trial that passed",
        )
    parent_id = tags.get("mlflow.parentRunId")
    if not parent_id:  # the probes are logged under the study's parent run
        raise HarnessError(f"MLflow run {run_id}", "has no parent run", "a trial run logged by `hefsweep sweep`")
    space_file = run_space_file(client, run, "pass --space PATH", given=space_path)
    space = load_space(space_file)
    updates: dict[str, Any] = {"max_repairs": 0}  # a probe tests exactly its set
    if params.get("backend") and params["backend"] != space.backend:
        updates["backend"] = params["backend"]
    space = space.model_copy(update=updates)
    cfg = trial_config_from_params(params)
    original = _trial_override_set(client, run_id, space, cfg.override_set)

    exp_name = client.get_experiment(run.info.experiment_id).name
    tracker = Tracker(uri, exp_name, Path(root) / "artifacts")
    cache = StageCache(cache_dir if cache_dir is not None else default_cache_root(Path(root)))
    pipeline = Pipeline(space, cache)
    pipeline.validate_inputs()
    atoms = split_atoms(original)
    bound = len(atoms) ** 2 + 3 * len(atoms) + 2
    crit = f" and si_snr_db >= {min_si_snr_db:g} dB" if min_si_snr_db is not None else ""
    stream.write(
        f"hefsweep minimize: run {run_id} (trial {tags.get('hefsweep.trial', '?')} of study "
        f"{tags.get('hefsweep.study', exp_name)}), override set {original.name!r}: {len(atoms)} atoms "
        f"[{', '.join(a.label() for a in atoms)}]; pass = status ok{crit}; at most {bound} probes\n"
    )
    stream.flush()
    probes: list[dict[str, Any]] = []
    pending: dict[str, Any] = {}

    def test(probe_set: OverrideSet) -> bool:
        n = len(probes) + 1
        probe_atoms = [a.label() for a in split_atoms(probe_set)]
        probe_run = tracker.child_run(
            parent_id,
            f"minimize-{run_id[:8]}-probe-{n:02d}",
            params={
                **cfg.to_dict(),
                "backend": space.backend,
                "probe": n,
                "atoms": json.dumps(probe_atoms),
                "n_atoms": len(probe_atoms),
                "overrides": json.dumps(probe_set.to_dict()["overrides"]),
            },
            tags={"hefsweep.role": "minimize-probe", "hefsweep.minimize.of": run_id, "hefsweep.study": exp_name},
        )
        try:
            result = pipeline.run(cfg, overrides=probe_set)
        except (KeyboardInterrupt, SystemExit):
            tracker.set_tags(probe_run, {"hefsweep.status": "failed", "hefsweep.signature": "harness:Interrupted:-"})
            tracker.end(probe_run, "KILLED")
            raise
        except Exception as exc:  # a user error (one line) or a bug (traceback): a failure, not an interrupt
            kind = f"{type(exc).__name__}:-" if isinstance(exc, HarnessError) else f"Bug:{type(exc).__name__}"
            with contextlib.suppress(Exception):
                tracker.set_tags(probe_run, {"hefsweep.status": "failed", "hefsweep.signature": f"harness:{kind}"})
                tracker.end(probe_run, "FAILED")
            raise
        si = result.metrics.get("si_snr_db")
        if not result.ok:
            assert result.failure is not None
            passed, signature, why = False, result.failure.signature, result.failure.signature
        elif min_si_snr_db is not None and (si is None or si < min_si_snr_db):
            passed, signature, why = False, "-", f"si_snr_db {si:.2f} < {min_si_snr_db:g}"
        else:
            passed, signature, why = True, "-", f"si_snr_db {si:.2f}" if si is not None else "ok"
        verdict = "pass" if passed else "fail"
        tracker.log_params(probe_run, {"status": result.status, "signature": signature, "verdict": verdict})
        tracker.set_tags(
            probe_run,
            {
                "hefsweep.status": result.status,
                "hefsweep.minimize.verdict": verdict,
                **({"hefsweep.signature": signature} if signature != "-" else {}),
                **{f"hefsweep.cached.{k}": str(v["cached"]).lower() for k, v in result.stages.items()},
            },
        )
        tracker.log_metrics(probe_run, {k: v for k, v in result.metrics.items() if k.startswith("si_snr")})
        tracker.end(probe_run, "FINISHED" if result.ok else "FAILED")
        pending.update(run_id=probe_run, status=result.status, signature=signature, si_snr_db=si, verdict=verdict)
        secs = sum(v["seconds"] for v in result.stages.values())
        stream.write(
            f"  probe {n:2d}: {len(probe_atoms)} atoms [{', '.join(probe_atoms)}] -> {verdict.upper()} ({why}) "
            f"[{secs:.1f} s]\n"
        )
        stream.flush()
        return passed

    def record(entry: dict[str, Any]) -> None:
        probes.append({**entry, **pending})
        pending.clear()

    start = time.monotonic()
    try:
        minimal = minimize_overrides(test, original, record, max_probes=max_probes)
    except NotPassing:
        raise NotPassing(
            f"MLflow run {run_id}",
            f"does not pass with its own override set {original.name!r} (pass = status ok{crit})",
            "a trial that passes the criterion before it is minimized",
        ) from None
    finally:
        pipeline.close()
    result = MinimizeResult(run_id, original, minimal, tuple(probes), time.monotonic() - start)
    summary = result.to_dict()
    summary["criterion"] = {"status": "ok", "min_si_snr_db": min_si_snr_db}
    summary["one_minimal"] = max_probes is None or len(probes) < max_probes
    stopped = "" if summary["one_minimal"] else f" (stopped at --max-probes {max_probes}: passing, maybe not 1-minimal)"
    tracker.log_json(run_id, summary, "minimal_override_set.json", "minimize")
    tracker.set_tags(
        run_id,
        {
            "hefsweep.minimal_override_set": json.dumps(minimal.to_dict(), separators=(",", ":")),
            "hefsweep.minimize.probes": len(probes),
        },
    )
    stream.write(
        f"minimal override set: {len(split_atoms(minimal))} of {len(atoms)} atoms "
        f"[{', '.join(a.label() for a in split_atoms(minimal))}] after {len(probes)} probes in {result.seconds:.1f} s"
        f"{stopped}\n"
        f"  removed: {', '.join(summary['atoms_removed']) or 'nothing'}\n"
        f"  logged: tag hefsweep.minimal_override_set and artifact minimize/minimal_override_set.json on run "
        f"{run_id}; probes are runs tagged hefsweep.minimize.of={run_id}\n"
    )
    return result


_PROGRESS_BAR = "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"


def _trial_override_set(client: Any, run_id: str, space: Any, name: str) -> OverrideSet:
    """The set the trial really ran with: ``trial.json``'s repaired final set, else the space's named set.

    Raises:
        HarnessError: ``trial.json`` cannot be downloaded or read (the named set may not be what the trial ran:
            a repaired trial's final set is only in ``trial.json``), or the named set is not in the space.
    """
    import os
    import tempfile
    from unittest import mock

    from harness.errors import describe

    try:
        with tempfile.TemporaryDirectory() as tmp, mock.patch.dict(os.environ, {_PROGRESS_BAR: "false"}):
            path = client.download_artifacts(run_id, "trial.json", tmp)
            info = json.loads(Path(path).read_text())
        if not isinstance(info, dict):
            raise ValueError(f"a JSON {type(info).__name__}, not an object")
    except Exception as exc:  # noqa: BLE001 - any failure to get it is this one line
        raise HarnessError(
            f"artifact trial.json of run {run_id}",
            f"cannot be read ({describe(exc)})",
            "the trial.json `hefsweep sweep` logs with every trial (the set the trial really ran with)",
        ) from None
    final = (info.get("repair") or {}).get("final_override_set")
    if final:
        return override_set_from_dict(final)
    if name not in space.override_sets:
        raise HarnessError(
            f"override set {name!r} of run {run_id}",
            "is not defined in the search space",
            f"one of {sorted(space.override_sets)}",
        )
    result: OverrideSet = space.override_set(name)
    return result
