"""AMD Quark's ONNX quantization search on one model, run inside the bench's own Quark environment.

Not a harness module: ``bench/peer_quark.py`` runs it with ``.venv-quark/bin/python`` (amd-quark pins onnx and numpy
apart from ours), so it imports only numpy, onnxruntime, optuna and quark.

Usage: python _quark_runner.py MODEL.onnx DATA.npz OUT_DIR TRIALS SEED

``DATA.npz`` holds ``calib`` ``[n, 1, 1, W]`` and ``eval`` ``[m, 1, 1, W]`` float32 (the input name is read from the
model). Runs ``quark.onnx.AutoSearchPro`` with its TPE sampler over a calibration/precision search space (Quark's
own ``ADVANCED_SEARCH_CONFIG`` activation/weight keys, plus 16-bit activations, the counterpart of hefsweep's
``all16`` override set; no AdaRound/AdaQuant: they need torch), Quark's default objective (L2 distance between the
float and the quantized ONNX outputs on the evaluation inputs, minimised). Writes ``OUT_DIR/best_outputs.npy``
(the best quantized model's outputs on the evaluation inputs) and ``OUT_DIR/result.json`` (best params, trial
values, seconds, versions).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np


class _Reader:
    """Quark's calibration data reader protocol: ``get_next()`` returns one input dict or None."""

    def __init__(self, name: str, data: np.ndarray) -> None:
        self.name, self.data, self.i = name, data, 0

    def get_next(self) -> dict[str, np.ndarray] | None:
        if self.i >= len(self.data):
            return None
        self.i += 1
        return {self.name: self.data[self.i - 1 : self.i]}

    def rewind(self) -> None:
        self.i = 0

    reset = rewind


def main() -> None:
    model, data_path, out, trials, seed = sys.argv[1], sys.argv[2], Path(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
    import onnx
    import onnxruntime as ort
    import optuna
    import quark
    from quark.onnx import AutoSearchPro

    data = np.load(data_path)
    name = onnx.load(model, load_external_data=False).graph.input[0].name
    space = {
        "activation": ["Int8Spec", "Int16Spec"],
        "activation_params": {
            "symmetric": [True, False],
            "calibration_method": ["MinMax", "Percentile", "MinMSE"],
            "scale_type": ["Float32"],
            "quant_granularity": ["Tensor"],
            "only_if": "activation",
        },
        "weight": ["Int8Spec"],
        "weight_params": {
            "symmetric": [True],
            "calibration_method": ["MinMax"],
            "scale_type": ["Float32"],
            "quant_granularity": ["Tensor", "Channel"],
            "only_if": "weight",
        },
    }
    out.mkdir(parents=True, exist_ok=True)
    config = {
        "model_input": model,
        "output_dir": str(out / "search"),
        "temp_dir": str(out / "tmp"),
        "calib_data_reader": _Reader(name, data["calib"]),
        "eval_data_reader": _Reader(name, data["eval"]),
        "search_space": space,
        "search_algo": "TPE",
        "search_metric": "L2",
        "direction": "minimize",
        "n_trials": trials,
        "n_jobs": 1,
        "study_name": "quark_peer",
        "study_storage_db": "study.db",
    }
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    np.random.seed(seed)
    start = time.monotonic()
    searcher = AutoSearchPro(config)
    searcher.sampler_algo = "TPE"
    best_params = searcher.run()
    seconds = time.monotonic() - start
    study = optuna.load_study(study_name="quark_peer", storage=f"sqlite:///{out / 'search' / 'study.db'}")
    best = study.best_trial
    best_model = out / "search" / f"quantized_model_{best.number}.onnx"
    so = ort.SessionOptions()
    try:  # Quark's quantized models may use its custom ops (its own evaluator registers them the same way)
        from quark.onnx.operators.custom_ops import get_library_path

        so.register_custom_ops_library(get_library_path("CPU"))
    except Exception as exc:  # noqa: BLE001 - plain QDQ models run without them
        print(f"custom ops not registered: {exc}", file=sys.stderr)
    session = ort.InferenceSession(str(best_model), so, providers=["CPUExecutionProvider"])
    outs = np.concatenate([session.run(None, {name: x[None]})[0] for x in data["eval"]])
    np.save(out / "best_outputs.npy", outs.astype(np.float32))
    values = [t.value for t in study.trials if t.value is not None]
    (out / "result.json").write_text(json.dumps({
        "best_params": best_params, "best_trial": best.number, "best_l2": best.value, "trial_values": values,
        "trials": len(study.trials), "seconds": seconds,
        "versions": {"quark": getattr(quark, "__version__", "?"), "onnx": onnx.__version__,
                     "onnxruntime": ort.__version__, "optuna": optuna.__version__, "numpy": np.__version__},
    }, indent=2))  # fmt: skip


if __name__ == "__main__":
    main()
