"""The README's Python API example runs as written (``import hefsweep``: sweep, export, report)."""

from __future__ import annotations

import contextlib
import io
import os
import re
import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _readme_example() -> str:
    text = (ROOT / "README.md").read_text()
    section = text.split("## Python API", 1)[1]
    match = re.search(r"```python\n(.*?)```", section, re.S)
    assert match, "README: no python block under '## Python API'"
    return match.group(1)


def test_readme_api_example_runs(tmp_path: Path, demo_data_full: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # the example's relative paths, in a scratch folder: the demo space (its ../assets and ../data/demo resolve
    # against the copied file's folder), the shipped checkpoint, the test's demo audio
    (tmp_path / "search_spaces").mkdir()
    shutil.copy(ROOT / "search_spaces" / "demo.yaml", tmp_path / "search_spaces" / "demo.yaml")
    (tmp_path / "assets").symlink_to(ROOT / "assets")
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "demo").symlink_to(demo_data_full)
    monkeypatch.chdir(tmp_path)
    out = io.StringIO()
    namespace: dict[str, object] = {}
    with contextlib.redirect_stdout(out):
        exec(compile(_readme_example(), "README.md:python-api", "exec"), namespace)  # noqa: S102
    result, onnx, page = namespace["result"], namespace["onnx"], namespace["page"]
    assert result.n_trials == 2 and result.n_ok == 2  # type: ignore[attr-defined]
    assert result.best_value is not None and result.best_value > 0  # type: ignore[attr-defined]
    assert sorted(result.run_ids) == [0, 1] and result.best_run_id in result.run_ids.values()  # type: ignore[attr-defined]
    assert (tmp_path / "mlruns" / "optuna.db").is_file() and (tmp_path / "mlruns" / "mlflow.db").is_file()
    assert onnx.path.is_file() and onnx.fired == ("prelu:relu",)  # type: ignore[attr-defined]
    assert onnx.fidelity_si_snr_db >= 60  # type: ignore[attr-defined]
    assert Path(page.path).is_file() and Path(page.path).stat().st_size > 10_000  # type: ignore[attr-defined]
    printed = out.getvalue()
    assert f"best trial #{result.best_trial}" in printed and "browse: http://127.0.0.1:5000/#/experiments/" in printed  # type: ignore[attr-defined]
    assert os.fspath(onnx.path) in printed  # type: ignore[attr-defined]


def test_bad_input_is_one_harness_error() -> None:
    import hefsweep
    from harness.errors import HarnessError

    with pytest.raises(HarnessError, match="trials"):
        hefsweep.sweep(ROOT / "search_spaces" / "demo.yaml", trials=-1)
    with pytest.raises(HarnessError, match="256"):
        hefsweep.export(ROOT / "assets" / "demo_convtasnet.pt", "x.onnx", width=100)
