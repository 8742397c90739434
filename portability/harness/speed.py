"""What an artifact costs: its inference time against its source's, and its bytes on disk.

Both figures inform; no verdict depends on them. The time is the fastest of a
few calls on the drift batch after the call that produced the judged outputs
(which warms the runtime up), in the worker that judges the route; the source
is timed the same way when the reference runs, on the same inputs.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

# Timed calls after the warm-up call, and the time they may take together (a slow
# model is timed on fewer calls, at least one).
TIMED_CALLS = 3
TIMING_BUDGET_S = 5.0


def best_call_s(predict: Callable[[Any], Any], feed: Any, calls: int = TIMED_CALLS,
                budget_s: float = TIMING_BUDGET_S) -> float:
    """The fastest of up to ``calls`` calls of ``predict(feed)``, in seconds; stops once
    the calls made have taken ``budget_s`` together."""
    best = float("inf")
    spent = 0.0
    for _ in range(max(1, calls)):
        start = time.perf_counter()
        predict(feed)
        took = time.perf_counter() - start
        best, spent = min(best, took), spent + took
        if spent >= budget_s:
            break
    return best


def speed_ratio(candidate_s: float | None, source_s: float | None) -> float | None:
    """The candidate's time over the source's (2.0: twice as slow); None when either is missing."""
    if candidate_s is None or source_s is None or source_s <= 0:
        return None
    return candidate_s / source_s


def artifact_bytes(path: str | Path) -> int | None:
    """Bytes of an artifact: the file's size, or the total of a directory's files (links
    not followed); None when nothing is there."""
    path = Path(path)
    if path.is_file():
        return path.stat().st_size
    if not path.is_dir():
        return None
    total = 0
    for root, _, files in os.walk(path):
        for name in files:
            file = Path(root) / name
            if not file.is_symlink():
                total += file.stat().st_size
    return total
