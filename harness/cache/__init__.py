"""Content-hash stage cache, with failures cached too.

A stage's key is the sha256 of canonical JSON over (stage name, stage version, its parameters, the keys of
the stages it consumes). A result is a directory built in a private temp folder and published with one
``rename`` -- so a reader never sees a half-written entry, concurrent workers building the same key do not
corrupt each other (the loser's copy is discarded), and an entry is never overwritten.

A build that fails for a *known, deterministic* reason is published the same way, as a failure record: the
next ``build`` of that key raises the same :class:`CachedBuildError` in milliseconds without running the stage
(``replayed=True``). Only failures the classification table (:mod:`harness.failures`) knows are recorded -- an
unclassified failure may be a bug in the harness, whatever its class, and is retried next time -- and transient
causes never are (see :func:`unrecorded_reason`): a timeout or a crashed worker, an interrupt, running out of
memory or disk, file-system trouble on the cache itself, a missing module, a programming error in the harness,
or any exception marked ``transient = True``. A record that the current rules would not write (e.g. one left by
an older version) is dropped instead of replayed.

Layout under the root (``<root>/cache`` by default, or ``$HEFSWEEP_CACHE_DIR``, see :func:`default_cache_root`)::

    <stage>/<key>/                published results (``stage.json`` holds the stage's metadata)
    failures/<stage>/<key>/       recorded failures: ``cached_failure.json`` + what the build left (logs)
    failed/<stage>-<key12>-<id>/  output of failed builds that were not recorded (transient causes, or a
                                  failure another worker recorded first), kept for the trial's artifacts
    tmp/                          builds in progress
    locks/<stage>-<key>           in-flight markers of builds in progress (:mod:`harness.cache._inflight`)
    trash/                        entries being deleted by :meth:`StageCache.prune`
    reuse/, repairs/              owned by the pipeline (shared calibration ranges, repair logs)

An entry's age is the time since it was last *used*: publication, or a cache hit (a hit touches the entry's
folder). :meth:`StageCache.scan` and :meth:`StageCache.prune` implement ``hefsweep cache {info,prune}``.

What lives where (import from ``harness.cache``; the modules are private):

- ``_keys.py``: :func:`stage_key`, :func:`canonical_json`, :func:`file_sha256` (memoized on a stat fingerprint),
  :func:`default_cache_root` (``CACHE_DIR_ENV``).
- ``_failures.py``: :class:`FailureRecord`, :class:`CachedBuildError`, :func:`unrecorded_reason` (which failures
  are recorded) and the classification glue (``_classify``, ``_logs``, ``_cause_parts``).
- ``_store.py``: :class:`StageCache` (lookup, build, the failure recorded or replayed) and :class:`StageEntry`.
- ``_prune.py``: :class:`CacheItem`, :class:`PruneReport`, :func:`folder_bytes`, ``LEFTOVER_AGE_S`` and the scan,
  remove and prune methods of :class:`StageCache` (the ``_Pruning`` mixin).
- ``_inflight.py``: the in-flight markers of builds in progress (:class:`~harness.cache._inflight.InFlight`).
"""

from __future__ import annotations

from harness.cache._failures import CachedBuildError, FailureRecord, unrecorded_reason
from harness.cache._keys import CACHE_DIR_ENV, canonical_json, default_cache_root, file_sha256, stage_key
from harness.cache._prune import LEFTOVER_AGE_S, RESERVED, CacheItem, PruneReport, folder_bytes
from harness.cache._store import StageCache, StageEntry

__all__ = [
    "CACHE_DIR_ENV",
    "CacheItem",
    "CachedBuildError",
    "FailureRecord",
    "PruneReport",
    "StageCache",
    "StageEntry",
    "canonical_json",
    "default_cache_root",
    "file_sha256",
    "folder_bytes",
    "stage_key",
    "unrecorded_reason",
]
