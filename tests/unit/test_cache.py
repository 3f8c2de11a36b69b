from __future__ import annotations

import errno
import json
import multiprocessing
import os
import time
from pathlib import Path
from typing import Any

import pytest

from harness.cache import (
    CACHE_DIR_ENV,
    CachedBuildError,
    FailureRecord,
    StageCache,
    default_cache_root,
    file_sha256,
    stage_key,
    unrecorded_reason,
)
from harness.backends import OverrideTargetNotFound
from harness.isolation import IsolatedFailure


def known(tag: str) -> Exception:
    """A failure the classification table knows (``<stage>:OverrideTargetNotFound:<tag>``, any stage): recorded."""
    return OverrideTargetNotFound(tag, [], 3)


def test_key_is_canonical_and_sensitive() -> None:
    a = stage_key("export", 1, {"x": 1, "y": [1, 2]}, ("u",))
    assert a == stage_key("export", 1, {"y": [1, 2], "x": 1}, ("u",))
    assert a != stage_key("export", 2, {"x": 1, "y": [1, 2]}, ("u",))
    assert a != stage_key("export", 1, {"x": 2, "y": [1, 2]}, ("u",))
    assert a != stage_key("export", 1, {"x": 1, "y": [1, 2]}, ("v",))


def test_build_once_then_hit(tmp_path: Path) -> None:
    cache = StageCache(tmp_path / "c")
    calls = []

    def build(d: Path) -> dict:
        calls.append(d)
        (d / "out.txt").write_text("hello")
        return {"n": 1}

    first = cache.build("s", "k1", build)
    second = cache.build("s", "k1", build)
    assert len(calls) == 1
    assert not first.hit and second.hit
    assert (second.path / "out.txt").read_text() == "hello"
    assert second.meta["n"] == 1
    assert not list((tmp_path / "c" / "tmp").iterdir())


def test_failed_build_is_kept_and_not_published(tmp_path: Path) -> None:
    cache = StageCache(tmp_path / "c")

    def build(d: Path) -> dict:
        (d / "stage.log").write_text("boom log")
        raise ValueError("boom")

    with pytest.raises(CachedBuildError) as err:
        cache.build("s", "k", build)
    assert isinstance(err.value.cause, ValueError)
    assert (err.value.failed_dir / "stage.log").read_text() == "boom log"
    assert cache.lookup("s", "k") is None


def test_file_sha256(tmp_path: Path) -> None:
    p = tmp_path / "f.bin"
    p.write_bytes(b"abc")
    assert file_sha256(p) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"


# -- failure caching ---------------------------------------------------------------------------------------------


class Counter:
    """A build function that raises ``exc`` (or succeeds) and counts its calls."""

    def __init__(self, exc: BaseException | None = None) -> None:
        self.exc = exc
        self.calls = 0

    def __call__(self, d: Path) -> dict:
        self.calls += 1
        (d / "stage.log").write_text(f"attempt {self.calls}\n")
        if self.exc is not None:
            raise self.exc
        return {"ok": True}


def _pipeline_failure(cache: StageCache, stage: str, key: str, fn: Any) -> tuple[Any, str, bool]:
    """Run one stage through the real ``Pipeline._stage`` and return (Failure, traceback, replayed)."""
    from harness.pipeline import Pipeline, _StageFailed

    pipe = Pipeline(None, cache)  # type: ignore[arg-type]  # _stage needs only the cache
    replayed = cache.lookup_failure(stage, key) is not None
    with pytest.raises(_StageFailed) as err:
        pipe._stage(stage, key, fn, {})
    return err.value.failure, err.value.traceback_text, replayed


def _raise_nested() -> None:
    from harness.export import FidelityGateError

    raise FidelityGateError("ONNX vs torch: SI-SNR 12.5 dB below the gate 60 dB")


