"""harness/_worker.py: each call reports its own peak RSS, not the reused worker's lifetime peak."""

from __future__ import annotations

from harness.isolation import Worker


def test_peak_rss_is_the_calls_own() -> None:
    worker = Worker()
    try:
        big = worker.call("builtins:exec", "x = b'a' * 300_000_000; del x", timeout=60)  # ~286 MiB touched, then freed
        small = worker.call("builtins:exec", "y = 1", timeout=60)  # the same worker, next call
    finally:
        worker.close()
    assert big.peak_rss_mb > 280
    assert small.peak_rss_mb < big.peak_rss_mb - 200, (big.peak_rss_mb, small.peak_rss_mb)
