"""``hefsweep diff RUN_A RUN_B``: which layers' quantization noise changed between two trials."""

from __future__ import annotations

import argparse
import math
import os
from pathlib import Path
from typing import Any

from harness.cli._command import Command, store_options
from harness.errors import HarnessError

__all__ = ["DECOMPOSITION", "Diff", "decomposition_lines", "limited_by"]


def _db(x: float) -> str:
    return f"{x:8.2f}" if math.isfinite(x) else f"{x!s:>8}"


class Diff(Command):
    """Compare two trials' per-layer quantization noise.

    Per-tensor SQNR (float vs quantized): the layers whose SQNR changed most, tensors only in one of them, the parameters that differ, and the SI-SNR decomposition of both
    (the objective vs the original float model, the substitution loss, the quantization loss). Uses each run's logged
    noise/layer_noise.json, or computes it from its logged ONNX models (and logs it to the run)."""

    name = "diff"

    def add_arguments(self, p: argparse.ArgumentParser) -> None:
        p.add_argument("run_a", metavar="RUN_A", help="MLflow run id of a trial (the baseline)")
        p.add_argument("run_b", metavar="RUN_B", help="MLflow run id of another trial; delta = B - A")
        p.add_argument("--top", type=int, default=20, help="layers shown (default 20)")
        p.add_argument("--inputs", type=int, default=3, help="eval clips used when a table must be computed (default 3)")
        p.add_argument("--no-log", action="store_true", help="do not log a computed table to its run")
        store_options(p)

    def run(self, args: argparse.Namespace) -> int:
        from mlflow import MlflowClient

        from harness.layer_noise import diff_noise, load_run_noise
        from harness.tracking import default_tracking_uri

        if args.top < 1:
            raise HarnessError("--top", str(args.top), "at least 1")
        if args.inputs < 1:
            raise HarnessError("--inputs", str(args.inputs), "at least 1 evaluation clip")
        uri = args.tracking_uri or default_tracking_uri(args.root)
        if uri.startswith("sqlite:///") and not Path(uri.removeprefix("sqlite:///")).is_file():
            raise HarnessError(f"MLflow tracking store {uri}", "no such database file", "the store of a sweep (`--root` or `--tracking-uri`)")
        client = MlflowClient(tracking_uri=uri)
        os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # keep the table readable
        a, src_a = load_run_noise(client, args.run_a, n_inputs=args.inputs, log_computed=not args.no_log)
        b, src_b = load_run_noise(client, args.run_b, n_inputs=args.inputs, log_computed=not args.no_log)
        d = diff_noise(a, b)
        runs = {rid: client.get_run(rid) for rid in (args.run_a, args.run_b)}
        label = {rid: r.info.run_name or rid[:12] for rid, r in runs.items()}
        la, lb = label[args.run_a], label[args.run_b]
        print(f"A = {la} ({args.run_a}), table {src_a}, {_size(a)}")
        print(f"B = {lb} ({args.run_b}), table {src_b}, {_size(b)}")

        pa, pb = runs[args.run_a].data.params, runs[args.run_b].data.params
        changed = sorted(k for k in set(pa) | set(pb) if pa.get(k) != pb.get(k))
        print("\nparams that differ:" + ("" if changed else " none"))
        for k in changed:
            print(f"  {k}: {pa.get(k, '-')} -> {pb.get(k, '-')}")
        ma, mb = runs[args.run_a].data.metrics, runs[args.run_b].data.metrics
        if "si_snr_db" in ma and "si_snr_db" in mb:
            print(f"  (si_snr_db: {ma['si_snr_db']:.2f} -> {mb['si_snr_db']:.2f} dB)")
        for line in decomposition_lines(ma, mb):
            print(line)

        s = d.summary()
        print(
            f"\n{s['n_common']} tensors in both, {s['only_a']} only in A, {s['only_b']} only in B; "
            f"SQNR better in B for {s['n_better_in_b']}, worse for {s['n_worse_in_b']}"
            + (f", median delta {s['median_delta_db']:+.2f} dB" if s["median_delta_db"] is not None else "")
        )
        top = d.top(args.top)
        if top:
            width = min(max(len(r.tensor) for r in top), 64)
            print(f"\nlayers whose SQNR changed most (delta = B - A; positive = less noise in B):")
            print(f"  {'tensor':<{width}}  {'op':<12} {'A dB':>8} {'B dB':>8} {'delta':>8}")
            for r in top:
                name = r.tensor if len(r.tensor) <= width else "..." + r.tensor[-(width - 3) :]
                delta = f"{r.delta_db:+8.2f}" if math.isfinite(r.delta_db) else f"{r.delta_db!s:>8}"
                print(f"  {name:<{width}}  {r.op_type:<12} {_db(r.a_db)} {_db(r.b_db)} {delta}")
        for tag, names in (("only in A", d.only_a), ("only in B", d.only_b)):
            if names:
                shown = ", ".join(names[:5]) + (f", ... ({len(names) - 5} more)" if len(names) > 5 else "")
                print(f"{tag}: {shown}")
        return 0


#: The objective and its decomposition, as logged per trial (``harness.pipeline._metrics``).
DECOMPOSITION = (
    ("si_snr_db", "objective: quantized vs original float"),
    ("substitution_si_snr_db", "substituted vs original float"),
    ("quant_si_snr_db", "quantized vs substituted float"),
    ("orig_float_si_snri_db", "SI-SNRi of the original float"),
    ("float_si_snri_db", "SI-SNRi of the substituted float"),
    ("quant_si_snri_db", "SI-SNRi of the quantized model"),
)


def limited_by(m: dict[str, float]) -> str | None:
    """Which loss bounds a trial's objective: ``substitution`` or ``quantization`` (None without the metrics)."""
    if "substitution_si_snr_db" not in m or "quant_si_snr_db" not in m:
        return None
    return "substitution" if m["substitution_si_snr_db"] < m["quant_si_snr_db"] else "quantization"


def decomposition_lines(ma: dict[str, float], mb: dict[str, float]) -> list[str]:
    """``SI-SNR A -> B`` lines for the objective, the substitution and the quantization loss (and SI-SNRi), for the
    metrics both runs logged; empty when they logged none of the decomposition."""
    keys = [(k, what) for k, what in DECOMPOSITION if k in ma and k in mb]
    if not any(k == "substitution_si_snr_db" for k, _ in keys):
        return []
    width = max(len(f"{k} ({what})") for k, what in keys)
    out = ["\nSI-SNR decomposition, A -> B (dB):"]
    for k, what in keys:
        label = f"{k} ({what})"
        out.append(f"  {label:<{width}}  {_db(ma[k])} -> {_db(mb[k])}  ({mb[k] - ma[k]:+.2f})")
    la, lb = limited_by(ma), limited_by(mb)
    out.append(f"  limited by: A {la}, B {lb} (the lower of substitution_si_snr_db and quant_si_snr_db)")
    return out


def _size(report: Any) -> str:
    if report.backend == "hailo":  # HN layers, measured by the DFC on its own data
        return f"{len(report.rows)} HN layers (the DFC's layer noise analysis)"
    return f"{len(report.rows)} tensors, {report.n_inputs} inputs"
