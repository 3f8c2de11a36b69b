"""Fake ``hailo_sdk_client.model_translator.exceptions`` (dfc_api.md §6).

Class names and module path: ``ParsingWithRecommendationException`` [C/T], ``MisspellNodeError`` and
``UnsupportedModelError`` [T] (IDX-23951800953). The attribute names on the exceptions are guesses [I].
"""

from __future__ import annotations

__all__ = ["MisspellNodeError", "ParsingWithRecommendationException", "UnsupportedModelError"]


class ParsingWithRecommendationException(Exception):
    """Parsing failed; the message lists the errors and recommended end nodes."""

    def __init__(self, message: str, recommended_end_node_names: list[str] | None = None) -> None:
        super().__init__(message)
        self.recommended_end_node_names = list(recommended_end_node_names or [])


class MisspellNodeError(Exception):
    """A start or end node name does not exist in the ONNX graph."""


class UnsupportedModelError(Exception):
    """The model cannot be represented (e.g. a rank-reduced tensor: "1D form is not supported")."""
