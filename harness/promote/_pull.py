"""``pull``: a registered version (``NAME@alias`` / ``NAME/version``) downloaded, its sha256 checked against the
version's tag, with a tiled run's recipe and a split run's segment files, written only once all is verified."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from harness.errors import HarnessError
from harness.promote._bundle import _place_bundle, _pull_bundle
from harness.promote._records import Pulled
from harness.promote._store import _check_sha256, _download, _store
from harness.promote._tiling import _pull_tiling
from harness.tracking import open_client


def parse_model_ref(ref: str, default_alias: str = "champion") -> tuple[str, str | None, str | None]:
    """``NAME@alias`` / ``NAME/version`` / ``NAME`` (= ``NAME@<default_alias>``) -> (name, alias, version).

    Raises:
        HarnessError: an empty name, alias or version.
    """
    name, alias, version = ref, None, None
    if "@" in ref:
        name, alias = ref.rsplit("@", 1)
    elif "/" in ref and ref.rsplit("/", 1)[1].isdigit():
        name, version = ref.rsplit("/", 1)
    else:
        alias = default_alias
    if not name or (alias is not None and not alias):
        raise HarnessError(f"model reference {ref!r}", "empty name or alias", "NAME[@alias|/version]")
    return name, alias, version


def pull(tracking_uri: str, ref: str, out: Path) -> Pulled:
    """Download a registered version's artifact, verify its sha256 against the version's tag, write it to ``out``.

    The file is downloaded and hashed in a temporary folder and moved into ``out`` only when the hash matches;
    on any error ``out`` is left as it was (not even created).

    Raises:
        HarnessError: unknown model, alias or version; a version without a ``hefsweep.sha256`` tag; a hash
            mismatch (tampered artifact); an unreachable store; ``out`` is a file.
    """
    name, alias, version = parse_model_ref(ref)
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise HarnessError(out, "is a file", "a folder to write the artifact into")
    client = open_client(tracking_uri)
    with _store(f"registered model {name!r}", "a model in this registry (see `hefsweep promote`)"):
        client.get_registered_model(name)
    if alias is not None:
        with _store(f"alias {alias!r} of model {name!r}", "an alias set by `hefsweep promote`"):
            mv = client.get_model_version_by_alias(name, alias)
    else:
        with _store(f"version {version} of model {name!r}", "an existing version number"):
            mv = client.get_model_version(name, str(version))
    tags = dict(mv.tags or {})
    expected = tags.get("hefsweep.sha256")
    what = f"{name} version {mv.version}"
    if not expected:
        raise HarnessError(what, "has no hefsweep.sha256 tag", "a version registered by `hefsweep promote`")
    with tempfile.TemporaryDirectory(prefix="hefsweep-pull-") as tmp:
        local = _download(mv.source, Path(tmp), tracking_uri, f"artifact of {what}")
        actual = _check_sha256(local, expected, f"artifact {mv.source} of {what}",
                               "as recorded on the version (the stored artifact was changed; refused)")  # fmt: skip
        tiling = _pull_tiling(mv.source, tags, Path(tmp), tracking_uri, what)  # verified before anything is written
        segments = _pull_bundle(mv.source, local, Path(tmp), tracking_uri, what)  # a split version's files, verified
        out.mkdir(parents=True, exist_ok=True)
        written = []
        for src in (local, *([tiling] if tiling is not None else [])):
            dest = out / src.name
            staging = out / f".{src.name}.{os.getpid()}.partial"
            shutil.copyfile(src, staging)
            os.replace(staging, dest)
            written.append(dest)
        written += _place_bundle(segments, out)
    return Pulled(name, str(mv.version), written[0], actual, mv.run_id, tags, tuple(written[1:]))
