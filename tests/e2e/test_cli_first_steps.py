"""The small things a new user trips on: a sweep of the demo space before its data exists says how to make it;
`hefsweep --help` gives every subcommand a whole sentence."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from harness.cli import COMMANDS, build_parser, main, summary

ROOT = Path(__file__).resolve().parents[2]


def test_demo_sweep_without_demo_data_says_how_to_make_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "search_spaces").mkdir()
    shutil.copy(ROOT / "search_spaces" / "demo.yaml", tmp_path / "search_spaces")
    (tmp_path / "assets").mkdir()
    shutil.copy(ROOT / "assets" / "demo_convtasnet.pt", tmp_path / "assets")
    monkeypatch.chdir(tmp_path)
    code = main(["sweep", "search_spaces/demo.yaml", "--trials", "1", "--root", str(tmp_path / "mlruns")])
    err = capsys.readouterr().err.strip()
    assert code == 1
    assert err == (
        f"hefsweep sweep: error: {tmp_path}/search_spaces/../data/demo/calib: no such folder; expected a folder of "
        ".wav/.flac files (`hefsweep demo-data --out data/demo` makes the demo data there)"
    )
    assert main(["demo-data", "--out", "data/demo"]) == 0  # what the hint says works: the data is then there
    assert sorted(p.name for p in (tmp_path / "data" / "demo").iterdir()) == ["calib", "eval"]


def test_help_summaries_are_whole_sentences(capsys: pytest.CaptureFixture[str]) -> None:
    parser, _ = build_parser()
    for cls in COMMANDS:
        line = summary(cls.__doc__ or "")
        assert line.endswith("."), (cls.name, line)
        assert len(line) <= 100, (cls.name, line)
        # the whole first sentence of the description, not a cut line
        assert " ".join((cls.__doc__ or "").split()).startswith(line)
    with pytest.raises(SystemExit):
        parser.parse_args(["--help"])
    out = " ".join(capsys.readouterr().out.split())
    for cls in COMMANDS:
        assert f"{cls.name} {summary(cls.__doc__ or '')}" in out
    assert "SI-SNR per " not in out


def test_summary_takes_the_first_sentence() -> None:
    assert summary("Do a thing.\n\n    More.") == "Do a thing."
    assert summary("Do a thing over two\n    lines. Then more.") == "Do a thing over two lines."
    assert summary("Export ONNX ([1,1,1,W] in) and check it.") == "Export ONNX ([1,1,1,W] in) and check it."


def test_ui_opens_a_remote_servers_runs_table(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import urllib.request

    from mlflow import MlflowClient

    from support.mlflow_server import MlflowServer

    server = MlflowServer(tmp_path / "server")
    server.start()
    try:
        client = MlflowClient(tracking_uri=server.url)
        demo = client.create_experiment("demo")
        newest = client.create_experiment("newer")
        opened: list[str] = []
        monkeypatch.setattr("webbrowser.open", lambda url, *a, **k: opened.append(url) or True)
        assert main(["ui", "--tracking-uri", server.url + "/", "--study", "demo"]) == 0
        want = f"{server.url}/#/experiments/{demo}/runs?workflowType=machine_learning"
        assert opened == [want]
        assert capsys.readouterr().out.strip() == f"MLflow runs table of experiment 'demo' on {server.url}: {want}"
        with urllib.request.urlopen(want.split("#")[0], timeout=10) as r:  # the UI page the fragment routes in
            assert r.status == 200 and b"<html" in r.read(2000).lower()
        assert main(["ui", "--tracking-uri", server.url]) == 0  # no --study: the newest experiment
        assert opened[-1] == f"{server.url}/#/experiments/{newest}/runs?workflowType=machine_learning"
        assert main(["ui", "--tracking-uri", server.url, "--study", "nope"]) == 1
        err = capsys.readouterr().err.strip()
        assert err == (f"hefsweep ui: error: study 'nope': no such experiment on {server.url} (experiments: Default, "
                       "demo, newer); expected the name of a study tracked there")  # fmt: skip
    finally:
        server.stop()
    assert main(["ui", "--tracking-uri", server.url]) == 1
    assert "unreachable" in capsys.readouterr().err
