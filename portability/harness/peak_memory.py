"""Each job's peak memory, for ``benchmarks/scale.py`` (and anyone measuring a check).

With ``PORTABILITY_PEAK_LOG`` set to a file, a worker resets its peak resident
set (Linux: ``/proc/self/clear_refs``) before each route and each reference it
runs, and appends one JSON line after it: ``{"job": "safetensors->onnx",
"start_bytes": ..., "peak_bytes": ..., "seconds": ..., "pid": ...}`` (the resident set when it
started, and its peak). Unset, nothing is measured.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Iterator

LOG_VARIABLE = "PORTABILITY_PEAK_LOG"


def reset_peak() -> bool:
    """Reset this process's peak resident set to its current one; False where the system
    does not allow it."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def peak_bytes() -> int | None:
    """This process's peak resident set since start or the last reset (None: unknown)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


@contextlib.contextmanager
def measured(job: str) -> Iterator[None]:
    """Log the block's peak memory under ``job`` when ``PORTABILITY_PEAK_LOG`` names a file."""
    log = os.environ.get(LOG_VARIABLE)
    if not log or not reset_peak():
        yield
        return
    start, resident = time.perf_counter(), peak_bytes()
    try:
        yield
    finally:
        line = {"job": job, "start_bytes": resident, "peak_bytes": peak_bytes(),
                "seconds": round(time.perf_counter() - start, 3), "pid": os.getpid()}
        with open(log, "a") as f:
            f.write(json.dumps(line) + "\n")
