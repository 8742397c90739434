"""How fast a worker pool lets go of workers whose interpreter exit would hang.

Each worker of ``run_parallel`` runs a job that registers an exit handler and starts a
non-daemon thread sleeping 30 s (a stand-in for a framework's teardown); a normal
interpreter exit would wait for that thread. The pool must exit its workers at once with
their exit handlers run. Measured against a baseline in the same run: the same pool on
jobs that start no thread.

Usage: python benchmarks/workers.py [--workers 2] [--repeat 3]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # worker_jobs

THREAD_S = 30  # what worker_jobs.slow_teardown's thread would hold a normal exit for


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    """Print the pool's time with hanging teardowns, the baseline, and their ratio."""
    import worker_jobs

    from portability.harness.workers import run_parallel

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=3)
    opts = parser.parse_args(argv)
    baseline, teardown = [], []
    for _ in range(opts.repeat):
        jobs = [("ok", 0.0)] * opts.workers
        baseline.append(timed(lambda jobs=jobs: run_parallel(worker_jobs.run, jobs, workers=opts.workers)))
        with tempfile.TemporaryDirectory() as tmp:
            markers = [str(Path(tmp) / f"marker{i}") for i in range(opts.workers)]
            teardown.append(timed(lambda markers=markers: run_parallel(worker_jobs.slow_teardown, markers,
                                                                       workers=opts.workers)))
            ran = sum(Path(m).exists() and Path(m).read_text() == "exit handlers ran" for m in markers)
        if ran != opts.workers:
            print(f"exit handlers ran in {ran} of {opts.workers} workers")
            return 1
    base, slow = min(baseline), min(teardown)
    print(f"pool of {opts.workers}, best of {opts.repeat}: trivial jobs {base:.2f} s; jobs leaving a "
          f"{THREAD_S} s non-daemon thread {slow:.2f} s ({slow / base:.2f}x the baseline)")
    print(f"a normal exit would wait {THREAD_S} s: {'met' if slow < THREAD_S / 2 else 'NOT met'} "
          f"(target: under half of it)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
