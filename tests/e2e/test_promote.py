"""Verified promotion, rollback and pull against the MLflow Model Registry (real sweeps, real stores).

One small ORT sweep per module (study ``p``: trials none / io16 ok, ghost failed; study ``nf``: only a failing
trial) feeds the tests; each test works on its own copy of the MLflow database, so registry state does not leak
between tests (artifacts stay in the module's store; the tamper test restores the file it changes).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from harness import cli
from harness.cli.promote import Promote, Pull
from harness.space import load_space
from harness.sweep import run_sweep

pytestmark = pytest.mark.slow

FAKES = Path(__file__).resolve().parents[1] / "fakes"

SPACE = """
study: {study}
checkpoint: {ckpt}
backend: {backend}
backend_options: {options}
data: {{calibration: {data}/calib, evaluation: {data}/eval, eval_clips: {clips}, min_calibration_clips: 2}}
stage_timeout: 120
dimensions:
  width: {width}
  calib_size: 2
  override_set: [none, io16, ghost]
{head}
override_sets:
  none: []
  io16:
    - {{kind: precision16, layers: [input, output]}}
  ghost:
    - {{kind: precision16, layers: [no_such_layer]}}
"""


def write_space(folder: Path, ckpt: Path, data: Path, study: str, backend: str = "ort", width: int = 4000) -> Path:
    options = "{hw_arch: hailo8}" if backend == "hailo" else "{}"
    p = folder / f"{study}.yaml"
    # the DFC compiles the per-source head only (no grouped decoder, no cat([w] * n_src) before the mask multiply)
    head = "  decoder: per_source\n  mask_mul: per_source" if backend == "hailo" else ""
    p.write_text(SPACE.format(study=study, ckpt=ckpt, backend=backend, options=options, data=data,
                              clips=3 if backend == "ort" else 2, width=width, head=head))  # fmt: skip
    return p


def sweep(space: Path, root: Path, sets: tuple[str, ...], tracking_uri: str | None = None) -> Any:
    s = run_sweep(load_space(space), trials=len(sets), root=root, stream=io.StringIO(), tracking_uri=tracking_uri,
                  enqueue=[{"override_set": o} for o in sets])  # fmt: skip
    assert s.n_trials == len(sets)
    return s


def hefsweep(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    """Run the console script with promote/pull registered (whether or not harness.cli lists them yet)."""
    capsys.readouterr()  # drop what the test itself printed
    names = {c.name for c in cli.COMMANDS}
    extra = tuple(c for c in (Promote, Pull) if c.name not in names)
    saved, env = cli.COMMANDS, dict(os.environ)
    cli.COMMANDS = (*saved, *extra)
    try:
        code = cli.main(argv)
    finally:
        cli.COMMANDS = saved
        os.environ.clear()
        os.environ.update(env)
    out = capsys.readouterr()
    return code, out.out, out.err.strip()


@pytest.fixture(autouse=True)
def _quiet_downloads(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@dataclass
class Swept:
    root: Path  # the sweep's root (artifacts, cache, original mlflow.db)
    data: Path  # private copy of the demo data (tests may change and restore it)
    runs: dict[str, Any]  # override_set -> trial run of study p
    failed_nf: str  # the failed run of study nf

    def store(self, tmp: Path) -> tuple[Path, str]:
        """A private copy of the MLflow database: (root for --root, tracking URI)."""
        root = tmp / "store"
        root.mkdir()
        shutil.copyfile(self.root / "mlflow.db", root / "mlflow.db")
        return root, f"sqlite:///{root / 'mlflow.db'}"


@pytest.fixture(scope="module")
def swept(tiny_checkpoint: Path, demo_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Swept:
    from mlflow import MlflowClient

    base = tmp_path_factory.mktemp("promote")
    data = base / "data"
    shutil.copytree(demo_data, data)
    root = base / "mlruns"
    old = os.getcwd()
    os.chdir(base)
    try:
        sweep(write_space(base, tiny_checkpoint, data, "p"), root, ("none", "io16", "ghost"))
        sweep(write_space(base, tiny_checkpoint, data, "nf"), root, ("ghost",))
    finally:
        os.chdir(old)
    client = MlflowClient(f"sqlite:///{root / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name("p").experiment_id], "tags.`hefsweep.role` = 'trial'")
    by_set = {r.data.params["override_set"]: r for r in runs}
    assert by_set["none"].data.tags["hefsweep.status"] == "ok" and by_set["io16"].data.tags["hefsweep.status"] == "ok"
    assert by_set["ghost"].data.tags["hefsweep.status"] == "failed"
    nf = client.search_runs([client.get_experiment_by_name("nf").experiment_id], "tags.`hefsweep.role` = 'trial'")
    return Swept(root, data, by_set, nf[0].info.run_id)


def ledger_lines(client: Any, model: str) -> list[dict[str, Any]]:
    run_id = client.get_registered_model(model).tags["hefsweep.ledger_run"]
    path = Path(client.download_artifacts(run_id, "ledger.jsonl"))
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_promote_rollback_pull_and_a_tampered_artifact(
    swept: Swept, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from mlflow import MlflowClient

    root, uri = swept.store(tmp_path)
    client = MlflowClient(uri, uri)
    best, other = swept.runs["io16"], swept.runs["none"]
    if other.data.metrics["si_snr_db"] > best.data.metrics["si_snr_db"]:
        best, other = other, best
    store = ["--root", str(root)]

    # 1. promote the study's best ok run -> version 1, alias champion, tags, one ledger entry
    code, out, err = hefsweep(["promote", "--study", "p", *store], capsys)
    assert code == 0, err
    assert f"run {best.info.run_id}" in out and "registered hefsweep-p version 1; alias 'champion': (none) -> 1" in out
    for check in ("sha256", "versions", "eval_set", "emulation"):
        assert f"[ok] {check}" in out
    mv = client.get_model_version_by_alias("hefsweep-p", "champion")
    assert str(mv.version) == "1" and mv.run_id == best.info.run_id
    assert mv.source == f"{best.info.artifact_uri}/compiled/model.qdq.onnx"
    assert mv.tags["hefsweep.sha256"] == best.data.tags["hefsweep.artifact_sha256"]
    assert mv.tags["hefsweep.study"] == "p" and mv.tags["hefsweep.run"] == best.info.run_id
    assert float(mv.tags["hefsweep.si_snr_db"]) == pytest.approx(best.data.metrics["si_snr_db"], abs=1e-4)
    assert mv.tags["hefsweep.version.onnxruntime"] == best.data.tags["hefsweep.version.onnxruntime"]
    assert "hefsweep.promoted.champion" in mv.tags
    (entry,) = ledger_lines(client, "hefsweep-p")
    assert entry["action"] == "promote" and entry["version"] == "1" and entry["previous_version"] is None
    assert entry["run_id"] == best.info.run_id and entry["study"] == "p" and "@" in entry["who"]
    assert entry["sha256"] == mv.tags["hefsweep.sha256"] and entry["when"].endswith("Z")
    assert [c["name"] for c in entry["checks"]] == ["sha256", "versions", "eval_set", "emulation"]
    assert abs(entry["metrics"]["si_snr_db_recomputed"] - entry["metrics"]["si_snr_db"]) <= 0.1

    # 2. promote another run by id -> version 2, alias moved; promoting it again changes nothing
    code, out, err = hefsweep(["promote", "--run", other.info.run_id, *store], capsys)
    assert code == 0, err
    assert "alias 'champion': 1 -> 2" in out
    assert str(client.get_model_version_by_alias("hefsweep-p", "champion").version) == "2"
    code, out, err = hefsweep(["promote", "--run", other.info.run_id, *store], capsys)
    assert code == 0 and "nothing changed" in out
    assert len(client.search_model_versions("name = 'hefsweep-p'")) == 2

    # 3. rollback -> alias back on version 1; three entries in MLflow and in the local copy
    code, out, err = hefsweep(["promote", "--rollback", "--study", "p", *store], capsys)
    assert code == 0, err
    assert "version 2 -> 1" in out
    assert str(client.get_model_version_by_alias("hefsweep-p", "champion").version) == "1"
    entries = ledger_lines(client, "hefsweep-p")
    assert [(e["action"], e["version"], e["previous_version"]) for e in entries] == [
        ("promote", "1", None), ("promote", "2", "1"), ("rollback", "1", "2")]  # fmt: skip
    assert entries[2]["undoes"] == entries[1]["id"] and [e["seq"] for e in entries] == [1, 2, 3]
    local = [json.loads(x) for x in (root / "ledger" / "hefsweep-p.jsonl").read_text().splitlines()]
    assert local == entries
    ledger_run = client.get_run(client.get_registered_model("hefsweep-p").tags["hefsweep.ledger_run"])
    assert ledger_run.data.tags["hefsweep.role"] == "ledger"
    # the first promotion had no predecessor: nothing further to roll back
    code, _, err = hefsweep(["promote", "--rollback", "--name", "hefsweep-p", *store], capsys)
    assert code == 1 and "nothing to roll back" in err and "\n" not in err
    assert str(client.get_model_version_by_alias("hefsweep-p", "champion").version) == "1"

    # 4. pull champion (and a version by number): the right bytes
    code, out, err = hefsweep(["pull", "hefsweep-p@champion", "--out", str(tmp_path / "pulled"), *store], capsys)
    assert code == 0, err
    pulled = tmp_path / "pulled" / "model.qdq.onnx"
    assert sha(pulled) == best.data.tags["hefsweep.artifact_sha256"]
    assert sorted(p.name for p in (tmp_path / "pulled").iterdir()) == ["model.qdq.onnx"]
    code, _, err = hefsweep(["pull", "hefsweep-p/2", "--out", str(tmp_path / "v2"), *store], capsys)
    assert code == 0 and sha(tmp_path / "v2" / "model.qdq.onnx") == other.data.tags["hefsweep.artifact_sha256"]

    # 5. tamper with the stored artifact of version 1: pull and promote are refused, nothing is written
    stored = Path(best.info.artifact_uri.removeprefix("file://")) / "compiled" / "model.qdq.onnx"
    original = stored.read_bytes()
    try:
        stored.write_bytes(original[:-16] + bytes(16))
        code, _, err = hefsweep(["pull", "hefsweep-p", "--out", str(tmp_path / "tampered"), *store], capsys)
        assert code == 1 and "sha256" in err and "refused" in err and "\n" not in err
        assert not (tmp_path / "tampered").exists()
        code, _, err = hefsweep(["pull", "hefsweep-p", "--out", str(tmp_path / "pulled"), *store], capsys)
        assert code == 1 and sha(pulled) == best.data.tags["hefsweep.artifact_sha256"]  # old copy untouched
        code, _, err = hefsweep(["promote", "--run", best.info.run_id, "--alias", "candidate", *store], capsys)
        assert code == 1 and "hefsweep.artifact_sha256" in err and "\n" not in err
    finally:
        stored.write_bytes(original)
    with pytest.raises(Exception, match="not found"):
        client.get_model_version_by_alias("hefsweep-p", "candidate")
    assert str(client.get_model_version_by_alias("hefsweep-p", "champion").version) == "1"
    assert len(ledger_lines(client, "hefsweep-p")) == 3


def test_bad_input_is_one_line_and_changes_nothing(
    swept: Swept, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from mlflow import MlflowClient

    root, uri = swept.store(tmp_path)
    store = ["--root", str(root)]
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = s.getsockname()[1]
    cases = {
        "failed run": (["promote", "--run", swept.runs["ghost"].info.run_id], ["status failed", "OverrideTargetNotFound"]),
        "unknown run": (["promote", "--run", "0" * 32], ["run 000", "not found"]),
        "unknown study": (["promote", "--study", "nope"], ["study 'nope'", "no MLflow experiment"]),
        "study without ok run": (["promote", "--study", "nf"], ["study 'nf'", "no run with hefsweep.status=ok"]),
        "neither study nor run": (["promote"], ["--study NAME or --run RUN_ID"]),
        "negative tolerance": (["promote", "--study", "p", "--tolerance-db", "-1"], ["--tolerance-db"]),
        "rollback unknown model": (["promote", "--rollback", "--name", "nope"], ["'nope'", "not found"]),
        "rollback never promoted": (["promote", "--rollback", "--study", "p"], ["'hefsweep-p'", "not found"]),
        "pull unknown model": (["pull", "nope@champion", "--out", str(tmp_path / "o")], ["'nope'", "not found"]),
        "unreachable server": (["promote", "--study", "p", "--tracking-uri", f"http://127.0.0.1:{dead}"],
                               ["unreachable", f"127.0.0.1:{dead}"]),
        "no store": (["promote", "--study", "p", "--root", str(tmp_path / "empty")], ["no such database file"]),
    }  # fmt: skip
    start = time.monotonic()
    for label, (argv, fragments) in cases.items():
        extra = [] if "--root" in argv or "--tracking-uri" in argv else store
        code, _, err = hefsweep([*argv, *extra], capsys)
        assert code == 1, (label, err)
        assert err.count("\n") == 0 and err.startswith("hefsweep "), (label, err)
        for frag in fragments:
            assert frag in err, (label, err)
    assert time.monotonic() - start < 30  # an unreachable server fails fast
    client = MlflowClient(uri, uri)
    assert client.search_registered_models() == []  # nothing registered by a refused request
    assert not (tmp_path / "o").exists() and not (tmp_path / "empty").exists()
    assert len(client.search_runs([client.get_experiment_by_name("p").experiment_id])) == 4  # parent + 3 trials

    # unknown alias / version of an existing model
    code, _, err = hefsweep(["promote", "--study", "p", "--skip-emulation", *store], capsys)
    assert code == 0, err
    for ref, frag in (("hefsweep-p@nope", "alias 'nope'"), ("hefsweep-p/9", "version 9")):
        code, _, err = hefsweep(["pull", ref, "--out", str(tmp_path / "o"), *store], capsys)
        assert code == 1 and frag in err and "not found" in err, err
    code, _, err = hefsweep(["promote", "--rollback", "--study", "p", "--alias", "nope", *store], capsys)
    assert code == 1 and "no promotion left to roll back" in err


def test_recheck_refuses_a_wrong_record_a_changed_eval_set_and_other_versions(
    swept: Swept, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from mlflow import MlflowClient

    root, uri = swept.store(tmp_path)
    client = MlflowClient(uri, uri)
    store = ["--root", str(root)]
    run = swept.runs["none"]
    rid, logged = run.info.run_id, run.data.metrics["si_snr_db"]

    # The record claims 1.5 dB more than the stored artifact delivers (a later value of the metric, as a
    # mis-logged or edited record would look): the re-run emulation disagrees and promotion is refused ...
    client.log_metric(rid, "si_snr_db", logged + 1.5, step=1)
    code, _, err = hefsweep(["promote", "--run", rid, *store], capsys)
    assert code == 1 and "recomputed from the stored artifact" in err and "--tolerance-db" in err, err
    assert f"si_snr_db {logged:.3f} dB recomputed" in err and f"{logged + 1.5:.3f} dB logged" in err
    # ... unless the tolerance is wide enough to cover the difference
    code, out, err = hefsweep(["promote", "--run", rid, "--tolerance-db", "2", *store], capsys)
    assert code == 0 and "|diff| 1.500 <= 2 dB" in out, err
    client.log_metric(rid, "si_snr_db", logged, step=2)

    # The evaluation files changed since the trial: the eval-set key no longer matches
    wav = sorted((swept.data / "eval" / "mixture").iterdir())[0]
    original = wav.read_bytes()
    try:
        import numpy as np
        import soundfile as sf

        x, rate = sf.read(wav, dtype="float32")
        sf.write(wav, np.roll(x, 7), rate, subtype="PCM_16")
        code, _, err = hefsweep(["promote", "--run", swept.runs["io16"].info.run_id, *store], capsys)
        assert code == 1 and "evaluation set" in err and "hefsweep.eval_set" in err, err
    finally:
        wav.write_bytes(original)

    # Built with another onnxruntime than the one here: refused, or let through and recorded
    client.set_tag(rid, "hefsweep.version.onnxruntime", "0.0.1")
    code, _, err = hefsweep(["promote", "--run", rid, "--alias", "staging", *store], capsys)
    assert code == 1 and "onnxruntime 0.0.1" in err and "--allow-version-mismatch" in err, err
    code, out, err = hefsweep(["promote", "--run", rid, "--alias", "staging", "--allow-version-mismatch", *store], capsys)
    assert code == 0 and "[allowed] versions" in out, err
    entry = ledger_lines(client, "hefsweep-p")[-1]
    assert entry["alias"] == "staging" and {"name": "versions", "status": "allowed"}.items() <= entry["checks"][1].items()


def test_recheck_recomputes_the_end_to_end_objective_and_refuses_another_checkpoint(
    tiny_checkpoint: Path, demo_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A lossy substitution (relu/cLN): the logged objective is vs the original float model, far below the
    quantization-only SI-SNR; promote recomputes that (not quantized vs export/model.onnx), and refuses when the
    study's checkpoint is no longer the one the trial measured against."""
    from mlflow import MlflowClient

    ckpt = tmp_path / "model.pt"
    shutil.copyfile(tiny_checkpoint, ckpt)
    space = tmp_path / "sub.yaml"
    space.write_text(SPACE.format(study="sub", ckpt=ckpt, backend="ort", options="{}", data=demo_data, clips=3,
                                  width=4000, head="  prelu: relu\n  norm: cLN"))  # fmt: skip
    root = tmp_path / "mlruns"
    old = os.getcwd()
    os.chdir(tmp_path)
    try:
        sweep(space, root, ("none",))
    finally:
        os.chdir(old)
    client = MlflowClient(f"sqlite:///{root / 'mlflow.db'}")
    (run,) = client.search_runs([client.get_experiment_by_name("sub").experiment_id], "tags.`hefsweep.role` = 'trial'")
    m = run.data.metrics
    assert m["si_snr_db"] < m["quant_si_snr_db"] - 8.0  # the old recomputation (vs the export) would be refused
    store = ["--root", str(root)]
    code, out, err = hefsweep(["promote", "--run", run.info.run_id, *store], capsys)
    assert code == 0, err
    assert f"si_snr_db {m['si_snr_db']:.3f} dB recomputed" in out and "vs the original float model" in out
    assert f"substitution {m['substitution_si_snr_db']:.2f} dB, quantization {m['quant_si_snr_db']:.2f} dB" in out
    (entry,) = ledger_lines(client, "hefsweep-sub")
    for k in ("si_snr_db", "substitution_si_snr_db", "quant_si_snr_db"):
        assert abs(entry["metrics"][f"{k}_recomputed"] - m[k]) <= 1e-3, k

    # another checkpoint at the space's path: the original float model is not the trial's any more
    import torch

    from harness.model import ConvTasNet4D, ConvTasNetConfig
    from harness.model._checkpoint import save_checkpoint
    from conftest import TINY_ARGS

    torch.manual_seed(1)
    save_checkpoint(ConvTasNet4D(ConvTasNetConfig.from_model_args(TINY_ARGS)), ckpt)
    code, _, err = hefsweep(["promote", "--run", run.info.run_id, "--alias", "again", *store], capsys)
    assert code == 1 and f"checkpoint {ckpt}" in err and "original_reference" in err and len(err.splitlines()) == 1, err


