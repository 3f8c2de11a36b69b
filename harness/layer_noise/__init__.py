"""Per-layer quantization noise: where in the network a quantized model loses its fidelity.

ONNX Runtime (``ort`` backend): every activation tensor of the float ONNX model is compared with the same tensor
of the QDQ model, run on the same inputs. In a QDQ graph a tensor ``T`` is quantized as
``T -> QuantizeLinear -> DequantizeLinear -> T_DequantizeLinear_Output`` (a graph output ``O`` is produced as
``O_QuantizeLinear_Input -> Q -> DQ -> O``); the *dequantized* value is what the next layer sees, so it is the
one compared. A tensor that the quantizer left in float (e.g. the Pow/Sqrt of a gLN) is compared under its own
name: its error is what its dequantized inputs carried into it. Both graphs run with ONNX Runtime's graph
optimizations off, i.e. with the QDQ model's fake-quant semantics, not ORT's fused QLinear kernels; the final
output's SQNR is therefore close to, not identical with, what the trial's emulation measured.

    SQNR(T) = 10 log10( sum(ref_T^2) / sum((ref_T - q_T)^2) )   [dB], summed over all inputs

``inf`` means the two tensors are identical. Rows come sorted worst first.

Hailo (``hailo`` backend): the DFC's own layer noise analysis, read from the runner's params statistics right after
``optimize()`` (``layer_noise_analysis/snr`` of an advanced ``analyze_noise`` run, else ``partial_snr`` of the simple
analysis optimize runs at optimization level >= 1; ``../shared/dfc_api.md`` section 5.3, the layout HACE's
``high_precision_inspector.py`` reads). Where the DFC recorded none, the report says "not available" and why. Tested
against the fake DFC only, whose numbers are its own simulation.

Pipeline use (after emulate; the stage's folder gets ``layer_noise.json``, ``.csv`` and ``.png``)::

    noise_stage(backend, float_onnx, optimized_path, inputs, workdir) -> dict   # the stage's cache meta

What lives where (import from ``harness.layer_noise``; the modules are private):

- ``_report.py``: the report -- :class:`Row`, :class:`NoiseReport` (``to_dict`` / ``from_dict`` / ``summary``), ``FILES``,
  ``SENSITIVE_DB``, and its files: :func:`write_noise` (``layer_noise.json``, ``.csv``, the matplotlib ``.png``),
  :func:`read_noise`.
- ``_ort.py``: the ONNX Runtime measurement -- the compare plan (``_plan``: activation tensors, their QDQ
  counterparts, the skipped ones; ``_tensor_info`` shape inference), the sessions, SQNR summed over the inputs
  (``_measure``), :func:`layer_noise` (rows) and :func:`noise_report` (a report).
- ``_chunks.py``: the measurement's memory bound -- ``_chunks`` cuts the exposed tensors into groups of at most
  ``_CHUNK`` tensors / ``_CHUNK_BYTES`` bytes, one pair of sessions per group.
- ``_hailo.py``: :func:`hailo_noise_report`, the DFC's own table read from the optimize stage's
  ``dfc_layer_noise.json`` (written by :mod:`harness.backends.hailo`; this side never loads the SDK).
- ``_stage.py``: the pipeline's noise stage, :func:`noise_stage`, and its cache-key version ``NOISE_VERSION``.
- ``_run.py``: :func:`load_run_noise`, a trial run's table for ``hefsweep diff`` (logged, or computed from its
  logged models and evaluation set).
- ``_diff.py``: :func:`diff_noise` -> :class:`NoiseDiff` / :class:`DiffRow`, two tables joined on tensor name.

All of it runs on the harness side (the noise stage's worker uses the harness's own interpreter), not in
:data:`harness.WORKER_SIDE`.
"""

from __future__ import annotations

# Private names (and SENSITIVE_DB) are re-exported too: tests/unit/test_layer_noise_memory.py imports them from here.
from harness.layer_noise._chunks import _CHUNK, _CHUNK_BYTES, _chunks
from harness.layer_noise._diff import DiffRow, NoiseDiff, diff_noise
from harness.layer_noise._hailo import hailo_noise_report
from harness.layer_noise._ort import _measure, _plan, _tensor_info, layer_noise, noise_report
from harness.layer_noise._report import FILES, SENSITIVE_DB, NoiseReport, Row, read_noise, write_noise
from harness.layer_noise._run import load_run_noise
from harness.layer_noise._stage import NOISE_VERSION, noise_stage

__all__ = [
    "FILES",
    "NOISE_VERSION",
    "DiffRow",
    "NoiseDiff",
    "NoiseReport",
    "Row",
    "diff_noise",
    "hailo_noise_report",
    "layer_noise",
    "load_run_noise",
    "noise_report",
    "noise_stage",
    "read_noise",
    "write_noise",
]
