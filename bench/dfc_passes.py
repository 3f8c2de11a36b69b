"""DFC optimize passes (and wall time) to the first HEF of the seed setup: hefsweep's repair loop vs one layer at a time.

The seed setup (``search_spaces/convtasnet_hailo.yaml``'s first start point with the model's exact head rewrites,
so that compile can pass): gLN as the real DFC parsed it (``gln_stats: split``), ``decoder: per_source``,
``mask_mul: per_source``, W = 16000, 200 ms calibration clips zero-padded (``calib_clip_length: 3200``,
``calib_fill: pad``), 16 calibration clips from ``data/demo``, no override set. One trial runs through hefsweep's
real pipeline and repair loop on the fake DFC (``tests/fakes/hailo_sdk_client`` under ``.venv-dfc``), with a
fresh stage cache per run so every optimize pass really runs. On the fake, every GlobLN variance pool pools the
whole latent width (1999 frames at W = 16000: "Desired shift is 10.0, but op has only 8 data bits", the seed's
[T] numbers), and optimize names the first unfixed one in HN order, so a loop that fixes only the named layer
needs one pass per variance pool.

Arms (the same pipeline; only the repair table differs):

- ``hefsweep``: the product's table (:data:`harness.repair.RULES`) and its default ``max_repairs`` (6 on
  Hailo): after the first ``NegativeSlopeExponentNonFixable`` the fix goes to every layer of the failing
  layer's HN role at once (``negative_exponent`` on ``role:gln_var_pool``);
- ``one-layer``: the same table with every family-scope fix removed (each pass fixes the layer the failure
  named), injected by wrapping :func:`harness.repair.run_repairs` with ``rules=`` -- the product is not
  changed -- and ``max_repairs: 50`` (the schema's maximum) so that it can finish; at the default 6 it would stop
  (``max_repairs``) before the last pool.

Models:

- ``demo``: ``assets/demo_convtasnet.pt`` (12 blocks of 128 hidden channels, 13 gLN). On the fake no W = 16000
  HEF exists for it (its 128-channel rows at 1999 frames are 250 KiB, over the fake's 64 KiB "Agent
  infeasible" budget, an [I] guess fitted to the real record): it measures optimize passes to the first
  *quantized* model, then the allocator failure that ends the trial (same for both arms);
- ``narrow``: a random-init Conv-TasNet with the demo's depth and structure (6 blocks x 2 repeats, kernel 16,
  stride 8) and 32 channels everywhere, whose rows at W = 16000 fit that budget: it reaches a HEF, so it
  measures optimize passes to the first HEF.

Printed per model and arm: optimize passes (the stage's real executions, counted on the stage cache) and their
seconds, compile passes and their seconds, the trial's wall time (export, calibration and translate included; the
first arm also pays the cold start of the DFC worker, so compare the stage seconds, not the trial times), the
repair log's stop and whether a HEF came out. The fake's optimize takes well under a second a pass (it rounds
activations in ONNX Runtime); the real DFC's takes minutes to hours on a full model, so the pass count is the
figure and the fake's seconds say little about the real saving.
The last line: the narrow model's optimize passes to its first HEF with hefsweep's loop.

Usage: python bench/dfc_passes.py [--quick] [--models demo,narrow]
Full mode (both models): ~1 min on 2 cores; --quick (the narrow model only): ~15 s.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

ARMS = ("hefsweep", "one-layer")
MODELS = ("demo", "narrow")
#: The narrow model: the demo checkpoint's structure and depth, 32 channels (fits the fake's allocator at W=16000).
NARROW = dict(n_src=2, n_filters=32, kernel_size=16, stride=8, bn_chan=32, hid_chan=32, skip_chan=32, n_blocks=6,
              n_repeats=2, conv_kernel_size=3, norm_type="gLN", mask_act="sigmoid", encoder_activation="relu",
              sample_rate=16000)  # fmt: skip

SPACE = """
study: bench-dfc-passes
checkpoint: {ckpt}
backend: hailo
backend_options: {{hw_arch: hailo8, net_name: convtas, layer_noise: disabled, python: {python}}}
data: {{calibration: {data}/calib, evaluation: {data}/eval, eval_clips: 2}}
stage_timeout: 900
layer_noise_clips: 0
max_repairs: {max_repairs}
dimensions:
  prelu: keep
  norm: gLN
  gln_stats: split
  decoder: per_source
  mask_mul: per_source
  width: 16000
  calib_clip_length: 3200
  calib_fill: pad
  calib_size: 16
  calib_method: minmax
  override_set: none