def test_hailo_promote_reemulates_the_quantized_har(
    tiny_checkpoint: Path, demo_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    from mlflow import MlflowClient

    monkeypatch.syspath_prepend(str(FAKES))
    monkeypatch.setenv("PYTHONPATH", str(FAKES))  # the isolated emulation worker imports the fake too
    root = tmp_path / "mlruns"
    sweep(write_space(tmp_path, tiny_checkpoint, demo_data, "h", backend="hailo", width=2048), root, ("none", "io16"))
    client = MlflowClient(f"sqlite:///{root / 'mlflow.db'}")
    ok = client.search_runs([client.get_experiment_by_name("h").experiment_id],
                            "tags.`hefsweep.status` = 'ok'", order_by=["metrics.si_snr_db DESC"])  # fmt: skip
    assert ok and ok[0].data.tags["hefsweep.artifact"] == "compiled/model.hef"
    store = ["--root", str(root)]

    code, out, err = hefsweep(["promote", "--study", "h", *store], capsys)
    assert code == 0, err
    assert "[ok] versions  hailo_dfc" in out and "[ok] emulation" in out
    code, _, err = hefsweep(["pull", "hefsweep-h", "--out", str(tmp_path / "hef"), *store], capsys)
    assert code == 0 and sha(tmp_path / "hef" / "model.hef") == ok[0].data.tags["hefsweep.artifact_sha256"]

    # Where the DFC is not installed: refused, unless emulation is explicitly skipped (recorded in the ledger)
    monkeypatch.setitem(sys.modules, "hailo_sdk_client", None)
    target = ok[-1].info.run_id
    code, _, err = hefsweep(["promote", "--run", target, "--alias", "edge", *store], capsys)
    assert code == 1 and "hailo_sdk_client is not installed in this interpreter" in err and "--skip-emulation" in err, err
    code, out, err = hefsweep(["promote", "--run", target, "--alias", "edge", "--skip-emulation", *store], capsys)
    assert code == 0 and "[skipped] emulation" in out, err
    entry = ledger_lines(client, "hefsweep-h")[-1]
    assert [(c["name"], c["status"]) for c in entry["checks"]] == [
        ("sha256", "ok"), ("versions", "skipped"), ("emulation", "skipped")]  # fmt: skip


@pytest.fixture
def mlflow_server(tmp_path: Path) -> Any:
    """A real ``mlflow server`` (sqlite backend, proxied artifacts) on a free port; always terminated."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    folder = tmp_path / "server"
    folder.mkdir()
    log = (folder / "server.log").open("wb")
    cmd = [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", f"sqlite:///{folder / 'mlflow.db'}",
           "--artifacts-destination", str(folder / "artifacts"), "--host", "127.0.0.1", "--port", str(port),
           "--workers", "1"]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=folder, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"{url}/health", timeout=2):
                    break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"mlflow server did not come up: {(folder / 'server.log').read_text()[-2000:]}") from None
                time.sleep(0.5)
        yield url, proc
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        log.close()


def test_promote_and_pull_through_an_mlflow_server(
    mlflow_server: tuple[str, Any], tiny_checkpoint: Path, demo_data: Path, tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    from mlflow import MlflowClient

    url, proc = mlflow_server
    client = MlflowClient(url, url)
    root = tmp_path / "mlruns"
    sweep(write_space(tmp_path, tiny_checkpoint, demo_data, "srv"), root, ("none", "io16"), tracking_uri=url)
    remote = ["--tracking-uri", url, "--root", str(root)]

    code, out, err = hefsweep(["promote", "--study", "srv", *remote], capsys)
    assert code == 0, err
    mv = client.get_model_version_by_alias("hefsweep-srv", "champion")
    assert client.get_experiment_by_name("srv").artifact_location.startswith("mlflow-artifacts:")  # proxied
    assert mv.source.startswith("mlflow-artifacts:/") and mv.source.endswith("/compiled/model.qdq.onnx")
    other = [r for r in client.search_runs([client.get_experiment_by_name("srv").experiment_id],
                                           "tags.`hefsweep.status` = 'ok'") if r.info.run_id != mv.run_id]  # fmt: skip
    code, out, err = hefsweep(["promote", "--run", other[0].info.run_id, *remote], capsys)
    assert code == 0 and "1 -> 2" in out, err
    assert [e["version"] for e in ledger_lines(client, "hefsweep-srv")] == ["1", "2"]  # ledger.jsonl rewritten via the server

    code, out, err = hefsweep(["pull", "hefsweep-srv@champion", "--out", str(tmp_path / "got"), *remote], capsys)
    assert code == 0, err
    assert sha(tmp_path / "got" / "model.qdq.onnx") == other[0].data.tags["hefsweep.artifact_sha256"]

    proc.terminate()
    proc.wait(timeout=15)
    code, _, err = hefsweep(["pull", "hefsweep-srv@champion", "--out", str(tmp_path / "gone"), *remote], capsys)
    assert code == 1 and "unreachable" in err and not (tmp_path / "gone").exists()
