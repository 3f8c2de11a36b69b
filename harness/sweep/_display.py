"""The live display (``_Display``): trial n/N and its configuration, the current stage, the trial's outcome and the
best so far (``_best``)."""

from __future__ import annotations

from typing import Any, TextIO

from harness.pipeline import TrialConfig, TrialResult


class _Display:
    """Live progress: trial n/N, current stage, best so far."""

    def __init__(self, total: int, stream: TextIO) -> None:
        self.total = total
        self.stream = stream
        self.tty = stream.isatty()
        self.label = ""
        self.count = 0
        self.capacity: float | None = None  # mode: frontier: the current trial's capacity_macs (the objective)

    def trial(self, number: int, cfg: TrialConfig) -> None:
        from harness.space import ARCH_DIMS, DEPLOY_DEFAULTS

        # the deployment-shape and capacity dimensions only when a trial sets them (monolithic, untiled, the
        # checkpoint's size otherwise): the line stays readable
        quiet = {**DEPLOY_DEFAULTS, **dict.fromkeys(ARCH_DIMS)}
        p = {k: v for k, v in cfg.to_dict().items() if k not in quiet or v != quiet[k]}
        desc = " ".join(f"{k}={v}" for k, v in p.items())
        self.count += 1
        self.label = f"[{self.count}/{self.total} trial #{number}]"
        self.stream.write(f"{self.label} {desc}\n")
        self.stream.flush()

    def note(self, text: str) -> None:
        """A line about the current trial (e.g. why its ONNX Runtime screen was skipped)."""
        if self.tty:
            self.stream.write("\r" + " " * 60 + "\r")
        self.stream.write(f"{self.label}   {text}\n")
        self.stream.flush()

    def stage(self, name: str) -> None:
        if self.tty:
            self.stream.write(f"\r{self.label}   stage: {name:<10}")
            self.stream.flush()

    def done(self, result: TrialResult, best: tuple[float, int] | None) -> None:
        if self.tty:
            self.stream.write("\r" + " " * 60 + "\r")
        if result.ok:
            m = result.metrics
            what = f"ok      si_snr {m['si_snr_db']:6.2f} dB  worst {m['si_snr_worst_db']:6.2f} dB"
        elif result.info.get("screened_out"):
            what = f"PRUNED  screened out on onnxruntime (si_snr {result.metrics['screen_si_snr_db']:.2f} dB)"
        elif result.status == "pruned":
            what = f"PRUNED  after {result.info.get('pruned_after_clips')} clips (worse than the best trial)"
        else:
            assert result.failure is not None
            what = f"FAILED  {result.failure.signature}"
        secs = sum(v for k, v in result.metrics.items() if k.startswith("time_"))
        best_txt = f"best {best[0]:.2f} dB (trial #{best[1]})" if best else "best -"
        if self.capacity is not None:  # mode: frontier: the objective is capacity (MACs per input)
            what += f"  capacity {self.capacity / 1e6:.1f} MMAC"
            best_txt = f"best {best[0] / 1e6:.1f} MMAC (trial #{best[1]})" if best else "best -"
        self.stream.write(f"{self.label}   {what}  [{secs:.1f} s]  {best_txt}\n")
        self.stream.flush()


def _best(study: Any, value: float | None, number: int) -> tuple[float, int] | None:
    try:
        bt = study.best_trial
        best = (float(bt.value), bt.number)
    except ValueError:
        best = None
    if value is not None and (best is None or value > best[0]):
        best = (value, number)
    return best
