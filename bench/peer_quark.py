"""A peer side by side: AMD Quark's ONNX quantization search vs hefsweep's ONNX Runtime sweep, in one run.

Both sides get the same demo checkpoint (``assets/demo_convtasnet.pt``), the same calibration audio
(``data/demo/calib``), the same evaluation clips (``data/demo/eval``, W = 16000) and the same trial budget, and both
are scored the same way: the mean SI-SNR of the best quantized model's outputs against the ORIGINAL float model's
(the checkpoint in torch, :func:`harness.model.separate`; per clip, best source permutation,
:func:`harness.metrics.score_clip`) -- hefsweep's objective ``si_snr_db``.

- hefsweep: ``run_sweep`` on ``search_spaces/demo.yaml`` with W fixed to 16000 (its searched dimensions: PReLU /
  norm substitutions, calibration clip length and fill, calibration method, override sets), fresh stores, its TPE.
- Quark: ``quark.onnx.AutoSearchPro`` (amd-quark 0.13, TPE) on the checkpoint's own float ONNX (hefsweep's
  exporter, no substitution: Quark searches quantization settings only), calibrated on 16 full-length clips of the
  same audio (hefsweep's calibration builder, ``repeat`` fill), its default objective (L2 between float and
  quantized ONNX outputs on the evaluation clips), in its own virtual environment made here (``.venv-quark``: amd-quark
  pins onnx 1.21-1.22 and numpy >= 2, apart from ours), driven by ``bench/_quark_runner.py``.

Wall times: each side's search only (hefsweep: the sweep call including its store set-up; Quark: ``run()``), not
the venv build. Quark's TPE is unseeded inside AutoSearchPro (its sampler table builds ``TPESampler()``), so its
figure varies between runs.

Usage: python bench/peer_quark.py [--trials 8] [--venv .venv-quark]
"""

from __future__ import annotations

import argparse
import io
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

#: torch first and pinned (the CPU wheel; quark.onnx builds its custom ops with torch's extension tools and an
#: unpinned resolve would pull a multi-GB CUDA build), then amd-quark and the runtime it is tested against.
TORCH_PIN = "torch==2.13.0"
QUARK_PINS = ["amd-quark==0.13", "onnxruntime==1.28.0", "optuna>=4.0"]


def quark_python(venv: Path) -> Path:
    """The Quark environment's interpreter, made (once) with this interpreter's base Python."""
    python = venv / "bin" / "python"
    stamp = venv / ".installed-stamp"
    if stamp.is_file() and python.is_file():
        return python
    start = time.monotonic()
    base = getattr(sys, "_base_executable", sys.executable)
    subprocess.run([base, "-m", "venv", "--clear", str(venv)], check=True)
    subprocess.run([str(python), "-m", "pip", "install", "-q", TORCH_PIN], check=True)
    subprocess.run([str(python), "-m", "pip", "install", "-q", *QUARK_PINS], check=True)
    stamp.write_text(" ".join([TORCH_PIN, *QUARK_PINS]) + "\n")
    print(f"made {venv} ({' '.join(QUARK_PINS)}) in {time.monotonic() - start:.0f} s")
    return python


def _score(outputs: np.ndarray, original: np.ndarray, lengths: list[int]) -> float:
    from harness.metrics import score_clip

    q = outputs.reshape(len(outputs), original.shape[1], -1)
    return float(np.mean([score_clip(q[i], original[i, :, 0, :], lengths[i]).si_snr_db for i in range(len(q))]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--trials", type=int, default=8)
    ap.add_argument("--venv", type=Path, default=ROOT / ".venv-quark")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    from harness.audio import build_calibration_set, load_eval_set, make_demo_dataset
    from harness.export import export_onnx
    from harness.model import load_checkpoint, separate
    from harness.space import load_space
    from harness.sweep import run_sweep

    python = quark_python(args.venv)
    data = ROOT / "data" / "demo"
    if not (data / "calib").is_dir():
        make_demo_dataset(data)
    space = load_space(ROOT / "search_spaces" / "demo.yaml")
    dims = space.dimensions.model_copy(update={"width": 16000})
    space = space.model_copy(update={"dimensions": dims, "seed": args.seed, "enqueue": ()})
    model = load_checkpoint(space.checkpoint)
    rate = int(model.config.sample_rate)
    ev = load_eval_set(space.data.evaluation, sample_rate=rate, width=16000, n_src=model.config.n_src,
                       limit=space.data.eval_clips)  # fmt: skip
    original = separate(model, ev.mixtures)
    lengths = [int(n) for n in ev.lengths]

    with tempfile.TemporaryDirectory(prefix="hefsweep-peer-") as tmp:
        tmp_path = Path(tmp)
        # -- hefsweep ------------------------------------------------------------------------------------------
        start = time.monotonic()
        summary = run_sweep(space, trials=args.trials, root=tmp_path / "hefsweep", stream=io.StringIO(),
                            study_name="peer")  # fmt: skip
        hef_seconds = time.monotonic() - start
        hef_best = summary.best_value
        print(f"hefsweep: {summary.n_trials} trials ({summary.n_ok} ok), best si_snr_db "
              f"{hef_best:.2f} dB (trial #{summary.best_trial}) in {hef_seconds:.1f} s")  # fmt: skip

        # -- Quark -----------------------------------------------------------------------------------------------
        onnx_path = tmp_path / "float.onnx"
        export_onnx(model, 16000, onnx_path)
        cs = build_calibration_set(space.data.calibration, sample_rate=rate, width=16000, clip_length=None,
                                   policy="repeat", size=16, min_clips=4)  # fmt: skip
        npz = tmp_path / "data.npz"
        np.savez(npz, calib=cs.data[:, None, None, :].astype(np.float32),
                 eval=ev.mixtures[:, None, None, :].astype(np.float32))  # fmt: skip
        out = tmp_path / "quark"
        run = subprocess.run(
            [str(python), str(ROOT / "bench" / "_quark_runner.py"), str(onnx_path), str(npz), str(out),
             str(args.trials), str(args.seed)],
            capture_output=True, text=True, cwd=tmp_path,
        )  # fmt: skip
        if run.returncode != 0:
            print(run.stdout[-3000:], run.stderr[-3000:], sep="\n", file=sys.stderr)
            raise SystemExit(f"peer_quark: the Quark side failed (exit {run.returncode}); its output is above")
        result = json.loads((out / "result.json").read_text())
        quark_best = _score(np.load(out / "best_outputs.npy"), original, lengths)
        print(f"quark: {result['trials']} trials, best L2 {result['best_l2']:.4g} (trial #{result['best_trial']}, "
              f"{json.dumps(result['best_params'])}), its si_snr_db {quark_best:.2f} dB in {result['seconds']:.1f} s "
              f"({', '.join(f'{k} {v}' for k, v in result['versions'].items())})")  # fmt: skip
    print(
        f"peer_quark: hefsweep {hef_best:.2f} dB in {hef_seconds:.0f} s vs AMD Quark AutoSearchPro "
        f"{quark_best:.2f} dB in {result['seconds']:.0f} s, SI-SNR vs the original float model, {args.trials} trials "
        "each (aim: both sides printed)"
    )


if __name__ == "__main__":
    main()