@pytest.mark.parametrize(
    "stage,exc",
    [
        ("calibrate", "fill"),
        ("export", "fidelity"),
        ("optimize", IsolatedFailure("OverrideTargetNotFound", "Layer 'ghost' not found in model: no layer", "Traceback: w")),
        ("export", ValueError("Unsupported op Foo")),
    ],
)
def test_failure_replays_fast_with_identical_classification(tmp_path: Path, stage: str, exc: Any) -> None:
    if exc == "fill":
        import numpy as np

        from harness.audio._fill import FillPolicyError, fit_length

        try:
            fit_length(np.zeros(100), 200, "crop")
        except FillPolicyError as e:
            exc = e
        assert isinstance(exc, FillPolicyError)
    elif exc == "fidelity":
        try:
            _raise_nested()
        except Exception as e:  # noqa: BLE001
            exc = e
    cache = StageCache(tmp_path / "c")
    fn = Counter(exc)
    first, tb1, replayed1 = _pipeline_failure(cache, stage, "k" * 64, fn)
    t0 = time.monotonic()
    again, tb2, replayed2 = _pipeline_failure(cache, stage, "k" * 64, fn)
    elapsed = time.monotonic() - t0
    assert fn.calls == 1 and not replayed1 and replayed2
    assert elapsed < 0.1  # about 1 ms; slack for a busy machine
    assert again == first and first.signature == again.signature and tb1 == tb2
    assert first.known, first.signature  # a real rule matched, so the replay went through the same rule

    with pytest.raises(CachedBuildError) as err:
        cache.build(stage, "k" * 64, fn)
    e = err.value
    assert e.replayed and isinstance(e.cause, IsolatedFailure) and e.record is not None
    assert e.cause.exc_class == type(exc).__name__ if not isinstance(exc, IsolatedFailure) else exc.exc_class
    assert (e.failed_dir / "stage.log").read_text() == "attempt 1\n"  # the first build's log is kept
    rec = json.loads((e.failed_dir / "cached_failure.json").read_text())
    assert {"exc_class", "message", "traceback", "when", "seconds"} <= set(rec)


def test_first_failure_keeps_the_original_cause(tmp_path: Path) -> None:
    cache = StageCache(tmp_path / "c")
    with pytest.raises(CachedBuildError) as err:
        cache.build("s", "k", Counter(known("boom")))
    assert isinstance(err.value.cause, OverrideTargetNotFound) and not err.value.replayed
    assert isinstance(err.value.record, FailureRecord) and err.value.record.path == err.value.failed_dir
    assert err.value.failed_dir == cache.failure_path("s", "k")
    assert not list((tmp_path / "c" / "tmp").iterdir())


def _inside(tmp_path: Path, name: str) -> str:
    return str(tmp_path / "c" / "tmp" / name)


TRANSIENT = {
    "timeout": lambda p: IsolatedFailure("Timeout", "harness._stage_calls:optimize did not finish within 300 s"),
    "crash": lambda p: IsolatedFailure("Crash", "child died by SIGKILL"),
    "memory": lambda p: MemoryError(),
    "enospc": lambda p: OSError(errno.ENOSPC, "No space left on device", "/elsewhere/out.bin"),
    "eacces_cache": lambda p: PermissionError(errno.EACCES, "Permission denied", _inside(p, "x")),
    "enoent_cache": lambda p: FileNotFoundError(errno.ENOENT, "No such file or directory", _inside(p, "y")),
    "oserror_no_file": lambda p: OSError("something odd"),
    "worker_enospc": lambda p: IsolatedFailure("OSError", "[Errno 28] No space left on device: '/elsewhere/o'"),
    "worker_enoent_cache": lambda p: IsolatedFailure(
        "FileNotFoundError", f"[Errno 2] No such file or directory: '{_inside(p, 'z')}'"
    ),
    "worker_memory": lambda p: IsolatedFailure("MemoryError", ""),
    "ort_bad_alloc": lambda p: IsolatedFailure("RuntimeException", "[ONNXRuntimeError] : 6 : RUNTIME_EXCEPTION : std::bad_alloc"),
    "marked": lambda p: type("StagePruned", (Exception,), {"transient": True})("pruned after 2 clips"),
    "bug": lambda p: AttributeError("'NoneType' object has no attribute 'x'"),
    "import": lambda p: ModuleNotFoundError("No module named 'hailo_sdk_client'"),
}


