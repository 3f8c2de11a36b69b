"""ONNX models for the ONNX-model tests (harness.onnx_model), built in the test, nothing downloaded.

- :func:`asteroid_onnx`: asteroid's own ``ConvTasNet`` (3-D, Conv1d) with the demo checkpoint's weights, exported by
  ``torch.onnx.export`` with a ``[1, 1, T]`` or ``[1, T]`` input, optionally with a dynamic time axis.
- :func:`real_structure_onnx`: ``../shared/real_dfc/convtas_hailo_ready.onnx`` (the real team's 4-D dynamo export,
  structure only) with seeded synthetic initializers of the declared shapes (``zeros_like*`` constants zero, as
  in the export).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
DEMO_CHECKPOINT = ROOT / "assets" / "demo_convtasnet.pt"
REAL_ONNX = ROOT.parent / "shared" / "real_dfc" / "convtas_hailo_ready.onnx"


def asteroid_model() -> object:
    """asteroid's ConvTasNet with the demo checkpoint's model_args and weights, in eval mode."""
    import torch
    from asteroid.models import ConvTasNet

    package = torch.load(DEMO_CHECKPOINT, map_location="cpu", weights_only=False)
    model = ConvTasNet(**package["model_args"])
    model.load_state_dict(package["state_dict"])
    return model.eval()


def asteroid_onnx(path: Path, *, width: int = 4000, dynamic: bool = False, rank: int = 3) -> Path:
    """Export :func:`asteroid_model` to ``path`` with input ``[1, 1, width]`` (rank 3) or ``[1, width]`` (rank 2)."""
    import warnings

    import torch

    model = asteroid_model()
    x = torch.zeros((1, 1, width) if rank == 3 else (1, width))
    axes = {"input": {rank - 1: "T"}, "output": {2: "T"}} if dynamic else None
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (x,), str(path), dynamo=False, opset_version=17, input_names=["input"],
                          output_names=["output"], dynamic_axes=axes)  # fmt: skip
    return path


def real_structure_onnx(path: Path, seed: int = 0) -> Path:
    """The real export's graph with synthetic weights (small, seeded) written as one file to ``path``."""
    import onnx
    from onnx import numpy_helper

    proto = onnx.load(str(REAL_ONNX), load_external_data=False)
    rng = np.random.default_rng(seed)
    for tensor in proto.graph.initializer:
        if tensor.data_location != onnx.TensorProto.EXTERNAL:
            continue
        dims = list(tensor.dims)
        if tensor.name.startswith("zeros_like"):
            arr = np.zeros(dims)
        elif len(dims) == 1:  # biases
            arr = 0.05 * rng.standard_normal(dims)
        else:  # conv weights and norm gains: 1/sqrt(fan-in) scale
            arr = rng.standard_normal(dims) / np.sqrt(max(int(np.prod(dims[1:])), 1))
        tensor.CopyFrom(numpy_helper.from_array(arr.astype(np.float32), tensor.name))
    onnx.save(proto, str(path))
    return path
