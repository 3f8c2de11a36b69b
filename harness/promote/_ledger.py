"""The promotion ledger (:class:`Ledger`): one immutable JSON entry per promotion or rollback, kept on a
dedicated MLflow run, with the whole ledger rewritten beside them and copied locally (see :mod:`harness.promote`)."""

from __future__ import annotations

import json
import logging
import os
import re
import tempfile
import uuid
from pathlib import Path
from typing import Any

from harness.promote._store import _quote_ok, _store

log = logging.getLogger("harness.promote")

LEDGER_FORMAT = "hefsweep.ledger/1"
_LEDGER_TAG = "hefsweep.ledger_run"
_SAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")


class Ledger:
    """The promotion ledger of one registered model, kept in MLflow (see :mod:`harness.promote`).

    Args:
        client: The MLflow client.
        tracking_uri: Its URI (for artifact downloads).
        model: Registered model name.
        run_id: The ledger run.
        root: Folder of the local copy (``<root>/ledger/<model>.jsonl``); ``None`` for no local copy.
    """

    def __init__(self, client: Any, tracking_uri: str, model: str, run_id: str, root: Path | None) -> None:
        self.client = client
        self.tracking_uri = tracking_uri
        self.model = model
        self.run_id = run_id
        self.root = root

    @property
    def local_path(self) -> Path | None:
        """The local copy's path."""
        return None if self.root is None else Path(self.root) / "ledger" / f"{_SAFE_NAME.sub('_', self.model)}.jsonl"

    @classmethod
    def find(cls, client: Any, tracking_uri: str, model: str, root: Path | None) -> Ledger | None:
        """The model's ledger, or ``None`` when it has none (never promoted by hefsweep)."""
        with _store(f"registered model {model!r}", "a model in this registry"):
            rm = client.get_registered_model(model)
        run_id = (rm.tags or {}).get(_LEDGER_TAG)
        return cls(client, tracking_uri, model, run_id, root) if run_id else None

    @classmethod
    def open(cls, client: Any, tracking_uri: str, model: str, experiment_id: str, root: Path | None) -> Ledger:
        """The model's ledger, created (in ``experiment_id``) and linked from the model on first use."""
        found = cls.find(client, tracking_uri, model, root)
        if found is not None:
            return found
        with _store(f"ledger of {model!r}", "a writable tracking store"):
            runs = client.search_runs(
                [experiment_id],
                filter_string=(
                    "tags.`hefsweep.role` = 'ledger' "
                    f"and tags.`hefsweep.ledger.model` = '{_quote_ok(model, 'model')}'"
                ),
                max_results=1,
            )
            if runs:
                run_id = runs[0].info.run_id
            else:
                run = client.create_run(
                    experiment_id,
                    run_name=f"ledger-{model}",
                    tags={"hefsweep.role": "ledger", "hefsweep.ledger.model": model},
                )
                run_id = run.info.run_id
                client.set_terminated(run_id, "FINISHED")
            client.set_registered_model_tag(model, _LEDGER_TAG, run_id)
        return cls(client, tracking_uri, model, run_id, root)

    def entries(self) -> list[dict[str, Any]]:
        """All entries, oldest first."""
        what = f"ledger run {self.run_id} of {self.model!r}"
        with _store(what, "the ledger run named by the model's hefsweep.ledger_run tag"):
            files = [a.path for a in self.client.list_artifacts(self.run_id, "entries") if not a.is_dir]
        if not files:
            return []
        with tempfile.TemporaryDirectory() as tmp:
            with _store(f"ledger run {self.run_id}", "readable ledger entries"):
                local = Path(self.client.download_artifacts(self.run_id, "entries", tmp))
            out = [json.loads(p.read_text()) for p in sorted(local.glob("*.json"))]
        return sorted(out, key=lambda e: (int(e.get("seq", 0)), str(e.get("when", "")), str(e.get("id", ""))))

    def append(self, entry: dict[str, Any]) -> list[dict[str, Any]]:
        """Append ``entry`` (``seq`` and ``id`` are filled in); rewrite ``ledger.jsonl`` and the local copy.

        Returns:
            All entries after the append.
        """
        entries = self.entries()
        entry = {"format": LEDGER_FORMAT, "seq": len(entries) + 1, "id": uuid.uuid4().hex[:12], **entry}
        entries.append(entry)
        text = "".join(json.dumps(e, sort_keys=True) + "\n" for e in entries)
        with tempfile.TemporaryDirectory() as tmp:
            one = Path(tmp) / f"{entry['seq']:06d}-{entry['id']}.json"
            one.write_text(json.dumps(entry, indent=2, sort_keys=True))
            whole = Path(tmp) / "ledger.jsonl"
            whole.write_text(text)
            with _store(f"ledger run {self.run_id} of {self.model!r}", "a writable artifact store"):
                self.client.log_artifact(self.run_id, str(whole))  # the view first: the entry is the commit
                self.client.log_artifact(self.run_id, str(one), "entries")
        if self.local_path is not None:
            try:
                self.local_path.parent.mkdir(parents=True, exist_ok=True)
                tmp_path = self.local_path.with_name(f".{self.local_path.name}.{os.getpid()}")
                tmp_path.write_text(text)
                os.replace(tmp_path, self.local_path)
            except OSError as exc:  # the copy is a convenience; the ledger in MLflow is already written
                log.warning("could not write the local ledger copy %s: %s", self.local_path, exc)
        return entries