override_sets:
  none: []
"""


def one_layer_rules() -> tuple[Any, ...]:
    """:data:`harness.repair.RULES` without family-scope fixes: every fix targets the layer the failure named."""
    from harness.repair import RULES

    return tuple(
        dataclasses.replace(r, fixes=tuple(f for f in r.fixes if getattr(f, "scope", "layer") != "family"))
        for r in RULES
    )


@contextmanager
def repair_table(rules: Any) -> Iterator[None]:
    """Make the pipeline's repair loop use ``rules`` (None: the product's table) for the duration."""
    import harness.repair as repair

    original = repair.run_repairs
    if rules is not None:

        def run_repairs(*args: Any, **kw: Any) -> Any:
            return original(*args, **{**kw, "rules": rules})

        repair.run_repairs = run_repairs  # type: ignore[assignment]
    try:
        yield
    finally:
        repair.run_repairs = original  # type: ignore[assignment]


@contextmanager
def counting_stages() -> Iterator[dict[str, list[float]]]:
    """Seconds of each real stage execution (cache misses), by stage name; ``<stage>:ok`` 1.0/0.0 per execution."""
    from harness.cache import StageCache

    runs: dict[str, list[float]] = {}
    build = StageCache.build

    def counting(self: Any, stage: str, key: str, fn: Any, clock: Any = None) -> Any:
        def timed(d: Path) -> dict[str, Any]:
            t = time.monotonic()
            ok = False
            try:
                out = fn(d)
                ok = True
                return out
            finally:
                runs.setdefault(stage, []).append(time.monotonic() - t)
                runs.setdefault(f"{stage}:ok", []).append(float(ok))

        return build(self, stage, key, timed, clock)

    StageCache.build = counting  # type: ignore[method-assign]
    try:
        yield runs
    finally:
        StageCache.build = build  # type: ignore[method-assign]


def make_checkpoint(model: str, tmp: Path) -> Path:
    """The checkpoint of ``model``: the demo checkpoint, or the narrow random-init one written into ``tmp``."""
    if model == "demo":
        return ROOT / "assets" / "demo_convtasnet.pt"
    import torch

    from harness.model import ConvTasNet4D, ConvTasNetConfig
    from harness.model._checkpoint import save_checkpoint

    torch.manual_seed(0)
    return save_checkpoint(ConvTasNet4D(ConvTasNetConfig.from_model_args(NARROW)), tmp / "narrow.pt")


def demo_data(data: Path | None = None) -> Path:
    """The demo audio (``data/demo``, made there when missing, as ``make`` does)."""
    from harness.audio import make_demo_dataset

    data = data or ROOT / "data" / "demo"
    if not (data / "calib").is_dir() or not (data / "eval").is_dir():
        make_demo_dataset(data)
    return data


def run_arm(model: str, arm: str, tmp: Path, data: Path | None = None) -> dict[str, Any]:
    """One seed-setup trial of ``model`` with ``arm``'s repair table, on a fresh stage cache (demo audio from
    ``data``, default ``data/demo``)."""
    from harness.cache import StageCache
    from harness.pipeline import Pipeline, TrialConfig
    from harness.space import load_space

    work = tmp / f"{model}-{arm}"
    work.mkdir(parents=True, exist_ok=True)
    python = os.environ.get("HEFSWEEP_HAILO_PYTHON") or str(ROOT / ".venv-dfc" / "bin" / "python")
    space_file = work / "space.yaml"
    space_file.write_text(SPACE.format(ckpt=make_checkpoint(model, work), python=python, data=demo_data(data),
                                       max_repairs="null" if arm == "hefsweep" else 50))  # fmt: skip
    space = load_space(space_file)
    dims = dict(space.dimension_items())
    cfg = TrialConfig(**{k: v for k, v in dims.items() if k in {f.name for f in dataclasses.fields(TrialConfig)}})
    pipeline = Pipeline(space, StageCache(work / "cache"))
    try:
        with counting_stages() as runs, repair_table(None if arm == "hefsweep" else one_layer_rules()):
            t = time.monotonic()
            result = pipeline.run(cfg)
            wall = time.monotonic() - t
    finally:
        pipeline.close()
    repair = result.info.get("repair", {})
    return {
        "model": model,
        "arm": arm,
        "optimize_passes": len(runs.get("optimize", [])),
        # passes up to and including the first optimize that succeeded (None: none did)
        "to_quantized": next((i + 1 for i, ok in enumerate(runs.get("optimize:ok", [])) if ok), None),
        "compile_passes": len(runs.get("compile", [])),
        "hef": result.ok,
        "status": result.status,
        "signature": result.failure.signature if result.failure else None,
        "stop": repair.get("repair.stop_reason"),
        "first": repair.get("repair.first_signature"),
        "wall_s": wall,
        "optimize_s": sum(runs.get("optimize", [])),
        "compile_s": sum(runs.get("compile", [])),
        "final_overrides": [(o["kind"], o["layers"]) for o in repair.get("final_override_set", {}).get("overrides", [])],
    }


def bench(
    tmp: Path, models: tuple[str, ...] = MODELS, stream: Any = sys.stdout, data: Path | None = None
) -> list[dict[str, Any]]:
    """Run every arm on every model; print the table and the figure line; return the rows."""
    rows = []
    for model in models:
        for arm in ARMS:
            r = run_arm(model, arm, tmp, data)
            rows.append(r)
            outcome = "HEF" if r["hef"] else f"no HEF ({r['signature']})"
            stream.write(
                f"  {model:<6} {arm:<9} optimize passes {r['optimize_passes']:2d} ({r['optimize_s']:.1f} s)  compile "
                f"passes {r['compile_passes']:2d} ({r['compile_s']:.1f} s)  trial {r['wall_s']:.1f} s  "
                f"stop {r['stop'] or '-'}  {outcome}\n"
            )
            stream.flush()
    for model in models:
        by = {r["arm"]: r for r in rows if r["model"] == model}
        h, o = by["hefsweep"], by["one-layer"]
        if h["hef"] and o["hef"]:
            what, a, b = "first HEF", h["optimize_passes"], o["optimize_passes"]
        else:
            what, a, b = "first quantized model (no HEF)", h["to_quantized"], o["to_quantized"]
        stream.write(f"{model}: optimize passes to the {what}: hefsweep {a} vs one layer at a time {b}; "
                     f"seconds in optimize {h['optimize_s']:.1f} vs {o['optimize_s']:.1f}\n")  # fmt: skip
    target = next((r for r in rows if r["arm"] == "hefsweep" and r["hef"]), None)
    if target is not None:
        stream.write(f"dfc_passes: {target['optimize_passes']} optimize passes to the first HEF, seed setup "
                     f"({target['model']} model) (aim <= 2)\n")  # fmt: skip
    else:
        stream.write("dfc_passes: no HEF reached (aim <= 2 optimize passes)\n")
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="the narrow model only")
    ap.add_argument("--models", default=",".join(MODELS), help="comma-separated: demo, narrow")
    ap.add_argument("--keep", type=Path, help="work in this folder (kept) instead of a temporary one")
    args = ap.parse_args()
    models = ("narrow",) if args.quick else tuple(m for m in args.models.split(",") if m)
    if args.keep:
        args.keep.mkdir(parents=True, exist_ok=True)
        bench(args.keep, models)
        return
    with tempfile.TemporaryDirectory() as tmp:
        bench(Path(tmp), models)


if __name__ == "__main__":
    main()
