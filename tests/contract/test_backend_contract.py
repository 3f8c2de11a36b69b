"""One contract suite, run against every backend: ONNX Runtime for real, Hailo through the fake DFC, and Hailo
against a real DFC when one is installed (skipped otherwise).

A backend passes when it lists the input among its translated layers, produces a deployable artifact and
``[n, n_src, 1, W]`` finite outputs that track the float model, and rejects an override naming an absent layer
with ``OverrideTargetNotFound`` before writing anything.
"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from harness.backends import Backend, Override, OverrideSet, OverrideTargetNotFound, QuantSettings, get_backend
from harness.backends._ort import run_onnx
from harness.metrics import si_snr

FAKES = Path(__file__).resolve().parents[1] / "fakes"
W = 1024


def _real_dfc_installed() -> bool:
    spec = importlib.util.find_spec("hailo_sdk_client")
    return spec is not None and spec.origin is not None and FAKES not in Path(spec.origin).resolve().parents


@pytest.fixture(scope="module")
def model(tiny_checkpoint: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny Conv-TasNet with channel-wise LN (the seed's working substitution) and the per-source head (the real
    DFC compiles neither a grouped decoder nor ``cat([w] * n_src)`` before the mask multiply) exported at W."""
    from harness.export import export_onnx
    from harness.model import load_checkpoint
    from harness.substitutions import SubstitutionSpec, apply_substitutions

    net, _ = apply_substitutions(load_checkpoint(tiny_checkpoint), SubstitutionSpec(norm="cLN", decoder="per_source", mask_mul="per_source"))
    path = tmp_path_factory.mktemp("contract") / "model.onnx"
    export_onnx(net, W, path)
    return path


@pytest.fixture(scope="module")
def data() -> tuple[np.ndarray, np.ndarray]:
    from harness.audio import synth_mixture

    rng = np.random.default_rng(7)
    calib = np.stack([synth_mixture(rng, W, 16000)[0] for _ in range(8)])[:, None, None, :]
    evals = np.stack([synth_mixture(rng, W, 16000)[0] for _ in range(2)])[:, None, None, :]
    return calib.astype(np.float32), evals.astype(np.float32)


class BackendContract:
    """The contract. Subclasses provide the ``backend`` fixture (and may tighten :attr:`min_si_snr_db`)."""

    #: Emulated outputs must reach this SI-SNR (dB) against the float model on held-out clips.
    min_si_snr_db = 10.0

    @pytest.fixture
    def backend(self) -> Iterator[Backend]:
        raise NotImplementedError

    def test_is_a_backend_with_string_versions(self, backend: Backend) -> None:
        assert isinstance(backend, Backend) and backend.name
        versions = backend.versions()
        assert versions and all(isinstance(k, str) and isinstance(v, str) for k, v in versions.items())

    def test_translate_lists_layers_including_the_input(self, backend: Backend, model: Path, tmp_path: Path) -> None:
        tr = backend.translate(model, tmp_path / "t")
        assert tr.width == W and tr.path.is_file() and tr.path.is_relative_to(tmp_path / "t")
        assert tr.input_name in tr.layers and len(tr.layers) > 10

    def test_optimize_compile_emulate_track_the_float_model(
        self, backend: Backend, model: Path, data: tuple[np.ndarray, np.ndarray], tmp_path: Path
    ) -> None:
        calib, evals = data
        tr = backend.translate(model, tmp_path / "t")
        opt = backend.optimize(tr, calib, OverrideSet("none"), QuantSettings(), tmp_path / "o")
        assert opt.path.is_file() and opt.path.is_relative_to(tmp_path / "o")
        comp = backend.compile(opt, tmp_path / "c")
        assert comp.path.is_file() and comp.path.stat().st_size > 0 and comp.path.is_relative_to(tmp_path / "c")
        out = backend.emulate(opt, evals)
        ref = run_onnx(model, evals)
        assert ref.shape == (len(evals), 2, 1, W) and out.shape[:3] == ref.shape[:3]
        # W' <= W: the DFC's deconv gives F*stride samples, up to kernel - stride (16 - 8) fewer than the ONNX
        assert 0 <= W - out.shape[3] <= 8
        assert out.dtype == np.float32 and np.isfinite(out).all()
        if out.shape[3] != W:
            from types import SimpleNamespace

            from harness.pipeline import apply_alignment, output_alignment

            alignment = output_alignment(out, ref, SimpleNamespace(kernel_size=16, stride=8))
            assert alignment["offset"] == 0 and alignment["correlation"] > 0.9, alignment
            out = apply_alignment(out, alignment, W)
        assert float(si_snr(out[:, :, 0], ref[:, :, 0]).mean()) >= self.min_si_snr_db

    def test_absent_override_target_fails_before_anything_is_written(
        self, backend: Backend, model: Path, data: tuple[np.ndarray, np.ndarray], tmp_path: Path
    ) -> None:
        tr = backend.translate(model, tmp_path / "t")
        bad = OverrideSet("bad", (Override("precision16", ("no_such_layer_42",)),))
        with pytest.raises(OverrideTargetNotFound):
            backend.optimize(tr, data[0], bad, QuantSettings(), tmp_path / "o")
        assert not (tmp_path / "o").exists() or not any((tmp_path / "o").iterdir())


class TestOrtBackend(BackendContract):
    @pytest.fixture
    def backend(self) -> Iterator[Backend]:
        yield get_backend("ort")


class TestHailoBackendOnFakeDfc(BackendContract):
    @pytest.fixture
    def backend(self, monkeypatch: pytest.MonkeyPatch) -> Iterator[Backend]:
        monkeypatch.syspath_prepend(str(FAKES))
        yield get_backend("hailo", hw_arch="hailo8")
        for name, mod in list(sys.modules.items()):
            if str(getattr(mod, "__file__", "") or "").startswith(str(FAKES)):
                del sys.modules[name]


@pytest.mark.hailo
@pytest.mark.skipif(not _real_dfc_installed(), reason="needs the real Hailo DFC (hailo_sdk_client) installed")
class TestHailoBackendOnRealDfc(BackendContract):
    """The same contract against the installed DFC (runs only where ``hailo_sdk_client`` is the real package)."""

    @pytest.fixture
    def backend(self) -> Iterator[Backend]:
        yield get_backend("hailo", hw_arch="hailo8")
