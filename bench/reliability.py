"""The reliability suite's figures: bad inputs tried, faults survived, load, untrusted input, trials lost.

Runs ``tests/reliability`` (pytest, with ``HEFSWEEP_RELIABILITY_REPORT`` pointing at a scratch file where each
scenario appends what it measured) and prints a summary made only of those measurements: nothing below is a
constant.

Needs what the suite needs: root (tmpfs and bind mounts), the machine's PostgreSQL at 127.0.0.1:5432.

Usage: python bench/reliability.py [--load-trials 200] [-- extra pytest arguments, e.g. -k faults]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
VENV_PY = ROOT / ".venv" / "bin" / "python"


def run_suite(load_trials: int, extra: list[str]) -> tuple[list[dict[str, Any]], dict[str, int], float, int]:
    python = str(VENV_PY) if VENV_PY.exists() else sys.executable
    with tempfile.TemporaryDirectory(prefix="hefsweep-reliability-") as tmp:
        report = Path(tmp) / "figures.jsonl"
        env = {**os.environ, "HEFSWEEP_RELIABILITY_REPORT": str(report), "HEFSWEEP_LOAD_TRIALS": str(load_trials)}
        cmd = [python, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rxXfs", "tests/reliability", *extra]
        print("$ " + " ".join(cmd), flush=True)
        t0 = time.monotonic()
        proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
        seconds = time.monotonic() - t0
        lines = [json.loads(x) for x in report.read_text().splitlines()] if report.exists() else []
    tail = proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else ""
    counts = {k: int(n) for n, k in re.findall(r"(\d+) (passed|failed|xfailed|xpassed|skipped|error)", tail)}
    if proc.returncode not in (0, 1):
        print(proc.stdout[-5000:], proc.stderr[-3000:], sep="\n")
    elif counts.get("failed") or counts.get("error"):
        print("\n".join(x for x in proc.stdout.splitlines() if x.startswith(("FAILED", "ERROR"))))
    return lines, counts, seconds, proc.returncode


def _yes(n: int, of: int) -> str:
    return f"{n}/{of}"


def summarize(rows: list[dict[str, Any]], counts: dict[str, int], seconds: float) -> int:
    by: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        by[r["kind"]].append(r)
    lost_total = 0

    print("\n== bad input (exit 1, exactly one stderr line 'object: seen; expected ...', store unchanged)")
    bad = by["bad_input"]
    good = [r for r in bad if r["exit"] == 1 and r["lines"] == 1 and r["intact"]]
    count = (by["bad_input_count"] or [{}])[-1]
    print(f"  tried here: {len(bad)} (+ {count.get('elsewhere', '?')} in tests/e2e, + the unknown-layer override as a "
          f"trial failure) -> {count.get('total', '?')} distinct bad inputs in the suite")  # fmt: skip
    print(f"  exit 1: {_yes(sum(r['exit'] == 1 for r in bad), len(bad))}   one line: "
          f"{_yes(sum(r['lines'] == 1 for r in bad), len(bad))}   store intact: {_yes(sum(bool(r['intact']) for r in bad), len(bad))}"
          f"   all three: {_yes(len(good), len(bad))}")  # fmt: skip
    for r in sorted(bad, key=lambda r: r["case"]):
        if r not in good:
            print(f"  ! {r['case']}: exit {r['exit']}, {r['lines']} stderr lines, store "
                  f"{'intact' if r['intact'] else 'CHANGED'}, {r['seconds']} s")  # fmt: skip
    for r in by["locked_briefly"]:
        print(f"  (a lock released after 3 s: the sweep waited, then exit {r['exit']} after {r['seconds']} s)")
    for r in by["override_unknown_layer"]:
        print(f"  override naming an unknown layer: trial failure {r['signature']}, quantize_static calls for it: "
              f"{r['quantize_calls']}")  # fmt: skip
    slow = [r for r in bad if r["case"].startswith("locked optuna")]
    for r in slow:
        print(f"  locked optuna.db held throughout: one-line error after {r['seconds']} s (bounded wait)")

    print("\n== faults")
    fl = by["faults"]
    for r in fl:
        if r["fault"] == "sigkill":
            lost_total += int(r["lost"])
            print(f"  SIGKILL mid-trial: {r['kills']} workers killed in one study ({r['kill_loop_seconds']} s); "
                  f"{r['failed']} trials FAIL + run KILLED, {r['retried']} retried, {r['complete']} complete; "
                  f"duplicates {r['duplicates']}, lost {r['lost']}, orphan stage workers {r['orphans']}; {r['seconds']} s")  # fmt: skip
        elif r["fault"] == "tracking server restart":
            n_runs = sum(len(v) for v in r["runs"].values())
            ok = r["exit"] == 0 and r["trials"] == ["COMPLETE"] * len(r["trials"]) and n_runs == len(r["trials"])
            lost = len(r["trials"]) - n_runs if n_runs <= len(r["trials"]) else 0
            lost_total += max(lost, 0)
            print(f"  tracking server SIGKILLed mid-trial, down {r['downtime_s']} s (restart took {r['server_restart_s']} s): "
                  f"sweep exit {r['exit']}, trials {r['trials']}, {n_runs} runs -> {'survived' if ok else 'NOT survived'}")  # fmt: skip
        elif r["fault"] == "kill right after ask":
            stuck = r["states"].count("RUNNING")
            lost_total += stuck
            print(f"  worker killed right after ask (before its first heartbeat): trial states afterwards {r['states']}"
                  f" -> {stuck} trial(s) stuck RUNNING")  # fmt: skip
        elif r["fault"] == "kill before the retry's run":
            problems = len(r["trials_without_run"]) + len(r["running_runs"]) + len(r["mislinked"])
            lost_total += len(r["trials_without_run"])
            print(f"  worker killed while its retried trial had no run yet ({r['attempts']} attempt(s) to hit the window): "
                  f"trials without a run {r['trials_without_run']}, runs left RUNNING {len(r['running_runs'])}, trials "
                  f"linked to another trial's run {r['mislinked']} -> {problems} problem(s)")  # fmt: skip
        else:
            print(f"  injected {r['fault']:<14} -> {r['signature']:<24} next trial ok: {r['next_ok']}  ({r['seconds']} s)")
    survived = fl
    print(f"  faults survived: {sum(1 for r in survived if _survived(r))}/{len(survived)} scenarios "
          f"({sum(int(r.get('kills', 1)) for r in survived if _survived(r))} faults)")  # fmt: skip

    print("\n== load")
    for r in by["load"]:
        lost_total += int(r["lost"])
        print(f"  {r['workers']} workers, {r['trials']} trials ({r['failed_trials']} failed by design) on one store "
              f"[{r['store']}] in {r['wall_s']} s = {r['trials_per_s']} trials/s; per worker {r['per_worker']}; "
              f"duplicates {r['duplicates']}, lost {r['lost']}")  # fmt: skip

    print("\n== untrusted input")
    un = by["untrusted"]
    for check in dict.fromkeys(r["check"] for r in un):
        rs = [r for r in un if r["check"] == check]
        if check == "shell strings":
            print(f"  shell strings: {rs[0]['hits']} in {rs[0]['files']} harness files")
        elif check == "layer pattern":
            print(f"  layer patterns refused by the script builder (override sets made in code, no loader): {len(rs)}/{len(rs)} "
                  f"({', '.join(sorted({r['rejected_by'] for r in rs}))})")  # fmt: skip
        else:
            ran = sum(bool(r["executed"]) for r in rs)
            print(f"  {check}: {len(rs)} payloads, exit 1 + one line: {sum(r['exit'] == 1 and r['lines'] == 1 for r in rs)}, "
                  f"payload executed: {ran}")  # fmt: skip

    print(f"\n== trials lost = {lost_total}")
    print(f"suite: {counts} in {seconds:.0f} s")
    return 0 if lost_total == 0 and not counts.get("failed") and not counts.get("error") else 1


def _survived(r: dict[str, Any]) -> bool:
    if r["fault"] == "kill right after ask":
        return r["states"][0] == "FAIL" and "RUNNING" not in r["states"]
    if r["fault"] == "kill before the retry's run":
        return not (r["trials_without_run"] or r["running_runs"] or r["mislinked"])
    if r["fault"] == "sigkill":
        return r["failed"] == r["kills"] and r["retried"] == r["kills"] and r["lost"] == 0 and r["duplicates"] == 0
    if r["fault"] == "tracking server restart":
        return r["exit"] == 0 and all(s == "COMPLETE" for s in r["trials"])
    return bool(r.get("next_ok")) and ":" in str(r.get("signature"))


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--load-trials", type=int, default=200, help="trials of the 4-worker load scenario (default 200)")
    p.add_argument("pytest_args", nargs="*", help="extra pytest arguments (after --)")
    args = p.parse_args()
    rows, counts, seconds, _ = run_suite(args.load_trials, args.pytest_args)
    if not rows:
        print("no figures were recorded (did the suite run?)")
        return 1
    return summarize(rows, counts, seconds)


if __name__ == "__main__":
    sys.exit(main())
