"""The trial's shared inputs, loaded once per process: the float model (or a trial's resized one), the
evaluation sets, the backend's versions and interpreter, the calibration files; and the check of those inputs
before any trial. Mixed into :class:`~harness.pipeline.Pipeline`."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness.cache import file_sha256
from harness.pipeline._keys import _candidates

if TYPE_CHECKING:
    from harness.pipeline._trial import TrialConfig
    from harness.space import SearchSpace


class _Inputs:
    """The shared inputs of :class:`~harness.pipeline.Pipeline` (its ``__init__`` sets the attributes)."""

    space: SearchSpace
    _model: Any
    _resized: dict[tuple[Any, ...], tuple[Any, dict[str, Any]]]
    _eval: dict[int, Any]
    _versions: dict[str, str] | None
    _python: str | None

    @property
    def model(self) -> Any:
        """The float model from the checkpoint (loaded on first use); with ``model.onnx``, the user's ONNX
        (:class:`harness.onnx_model.OnnxModel`)."""
        if self._model is None and self.space.model is not None:
            from harness.onnx_model import OnnxModel

            self._model = OnnxModel(self.space.model.onnx, self.space.model.sample_rate, self._first_width())
        if self._model is None:
            from harness.model import load_checkpoint

            self._model = load_checkpoint(self.space.checkpoint)
        return self._model

    def _model_sha(self) -> str:
        """The model file's sha256 (for an ONNX model with the conversion's version: part of the stage keys)."""
        sha = file_sha256(self.space.model_file)
        if self.space.model is None:
            return sha
        from harness.onnx_model import ONNX_MODEL_VERSION

        return f"{sha}:onnx_model{ONNX_MODEL_VERSION}"

    def trial_model(self, cfg: TrialConfig) -> tuple[Any, dict[str, Any] | None]:
        """The model a trial exports: the checkpoint's, or (capacity values set and different from the checkpoint's,
        ``mode: frontier``) the resized one of :func:`harness.model.resize_model` with its provenance (memoized)."""
        from harness.model import CAPACITY_DIMS, changed_values, resize_model

        if self.space.model is not None:  # an ONNX model: capacity dimensions are refused at space load
            return self.model, None
        changed = changed_values(self.model.config, {k: getattr(cfg, k) for k in CAPACITY_DIMS})
        if not changed:
            return self.model, None
        key = tuple(changed.items())
        if key not in self._resized:
            resized = resize_model(self.model, changed)
            self._resized = {key: (resized.model, {"changed": changed, **resized.info(), "needs_retraining": True})}
        model, info = self._resized[key]
        return model, dict(info)

    @property
    def sample_rate(self) -> int:
        """The model's sample rate (audio must match it)."""
        rate = self.model.config.sample_rate
        if rate is None:
            from harness.errors import CheckpointError

            raise CheckpointError(
                self.space.checkpoint, "model_args.sample_rate is None", "the sample rate the model was trained at"
            )
        return int(rate)

    def eval_set(self, width: int) -> Any:
        """The evaluation mixtures (and clean sources) fitted to ``width``."""
        if width not in self._eval:
            from harness.audio import load_eval_set

            self._eval[width] = load_eval_set(
                self.space.data.evaluation,
                sample_rate=self.sample_rate,
                width=width,
                n_src=self.model.config.n_src,
                limit=self.space.data.eval_clips,
            )
        return self._eval[width]

    def backend_versions(self) -> dict[str, str]:
        """Versions of the backend's runtime (part of every backend stage's key), asked of the interpreter that runs
        the backend's stages (for Hailo: the DFC environment's, probed once; a bad ``python`` is a one-line error)."""
        if self._versions is None:
            self._versions = self.space.backend_spec().versions()
        return self._versions

    def stage_python(self) -> str:
        """The interpreter of the backend's isolated stages (resolved once)."""
        if self._python is None:
            self._python = self.space.backend_spec().interpreter()
        return self._python

    def validate_inputs(self) -> None:
        """Check checkpoint and audio once before any trial (bad input -> HarnessError, exit 1)."""
        from harness.audio import build_calibration_set, list_audio, read_audio

        if self.space.model is not None:  # an ONNX model: convertible at every width the space names
            self.model.check_widths(_candidates(self.space.dimensions.width))
        _ = self.model
        files = list_audio(self.space.data.calibration)
        for f in files:
            read_audio(f, self.sample_rate)
        width = self._first_width()
        self.eval_set(width)
        need = self.space.data.min_calibration_clips
        audio_log = logging.getLogger("harness.audio")
        level = audio_log.level
        audio_log.setLevel(logging.ERROR)  # W-mismatch warnings belong to trials, not to this check
        try:
            for clip_length in _candidates(self.space.dimensions.calib_clip_length):
                build_calibration_set(
                self.space.data.calibration,
                    sample_rate=self.sample_rate,
                    width=width,
                    clip_length=clip_length,
                    policy="pad",
                    size=need,
                    min_clips=need,
                )
        finally:
            audio_log.setLevel(level)

    def _first_width(self) -> int:
        return int(_candidates(self.space.dimensions.width)[0])


    def _calibration_files(self) -> tuple[list[Path], list[list[str]]]:
        """The calibration folder's audio files and their ``[name, sha256]`` pairs (what keys the stages built from
        them; hashes are memoized per process)."""
        from harness.audio import list_audio

        files = list_audio(self.space.data.calibration)
        return files, [[f.name, file_sha256(f)] for f in files]
