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


def slow_teardown(marker: str) -> str:
    """Registers an exit handler that writes ``marker``, and starts a thread that a
    normal interpreter exit would wait 30 s for (a stand-in for a framework's teardown)."""
    import atexit
    import threading

    atexit.register(lambda: open(marker, "w").write("exit handlers ran"))
    threading.Thread(target=time.sleep, args=(30,), daemon=False).start()
    return f"registered in {os.getpid()}"
