"""The memory bound of the ONNX Runtime measurement: which tensors one pair of sessions exposes at a time.

Exposing every activation as a graph output makes a session hold all of them at once; :func:`_chunks` cuts the
compared tensors into consecutive groups of at most ``_CHUNK`` tensors and ``_CHUNK_BYTES`` bytes, one pair of
float/QDQ sessions per group (:func:`harness.layer_noise._ort._measure`). No number depends on the cut.
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["_CHUNK", "_CHUNK_BYTES", "_chunks"]

_CHUNK = 256  # tensors exposed per session at most
#: Bytes of the float tensors exposed per session at most (the QDQ session exposes as many): a paper-size
#: Conv-TasNet at W=16000 has 639 compared tensors of 4 MB, which 256 at a time held 2.1 GiB (bench/worker_rss.py).
_CHUNK_BYTES = 512 * 2**20


def _chunks(sizes: Sequence[int | None], max_tensors: int, max_bytes: int) -> list[tuple[int, int]]:
    """Consecutive ``[start, end)`` groups of tensors, each at most ``max_tensors`` long and at most ``max_bytes``
    in total unless a single tensor is larger (it then goes alone). An unknown size (None) counts as the largest
    known one."""
    known = [s for s in sizes if s is not None]
    largest = max(known, default=0)
    groups: list[tuple[int, int]] = []
    start, total = 0, 0
    for i, size in enumerate(sizes):
        b = largest if size is None else size
        if i > start and (i - start >= max(max_tensors, 1) or total + b > max_bytes):
            groups.append((start, i))
            start, total = i, 0
        total += b
    if start < len(sizes):
        groups.append((start, len(sizes)))
    return groups
