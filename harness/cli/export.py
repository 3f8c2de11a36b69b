"""``hefsweep export``: one variant of a checkpoint (or an existing ONNX) to ONNX, gated on its fidelity.

A checkpoint goes through :func:`harness.api.export`; ``--onnx`` through :func:`harness.export.export_user_onnx`."""

from __future__ import annotations

import argparse
from pathlib import Path

from harness.cli._command import Command
from harness.errors import HarnessError

__all__ = ["Export"]


class Export(Command):
    """Export one variant of a checkpoint to ONNX ([1,1,1,W] in, [1,n_src,1,W] out) and check its fidelity.

    With ``--onnx`` an existing ONNX is the model (harness/onnx_model): converted to the 4-D form, only the exact
    rewrites apply, the gate compares with that ONNX in ONNX Runtime."""

    name = "export"

    def add_arguments(self, p: argparse.ArgumentParser) -> None:
        source = p.add_mutually_exclusive_group(required=True)
        source.add_argument("--checkpoint", type=Path, help="asteroid-format Conv-TasNet checkpoint")
        source.add_argument("--onnx", type=Path, help="an existing ONNX model ([N,T], [N,1,T] or [N,1,1,T] input)")
        p.add_argument("--sample-rate", type=int, default=16000, help="with --onnx: the model's sample rate (the probe's)")
        p.add_argument("--length", type=int, default=16000, help="input length W in samples")
        p.add_argument("--prelu", choices=["keep", "relu", "maxmin"], default="keep")
        p.add_argument("--norm", choices=["gLN", "cLN", "affine", "identity"], default=None)
        p.add_argument("--clamp", type=float, default=None, help="clamp activations to [-c, c]")
        p.add_argument("--gln-stats", choices=["joint", "split"], default="joint",
                       help="gLN statistics as one ReduceMean over (C, T) or two single-axis ones (the form the DFC parsed)")
        p.add_argument("--decoder", choices=["grouped", "per_source"], default="grouped",
                       help="one grouped ConvTranspose or one ungrouped ConvTranspose per source")
        p.add_argument("--mask-mul", choices=["repeat", "per_source"], default="repeat",
                       help="masks times cat([w] * n_src), or each source's mask times w")
        p.add_argument("--gate-db", type=float, default=60.0, help="fidelity gate (SI-SNR, dB)")
        p.add_argument("--out", type=Path, required=True, help="output .onnx")

    def run(self, args: argparse.Namespace) -> int:
        from harness.api import export

        if args.length < 256:
            raise HarnessError("--length", f"{args.length}", "an input length of at least 256 samples")
        if args.onnx is not None:
            return _export_onnx_model(args)
        r = export(args.checkpoint, args.out, width=args.length, prelu=args.prelu, norm=args.norm, clamp=args.clamp,
                   gln_stats=args.gln_stats, decoder=args.decoder, mask_mul=args.mask_mul, gate_db=args.gate_db)  # fmt: skip
        print(f"wrote {r.path} (opset {r.opset}, {sum(r.op_counts.values())} nodes)")
        print(f"substitutions fired: {', '.join(r.fired) or 'none'}")
        unknown = "" if r.sample_rate else " (probe at 8000 Hz: the checkpoint has no sample_rate)"
        print(f"fidelity: SI-SNR {r.fidelity_si_snr_db:.1f} dB, max abs error {r.fidelity_max_abs_err:.2e}{unknown}")
        print("ops: " + ", ".join(f"{k} {v}" for k, v in r.op_counts.items()))
        return 0


def _export_onnx_model(args: argparse.Namespace) -> int:
    """``hefsweep export --onnx``: the user's ONNX in the 4-D form with the exact rewrites, gated against itself."""
    import numpy as np

    from harness.audio import speech_like
    from harness.export import FidelityGateError, check_fidelity_onnx, export_user_onnx
    from harness.onnx_model import OnnxModel

    for flag, value, ok in (("--prelu", args.prelu, ("keep", "maxmin")), ("--norm", args.norm, (None,)), ("--clamp", args.clamp, (None,))):
        if value not in ok:
            raise HarnessError(flag, f"{value} needs the PyTorch model", "with --onnx only exact rewrites (--prelu keep|maxmin, no --norm, no --clamp)")
    model = OnnxModel(args.onnx, args.sample_rate, args.length)
    choices = {"prelu": args.prelu, "gln_stats": args.gln_stats, "decoder": args.decoder, "mask_mul": args.mask_mul}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    report, fired = export_user_onnx(model, args.length, choices, args.out)
    rng = np.random.default_rng(0)
    probe = speech_like(rng, args.length, args.sample_rate)[None, None, None, :].astype(np.float32)
    try:
        fid = check_fidelity_onnx(model.run_original, args.out, probe, args.gate_db)
    except FidelityGateError as exc:
        raise HarnessError(args.out, str(exc), f"SI-SNR >= {args.gate_db:g} dB against {args.onnx}") from None
    print(f"wrote {args.out} (opset {report.opset}, {sum(report.op_counts.values())} nodes, {model.config.n_src} sources)")
    print("rewrites: " + (", ".join(f"{k} fired {v}x" for k, v in fired.items()) or "none selected"))
    print(f"fidelity vs {args.onnx}: SI-SNR {fid['fidelity_si_snr_db']:.1f} dB, max abs error {fid['fidelity_max_abs_err']:.2e}")
    print("ops: " + ", ".join(f"{k} {v}" for k, v in report.op_counts.items()))
    return 0
