"""What stops a trial mid-pipeline is recorded for what it is: an interrupt (KILLED, ``harness:Interrupted``), a
user error (FAILED, ``harness:<ErrorClass>``, one line) or a bug (FAILED, ``harness:Bug:<Class>``, re-raised with
its traceback)."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from harness.errors import AudioError
from harness.space import load_space
from harness.sweep import run_sweep

pytestmark = pytest.mark.slow


def _space(tmp: Path, ckpt: Path, data: Path) -> Path:
    p = tmp / "t.yaml"
    p.write_text(f"""
study: t
checkpoint: {ckpt}
data: {{calibration: {data / 'calib'}, evaluation: {data / 'eval'}, eval_clips: 2, min_calibration_clips: 2}}
trials: 1
dimensions:
  width: 2048
  calib_size: 2
""")
    return p


def _only_run(root: Path) -> tuple[object, object]:
    import optuna
    from mlflow import MlflowClient

    (trial,) = optuna.load_study(study_name="t", storage=f"sqlite:///{root / 'optuna.db'}").trials
    client = MlflowClient(tracking_uri=f"sqlite:///{root / 'mlflow.db'}")
    return trial, client.get_run(trial.user_attrs["mlflow_run_id"])


@pytest.mark.parametrize(
    ("raised", "status", "signature"),
    [
        (ValueError("a harness bug"), "FAILED", "harness:Bug:ValueError"),
        (AudioError("clip.wav", "became unreadable", "a readable WAV"), "FAILED", "harness:AudioError:-"),
        (KeyboardInterrupt(), "KILLED", "harness:Interrupted:-"),
    ],
)
def test_an_error_mid_trial_is_recorded_as_what_it_is(
    tiny_checkpoint: Path, demo_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    raised: BaseException, status: str, signature: str,
) -> None:  # fmt: skip
    from optuna.trial import TrialState

    def run(*_a: object, **_k: object) -> None:
        raise raised

    monkeypatch.setattr("harness.pipeline.Pipeline.run", run)
    root = tmp_path / "mlruns"
    with pytest.raises(type(raised)):  # a bug is not turned into a one-line error: it keeps its traceback (exit 2)
        run_sweep(load_space(_space(tmp_path, tiny_checkpoint, demo_data)), root=root, stream=io.StringIO())
    trial, mlrun = _only_run(root)
    assert trial.state == TrialState.FAIL  # type: ignore[attr-defined]
    assert mlrun.info.status == status  # type: ignore[attr-defined]
    assert mlrun.data.tags["hefsweep.signature"] == signature  # type: ignore[attr-defined]
    if status == "FAILED":
        assert trial.user_attrs["signature"] == signature  # type: ignore[attr-defined]