@pytest.mark.parametrize("name", sorted(TRANSIENT))
def test_transient_failures_are_not_cached(tmp_path: Path, name: str) -> None:
    cache = StageCache(tmp_path / "c")
    exc = TRANSIENT[name](tmp_path)
    assert unrecorded_reason(exc, cache.root, "optimize") is not None
    fn = Counter(exc)
    for _ in range(2):
        with pytest.raises(CachedBuildError) as err:
            cache.build("optimize", "k", fn)
        assert not err.value.replayed and err.value.record is None
        assert err.value.failed_dir.parent == cache.root / "failed"
        assert (err.value.failed_dir / "stage.log").is_file()
    assert fn.calls == 2
    assert cache.lookup_failure("optimize", "k") is None


@pytest.mark.parametrize("exc", [KeyboardInterrupt(), SystemExit(3)])
def test_interrupts_propagate_unwrapped_and_are_not_cached(tmp_path: Path, exc: BaseException) -> None:
    cache = StageCache(tmp_path / "c")
    fn = Counter(exc)
    with pytest.raises(type(exc)):
        cache.build("export", "k", fn)
    with pytest.raises(type(exc)):
        cache.build("export", "k", fn)
    assert fn.calls == 2 and cache.lookup_failure("export", "k") is None
    assert len(list((cache.root / "failed").iterdir())) == 2  # the partial outputs are kept for inspection


