"""Verified promotion: register a trial's deployable artifact in the MLflow Model Registry, move an alias to it,
roll the alias back, and pull a registered artifact with its hash checked.

Promotion re-checks the artifact *as stored* before registering it:

1. **sha256** -- the compiled artifact (``hefsweep.artifact``, e.g. ``compiled/model.qdq.onnx`` or
   ``compiled/model.hef``) is downloaded from the run and hashed; it must equal ``hefsweep.artifact_sha256``.
2. **versions** -- the run's ``hefsweep.version.*`` tags must equal ``get_backend(name, **options).versions()``
   here (``allow_version_mismatch`` turns a mismatch into a recorded warning).
3. **eval set + emulation** -- the evaluation set is rebuilt from the study's search space (the parent run's
   ``space`` param -> ``data.evaluation``, ``eval_clips``; the run's ``width``), its key must equal the run's
   ``hefsweep.eval_set``; then the quantized model, the original float model (the checkpoint of the study's space,
   its sha256 checked against the trial's ``trial.json`` ``original_reference``, run in torch as the sweep did) and
   the substituted float ``export/model.onnx`` are run on it and the objective is recomputed exactly as the sweep
   computes it (``harness.pipeline._metrics``: per clip, true length, relative eps, best permutation, quantized vs
   original float; mean over clips), which must be within ``tolerance_db`` of the logged ``si_snr_db``; the
   substitution and quantization losses are recomputed alongside. A trial logged before the end-to-end objective
   (no ``original_reference``) is checked against its own definition (quantized vs ``export/model.onnx``). ORT: the
   downloaded QDQ ONNX itself runs in ONNX Runtime. Hailo: the logged
   quantized HAR (``optimize/model_quantized.har``), whose sha256 must be the trial's ``hefsweep.har_sha256``, is
   emulated through the backend in an isolated worker; when
   the DFC is not importable here promotion is refused unless ``skip_emulation`` (then versions and emulation
   are recorded as skipped and only the hash vouches for the artifact).
   A time-tiled run (:mod:`harness.tiling`): its ``compiled/tiling.json`` must hash to the trial's ``trial.json``
   ``tiling.sha256`` (check ``tiling``); the quantized model then runs on the plan's tiles (aligned against
   ``export_tile/model.onnx`` as in the trial), stitched, and is scored on the whole clips; the version is tagged
   ``hefsweep.tiling`` / ``hefsweep.tiling_sha256`` and :func:`pull` writes ``tiling.json`` beside the artifact once
   its hash matches.

Registration: ``create_registered_model`` (if missing) + ``create_model_version(source=<run artifact URI>/<artifact
path>, run_id=...)`` with tags ``hefsweep.sha256``, ``hefsweep.study``, ``hefsweep.run``, ``hefsweep.si_snr_db``,
``hefsweep.version.*`` ...; a run already registered under the model is reused rather than registered twice.
The source is the artifact *file*: MLflow 3.17's ``download_artifacts("models:/<name>@<alias>")`` of a
single-file version yields an empty folder, so :func:`pull` downloads the version's ``source`` URI instead
(works for ``file:`` and ``mlflow-artifacts:`` sources alike).

Ledger (see :class:`Ledger`): every promotion and rollback appends one JSON entry, kept in MLflow on a
dedicated run (tag ``hefsweep.role=ledger``) in the experiment of the model's first promotion, found again
through the registered model's tag ``hefsweep.ledger_run``. Each entry is its own immutable artifact
``entries/<seq>-<id>.json`` (appends never overwrite each other); ``ledger.jsonl`` on the same run is the whole
ledger rewritten after every append, and ``<root>/ledger/<model>.jsonl`` is a local copy of it. An entry holds
who (user@host), when (UTC ISO), action, model, alias, version, previous_version, run_id, study, sha256, source,
metrics and the checks performed (with their status: ok / allowed / skipped). A rollback undoes the latest
promotion of that alias not yet undone (its ``undoes`` field names it), so repeated rollbacks walk back in time.

Order of effects: nothing touches the registry until every check passed; then the version is registered (or
reused), the alias is moved, and the ledger entry is written -- if writing the entry fails, the alias is put
back where it was, so an alias move without its ledger entry is not left behind.

Concurrency: safe for sequential use from any number of machines sharing the tracking server. Two promotions
or rollbacks of the *same model* at the same moment are not serialized: no ledger entry is lost (each is its
own artifact), but the alias ends wherever the later ``set_registered_model_alias`` put it, both entries may
carry the same ``seq`` and the same ``previous_version``, and the ``ledger.jsonl`` view may miss the other's
entry until the next append. Serialize promotions per model (one operator or one CI job).

What lives where (import from ``harness.promote``; the modules are private):

- ``_records.py``: the results -- :class:`Check`, :class:`Verified`, :class:`Promotion`, :class:`Pulled`.
- ``_verify.py``: :func:`verify_run` and its checks (sha256, versions, HAR hash, evaluation set, emulation and the
  recomputed objective).
- ``_tiling.py`` / ``_bundle.py``: a tiled run's ``tiling.json`` and a split run's bundle, checked at promotion
  (``_Tiling``, ``_Bundle``) and restored at pull (``_pull_tiling``, ``_pull_bundle``, ``_place_bundle``).
- ``_runs.py``: choosing the run (a study's best or a run id), the ok-trial check, the study's search space.
- ``_ledger.py``: :class:`Ledger` (``LEDGER_FORMAT``).
- ``_registry.py``: :func:`promote` and :func:`rollback` (model, version, alias, ledger entry).
- ``_pull.py``: :func:`parse_model_ref` and :func:`pull`.
- ``_store.py``: MLflow access (store errors, downloads, the sha256 check, who/when).
"""

from __future__ import annotations

from harness.promote._ledger import LEDGER_FORMAT, Ledger
from harness.promote._pull import parse_model_ref, pull
from harness.promote._records import Check, Promotion, Pulled, Verified
from harness.promote._registry import promote, rollback
from harness.promote._verify import verify_run
from harness.tracking import open_client

__all__ = [
    "Check",
    "Ledger",
    "LEDGER_FORMAT",
    "Promotion",
    "Pulled",
    "Verified",
    "open_client",
    "parse_model_ref",
    "promote",
    "pull",
    "rollback",
    "verify_run",
]
