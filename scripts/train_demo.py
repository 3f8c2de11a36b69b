"""Train the small demo Conv-TasNet shipped in assets/ on mixtures this repo generates.

Nothing is downloaded: sources are :func:`harness.audio.speech_like` speakers mixed with background noise
(:func:`harness.audio.synth_mixture`). The loss is permutation-invariant negative SI-SNR, as in the
Conv-TasNet paper. The result is saved in asteroid's checkpoint format and reports the SI-SNRi it reaches
on held-out mixtures, so the demo separates for real.

Usage: python scripts/train_demo.py --out assets/demo_convtasnet.pt [--minutes 10] [--seed 0]
"""

from __future__ import annotations

import argparse
import itertools
import time
from pathlib import Path

import numpy as np
import torch

from harness.audio import synth_mixture
from harness.metrics import si_snri
from harness.model import DEMO_CONFIG, ConvTasNet4D
from harness.model._checkpoint import save_checkpoint


def pit_neg_si_snr(est: torch.Tensor, ref: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Permutation-invariant negative SI-SNR; est, ref: [B, n_src, T]."""
    est = est - est.mean(-1, keepdim=True)
    ref = ref - ref.mean(-1, keepdim=True)
    n_src = est.shape[1]
    losses = []
    for perm in itertools.permutations(range(n_src)):
        r = ref[:, list(perm)]
        alpha = (est * r).sum(-1, keepdim=True) / (r.pow(2).sum(-1, keepdim=True) + eps)
        target = alpha * r
        noise = est - target
        snr = 10 * torch.log10((target.pow(2).sum(-1) + eps) / (noise.pow(2).sum(-1) + eps))
        losses.append(-snr.mean(-1))
    return torch.stack(losses, -1).min(-1).values.mean()


def tie_decoder_grads(model: ConvTasNet4D) -> None:
    """Keep the per-source decoder copies identical: asteroid has one decoder filterbank shared by all sources.

    The copies start equal; averaging their gradients gives them identical Adam updates.
    """
    grad = model.decoder.weight.grad
    if grad is None:
        return
    n_src = model.config.n_src
    shared = grad.view(n_src, -1, *grad.shape[1:]).mean(0, keepdim=True)
    grad.copy_(shared.expand(n_src, *shared.shape[1:]).reshape(grad.shape))


def make_pool(rng: np.random.Generator, n: int, samples: int, sr: int) -> tuple[np.ndarray, np.ndarray]:
    mixes, srcs = zip(*(synth_mixture(rng, samples, sr) for _ in range(n)), strict=True)
    return np.stack(mixes), np.stack(srcs)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--width", type=int, default=8000)
    args = ap.parse_args()

    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    sr = int(DEMO_CONFIG.sample_rate)
    print("generating training mixtures ...", flush=True)
    train_mix, train_src = make_pool(rng, 600, 2 * sr, sr)
    val_mix, val_src = make_pool(np.random.default_rng(args.seed + 1000), 16, sr, sr)

    model = ConvTasNet4D(DEMO_CONFIG)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, factor=0.5, patience=3)
    deadline = time.monotonic() + args.minutes * 60
    step, window = 0, []
    while time.monotonic() < deadline:
        idx = rng.integers(0, len(train_mix), args.batch)
        off = rng.integers(0, train_mix.shape[1] - args.width, args.batch)
        mix = np.stack([train_mix[i, o : o + args.width] for i, o in zip(idx, off, strict=True)])
        src = np.stack([train_src[i, :, o : o + args.width] for i, o in zip(idx, off, strict=True)])
        est = model(torch.from_numpy(mix)[:, None, None, :])[:, :, 0, :]
        loss = pit_neg_si_snr(est, torch.from_numpy(src))
        opt.zero_grad()
        loss.backward()
        tie_decoder_grads(model)
        torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
        opt.step()
        window.append(-loss.item())
        step += 1
        if step % 100 == 0:
            train_snr = float(np.mean(window))
            window = []
            sched.step(-train_snr)
            print(f"step {step}: train SI-SNR {train_snr:5.2f} dB  lr {opt.param_groups[0]['lr']:.1e}", flush=True)

    model.eval()
    with torch.no_grad():
        est = model(torch.from_numpy(val_mix)[:, None, None, :])[:, :, 0, :].numpy()
    improvement = float(np.mean([si_snri(est[i], val_src[i], val_mix[i]).mean() for i in range(len(val_mix))]))
    print(f"held-out SI-SNRi: {improvement:.2f} dB after {step} steps")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    save_checkpoint(
        model,
        args.out,
        infos={"training": {"steps": step, "seed": args.seed, "val_si_snri_db": improvement, "data": "synth_mixture"}},
    )
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