def test_deterministic_oserror_outside_the_cache_is_cached_when_classified(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from harness import failures

    cache = StageCache(tmp_path / "c")
    exc = FileNotFoundError(errno.ENOENT, "No such file or directory", str(tmp_path / "model.onnx.data"))
    assert unrecorded_reason(exc, cache.root, "reference") is not None  # not in the table: maybe a harness bug
    rule = failures.Rule("reference", "FileNotFoundError", r"model\.onnx\.data", "external_data")
    monkeypatch.setattr(failures, "_EXTRA", [rule, *failures._EXTRA])
    assert unrecorded_reason(exc, cache.root, "reference") is None
    fn = Counter(exc)
    for _ in range(2):
        with pytest.raises(CachedBuildError):
            cache.build("reference", "k", fn)
    assert fn.calls == 1
    # classified, but about the cache itself: still not recorded
    inside = FileNotFoundError(errno.ENOENT, "No such file or directory", _inside(tmp_path, "model.onnx.data"))
    assert "cache itself" in str(unrecorded_reason(inside, cache.root, "reference"))


#: Raised by a harness bug (or by a backend, unclassified): never a configuration's outcome.
UNCLASSIFIED = {
    "key": lambda: KeyError("calib_size"),
    "index": lambda: IndexError("list index out of range"),
    "value": lambda: ValueError("operands could not be broadcast together with shapes (4,) (3,)"),
    "zero": lambda: ZeroDivisionError("division by zero"),
    "runtime": lambda: RuntimeError("something the table does not know"),
    "worker_value": lambda: IsolatedFailure("ValueError", "too many values to unpack (expected 2)", "Traceback: w"),
    "worker_key": lambda: IsolatedFailure("KeyError", "'scale'", "Traceback: w"),
    "unknown_class": lambda: IsolatedFailure("HailoNNException", "no rule for this text", "Traceback: w"),
}


@pytest.mark.parametrize("name", sorted(UNCLASSIFIED))
@pytest.mark.parametrize("stage", ["export", "calibrate", "optimize", "emulate"])
def test_unclassified_failures_are_not_cached(tmp_path: Path, name: str, stage: str) -> None:
    from harness.failures import classify

    _hailo_rules()
    exc = UNCLASSIFIED[name]()
    cls, msg = (exc.exc_class, exc.message) if isinstance(exc, IsolatedFailure) else (type(exc).__name__, str(exc))
    assert not classify(stage, cls, msg).known
    cache = StageCache(tmp_path / "c")
    reason = unrecorded_reason(exc, cache.root, stage)
    assert reason is not None and "unclassified" in reason
    fn = Counter(exc)
    for _ in range(2):
        with pytest.raises(CachedBuildError) as err:
            cache.build(stage, "k", fn)
        assert not err.value.replayed and err.value.record is None
        assert err.value.failed_dir.parent == cache.root / "failed"
    assert fn.calls == 2 and cache.lookup_failure(stage, "k") is None


def _hailo_rules() -> None:
    import harness.backends.hailo  # noqa: F401 - registers the Hailo rules and log enricher (no SDK import)


#: Configuration outcomes the table classifies, whatever their class (backend ValueErrors included).
CLASSIFIED = {
    "calibration_data_type": ("optimize", lambda: IsolatedFailure("ValueError", "Couldn't detect CalibrationDataType", "tb")),
    "no_calibration_data": ("optimize", lambda: ValueError("No data is collected.")),
    "input_shape": (
        "emulate",
        lambda: IsolatedFailure("BadInputsShape", "Data shape (1, 1, 8000) doesn't match network's input shape (1, 1, 16000)", "tb"),
    ),
    "worker_runtime": ("compile", lambda: IsolatedFailure("RuntimeError", "Compilation failed: dw3 errors:\n\tAgent infeasible", "tb")),
    "fill": ("calibrate", lambda: _fill_error()),
}  # fmt: skip


def _fill_error() -> Exception:
    from harness.audio import FillPolicyError

    return FillPolicyError("x.wav: clip of 7 samples at offset 0 is shorter than W=8; expected clips of at least 8 "
                           "samples for policy 'crop' (use policy 'repeat' or 'pad', or a longer clip_length)")


@pytest.mark.parametrize("name", sorted(CLASSIFIED))
def test_classified_failures_are_cached_whatever_their_class(tmp_path: Path, name: str) -> None:
    _hailo_rules()
    stage, make = CLASSIFIED[name]
    exc = make()
    cache = StageCache(tmp_path / "c")
    assert unrecorded_reason(exc, cache.root, stage) is None
    fn = Counter(exc)
    for _ in range(2):
        with pytest.raises(CachedBuildError):
            cache.build(stage, "k", fn)
    assert fn.calls == 1 and cache.lookup_failure(stage, "k") is not None


def test_a_message_classified_from_the_stage_log_is_cached(tmp_path: Path) -> None:
    """A DFC message that names its cause only in the stage's log: the cache reads the log as the pipeline does."""
    _hailo_rules()
    cache = StageCache(tmp_path / "c")
    exc = IsolatedFailure("ValueError", "optimization aborted", "tb")
    assert unrecorded_reason(exc, cache.root, "optimize") is not None  # alone, the table does not know it
    calls = []

    def fn(d: Path) -> dict:
        calls.append(d)
        (d / "optimize.log").write_text("[info] loading\n[error] ValueError: Couldn't detect CalibrationDataType\n")
        raise exc

    for _ in range(2):
        failure, _, _ = _pipeline_failure(cache, "optimize", "k" * 64, fn)
        assert failure.signature == "optimize:ValueError:calibration_data_type", failure.signature
    assert len(calls) == 1


def test_a_record_the_table_no_longer_knows_is_not_replayed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A failure recorded before this rule (a harness bug cached as an outcome) is retried, and its record dropped."""
    import harness.cache._store

    cache = StageCache(tmp_path / "c")
    monkeypatch.setattr(harness.cache._store, "unrecorded_reason", lambda *a, **k: None)  # what older versions recorded
    with pytest.raises(CachedBuildError):
        cache.build("optimize", "k", Counter(KeyError("scale")))
    assert cache.lookup_failure("optimize", "k") is not None
    monkeypatch.undo()
    fn = Counter()
    assert not cache.build("optimize", "k", fn).hit and fn.calls == 1
    assert cache.lookup_failure("optimize", "k") is None


def test_failure_record_is_never_overwritten(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cache = StageCache(tmp_path / "c")
    with pytest.raises(CachedBuildError):
        cache.build("s", "k", Counter(known("first")))
    before = (cache.failure_path("s", "k") / "cached_failure.json").read_bytes()
    # Another worker got past the lookup before the record appeared, and fails differently.
    monkeypatch.setattr(cache, "lookup_failure", lambda stage, key: None)
    with pytest.raises(CachedBuildError) as err:
        cache.build("s", "k", Counter(known("second")))
    assert str(err.value.cause) == str(known("second")) and not err.value.replayed and err.value.record is None
    assert err.value.failed_dir.parent == cache.root / "failed"
    assert (cache.failure_path("s", "k") / "cached_failure.json").read_bytes() == before
    monkeypatch.undo()
    with pytest.raises(CachedBuildError) as err:
        cache.build("s", "k", Counter(known("third")))
    assert err.value.replayed and err.value.cause.message == str(known("first"))  # type: ignore[attr-defined]


def test_success_wins_over_a_recorded_failure_and_recording_can_be_off(tmp_path: Path) -> None:
    off = StageCache(tmp_path / "c", record_failures=False)
    fn = Counter(known("x"))
    for _ in range(2):
        with pytest.raises(CachedBuildError):
            off.build("s", "k", fn)
    assert fn.calls == 2 and off.lookup_failure("s", "k") is None
    cache = StageCache(tmp_path / "c")
    with pytest.raises(CachedBuildError):
        cache.build("s", "k", Counter(known("x")))
    os.rename(cache.failure_path("s", "k"), tmp_path / "aside")
    cache.build("s", "k", Counter())  # e.g. a flaky stage succeeded in another worker
    os.rename(tmp_path / "aside", cache.failure_path("s", "k"))
    assert cache.build("s", "k", Counter(known("never called"))).hit


# -- concurrent publication by two processes ---------------------------------------------------------------------
def _race(root: str, barrier: Any, fail: bool, queue: Any) -> None:
    cache = StageCache(Path(root), dedupe=False)  # the publication itself, as when a marker was broken wrongly

    def fn(d: Path) -> dict:
        (d / "who.txt").write_text(str(os.getpid()))
        barrier.wait(10)  # both builds are in progress before either publishes
        if fail:
            raise known(f"deterministic failure in {os.getpid()}")
        return {"pid": os.getpid()}

    try:
        entry = cache.build("s", "k", fn)
        queue.put(("ok", entry.meta["pid"], (entry.path / "who.txt").read_text(), entry.hit))
    except CachedBuildError as err:
        queue.put(("failed", str(err.cause), str(err.failed_dir), err.record is not None))


@pytest.mark.parametrize("fail", [False, True])
def test_concurrent_publish_of_one_key_leaves_one_entry(tmp_path: Path, fail: bool) -> None:
    ctx = multiprocessing.get_context("fork")
    barrier, queue = ctx.Barrier(2), ctx.Queue()
    procs = [ctx.Process(target=_race, args=(str(tmp_path / "c"), barrier, fail, queue)) for _ in range(2)]
    for p in procs:
        p.start()
    results = [queue.get(timeout=30) for _ in procs]
    for p in procs:
        p.join(10)
        assert p.exitcode == 0
    root = tmp_path / "c"
    assert not list((root / "tmp").iterdir())
    if not fail:
        assert len(list((root / "s").iterdir())) == 1
        published = json.loads((root / "s" / "k" / "stage.json").read_text())["pid"]
        # both callers got the published entry, whose content is the winner's, whole
        assert all(r[0] == "ok" and r[1] == published and r[2] == str(published) for r in results)
    else:
        assert len(list((root / "failures" / "s").iterdir())) == 1
        rec = json.loads((root / "failures" / "s" / "k" / "cached_failure.json").read_text())
        assert rec["message"] in {r[1] for r in results}
        assert sorted(r[3] for r in results) == [False, True]  # one recorded, the other kept under failed/
        loser = next(r for r in results if not r[3])
        assert Path(loser[2]).parent == root / "failed"
        assert (root / "failures" / "s" / "k" / "who.txt").read_text() == str(rec["pid"])


# -- cache location, info and prune ------------------------------------------------------------------------------
def test_default_cache_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(CACHE_DIR_ENV, raising=False)
    assert default_cache_root(tmp_path / "mlruns") == tmp_path / "mlruns" / "cache"
    monkeypatch.setenv(CACHE_DIR_ENV, str(tmp_path / "shared"))
    assert default_cache_root(tmp_path / "mlruns") == tmp_path / "shared"
    monkeypatch.setenv(CACHE_DIR_ENV, "~/hefsweep-cache")
    assert default_cache_root(Path("mlruns")) == Path.home() / "hefsweep-cache"
    monkeypatch.setenv(CACHE_DIR_ENV, "  ")
    assert default_cache_root(Path("mlruns")) == Path("mlruns") / "cache"


def _aged(path: Path, days: float, now: float) -> None:
    os.utime(path, (now - days * 86400, now - days * 86400))


def _populated(tmp_path: Path, now: float) -> StageCache:
    cache = StageCache(tmp_path / "c")
    for i, days in enumerate([10, 5, 1]):
        cache.build("export", f"e{i}", Counter())
        _aged(cache.path("export", f"e{i}"), days, now)
    cache.build("optimize", "o0", Counter())
    _aged(cache.path("optimize", "o0"), 20, now)
    for i, days in enumerate([30, 2]):
        with pytest.raises(CachedBuildError):
            cache.build("optimize", f"f{i}", Counter(known("bad")))
        _aged(cache.failure_path("optimize", f"f{i}"), days, now)
    (cache.root / "tmp" / "export-abc-1234").mkdir()  # an abandoned build
    old = cache.root / "tmp" / "export-abc-1234" / "x"
    old.write_text("x")
    _aged(old, 1, now)
    _aged(old.parent, 1, now)
    (cache.root / "tmp" / "optimize-def-5678").mkdir()  # a build in progress
    (cache.root / "reuse").mkdir()
    return cache


def test_scan_counts_entries_failures_and_leftovers(tmp_path: Path) -> None:
    now = time.time()
    cache = _populated(tmp_path, now)
    items = cache.scan()
    kinds = sorted((i.kind, i.stage) for i in items)
    assert kinds == sorted(
        [("entry", "export")] * 3 + [("entry", "optimize"), ("failure", "optimize"), ("failure", "optimize"),
                                      ("tmp", "export"), ("tmp", "optimize")]
    )  # fmt: skip
    assert cache.stages() == ["export", "optimize"]
    assert all(i.bytes > 0 for i in items if i.kind in ("entry", "failure"))


def test_prune_selects_by_age_stage_kind_and_keep_last(tmp_path: Path) -> None:
    now = time.time()
    cache = _populated(tmp_path, now)
    dry = cache.prune(older_than_days=3, dry_run=True, now=now)
    assert sorted((i.kind, i.key) for i in dry.removed) == [
        ("entry", "e0"), ("entry", "e1"), ("entry", "o0"), ("failure", "f0"), ("tmp", "export-abc-1234")
    ]  # fmt: skip
    assert dry.bytes_freed > 0 and cache.path("export", "e0").is_dir()  # nothing removed (lookup would touch it)

    report = cache.prune(failures_only=True, older_than_days=3, now=now)
    assert [(i.kind, i.key) for i in report.removed if i.kind != "tmp"] == [("failure", "f0")]
    assert cache.lookup_failure("optimize", "f0") is None and cache.lookup_failure("optimize", "f1") is not None

    report = cache.prune(stage="export", keep_last=1, now=now)
    assert sorted(i.key for i in report.removed) == ["e0", "e1"]
    assert cache.lookup("export", "e2") is not None and cache.lookup("optimize", "o0") is not None
    assert not list((cache.root / "trash").iterdir())
    assert (cache.root / "tmp" / "optimize-def-5678").is_dir()  # a fresh build is left alone
    assert not (cache.root / "tmp" / "export-abc-1234").exists()

    # no selector: leftovers only
    (cache.root / "trash" / "x-y-z").mkdir()
    report = cache.prune(now=now)
    assert [i.kind for i in report.removed] == ["trash"] and cache.lookup("export", "e2") is not None

    # a pruned key is rebuilt (a replayed failure too: its record is gone)
    fn = Counter()
    assert not cache.build("export", "e0", fn).hit and fn.calls == 1


def test_a_hit_refreshes_the_age(tmp_path: Path) -> None:
    now = time.time()
    cache = _populated(tmp_path, now)
    assert cache.build("export", "e0", Counter()).hit
    report = cache.prune(older_than_days=3, stage="export", now=time.time())
    assert sorted(i.key for i in report.removed if i.kind == "entry") == ["e1"]


# -- the pipeline's stage keys -----------------------------------------------------------------------------------
def _space(tmp: Path, ckpt: Path, data: Path, name: str = "k") -> Any:
    from harness.space import load_space

    p = tmp / f"{name}.yaml"
    p.write_text(
        f"study: {name}\ncheckpoint: {ckpt}\n"
        f"data: {{calibration: {data / 'calib'}, evaluation: {data / 'eval'}, eval_clips: 3, min_calibration_clips: 2}}\n"
    )
    return load_space(p)


def trial_stages(space: Any, cache_root: Path, monkeypatch: pytest.MonkeyPatch, **cfg: Any) -> dict[str, Any]:
    """The stage keys of one trial up to calibrate (export is stubbed; the trial stops at the reference stage)."""
    from harness.pipeline import Pipeline, TrialConfig

    def export(self: Any, cfg: Any, ev: Any, d: Path, recovered: Any = None) -> dict:
        (d / "model.onnx").write_bytes(b"stub")
        return {"fired": [], "op_counts": {}, "fidelity": {}}

    def stop(self: Any, *args: Any) -> dict:
        raise KeyError("stop after calibrate")

    monkeypatch.setattr(Pipeline, "_export", export)
    for name in ("_original", "_reference"):  # the stages after calibrate
        if hasattr(Pipeline, name):
            monkeypatch.setattr(Pipeline, name, stop)
    result = Pipeline(space, StageCache(cache_root)).run(TrialConfig(**cfg))
    assert result.failure is not None and result.failure.stage not in ("export", "calibrate"), result.failure
    return {k: v["key"] for k, v in result.stages.items()}


def test_export_key_covers_the_fidelity_gates_evaluation_set(
    tiny_checkpoint: Path, demo_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import shutil

    import soundfile as sf

    other = tmp_path / "other"
    shutil.copytree(demo_data, other)
    first = sorted((other / "eval" / "mixture").iterdir())[0]
    x, rate = sf.read(first, dtype="float32")
    sf.write(first, 0.5 * x, rate, subtype="PCM_16")  # the gate's probe clips differ
    cfg = {"width": 4000, "calib_clip_length": 4000, "calib_size": 2}
    a = trial_stages(_space(tmp_path, tiny_checkpoint, demo_data), tmp_path / "c", monkeypatch, **cfg)
    again = trial_stages(_space(tmp_path, tiny_checkpoint, demo_data), tmp_path / "c", monkeypatch, **cfg)
    b = trial_stages(_space(tmp_path, tiny_checkpoint, other, "o"), tmp_path / "c", monkeypatch, **cfg)
    assert a["export"] == again["export"]
    assert b["export"] != a["export"]
    assert b["calibrate"] == a["calibrate"]  # the calibration folder is the same


def test_calibrate_key_ignores_a_fill_policy_that_fills_nothing(
    tiny_checkpoint: Path, demo_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """demo_data's calibration files are 16000 samples: 8000-sample clips for W=4000 need no fill."""
    space = _space(tmp_path, tiny_checkpoint, demo_data)
    keys = {
        (clip, fill): trial_stages(space, tmp_path / "c", monkeypatch, width=4000, calib_clip_length=clip,
                                   calib_fill=fill, calib_size=4)["calibrate"]
        for clip in (8000, 3200) for fill in ("pad", "repeat")
    }  # fmt: skip
    keys[(8000, "crop")] = trial_stages(
        space, tmp_path / "c", monkeypatch, width=4000, calib_clip_length=8000, calib_fill="crop", calib_size=4
    )["calibrate"]
    assert keys[(8000, "pad")] == keys[(8000, "repeat")] == keys[(8000, "crop")]
    assert keys[(3200, "pad")] != keys[(3200, "repeat")]  # 3200-sample clips are filled: the policy matters
    calib = [p for p in (tmp_path / "c" / "calibrate").iterdir()]
    assert len(calib) == 3  # one set for the three no-op policies, one each for pad and repeat
