"""Jobs for the worker-pool tests: each runs in a worker process."""

from __future__ import annotations

import os
import signal
import sys
import time


def run(job: tuple[str, float]) -> str:
    kind, value = job
    if kind == "segfault":
        print("about to crash", file=sys.stderr, flush=True)
        os.kill(os.getpid(), signal.SIGSEGV)
    if kind == "hang":
        time.sleep(value)
    if kind == "raise":
        raise ValueError("bad job")
    return f"{kind} ok in {os.getpid()}"
