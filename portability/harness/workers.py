"""Run jobs in separate worker processes, in parallel, surviving crashes.

Each worker is a fresh Python process (``python -c``, not a fork) that runs jobs one after
another, so a framework imported for one route is reused by the next. A
worker that dies (segfault, out-of-memory kill) or runs past the timeout
costs only the job it was running: that job gets a ``WorkerFailure`` naming
the signal or the timeout, the worker is replaced, and the run goes on.
"""

from __future__ import annotations

import atexit
import logging
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from typing import Any

from portability.limits import ROUTE_TIMEOUT_S

logger = logging.getLogger(__name__)
DEFAULT_TIMEOUT_S = ROUTE_TIMEOUT_S
_THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "TF_NUM_INTRAOP_THREADS",
                "TF_NUM_INTEROP_THREADS")
# glibc serves allocations below its mmap threshold from its heaps, and raises that threshold
# (up to 32 MiB) each time a larger block is freed, so a model's tensors end up in heaps that
# never shrink: a worker kept the reference model's memory while it converted. A fixed 1 MiB
# threshold gives every tensor its own mapping, returned to the system when freed.
_MALLOC_VARS = {"MALLOC_MMAP_THRESHOLD_": str(1 << 20)}


@dataclass
class WorkerFailure:
    """A job whose worker crashed or hung; ``reason`` says which and how."""

    reason: str


def default_workers(jobs: int) -> int:
    """As many workers as cores (this process may use), never more than jobs."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    return max(1, min(cores, jobs))


def serve() -> None:
    """Worker process main loop: read ``(index, job)`` frames from stdin, answer on stdout.

    The first frame is the function to run. Anything the frameworks print goes
    to stderr, so it cannot corrupt the channel; their start-up chatter is
    silenced unless ``PORTABILITY_DEBUG`` is set (``--debug``).
    """
    if not os.environ.get("PORTABILITY_DEBUG"):
        from portability.core.quiet import quiet_frameworks

        quiet_frameworks()
    inbox = Connection(os.dup(0), writable=False)
    outbox = Connection(os.dup(1), readable=False)
    os.dup2(2, 1)
    fn = inbox.recv()
    while True:
        try:
            message = inbox.recv()
        except EOFError:
            _exit_now()
        if message is None:
            _exit_now()
        index, job = message
        try:
            result = fn(job)
        except BaseException as exc:  # reported as the job's failure, the worker lives on
            result = WorkerFailure(f"worker raised {type(exc).__name__}: {exc}")
        release_memory()
        try:
            outbox.send((index, result))
        except Exception as exc:  # an unpicklable result
            outbox.send((index, WorkerFailure(f"result could not be sent back: {type(exc).__name__}: {exc}")))


def release_memory() -> None:
    """Give memory the last job freed back to the system, so the next job (sized by its own
    estimate, ``portability.harness.memory_budget``) starts from the frameworks alone:
    collect reference cycles (traced graphs hold their weights in them), then ask glibc to
    return its free pages (``malloc_trim``; nothing on other C libraries)."""
    import gc

    gc.collect()
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def _exit_now() -> None:
    """End the worker without the interpreter's teardown of the frameworks.

    A worker that had imported torch and TensorFlow took 2 to 4 seconds to exit
    normally, which the check spent waiting after its last result. The exit
    handlers still run (temporary files, weakref finalizers); only the module
    teardown and the libraries' C++ destructors are skipped.
    """
    atexit._run_exitfuncs()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


class _Worker:
    """A ``python -c serve()`` child. Launched afresh (not forked, and without
    re-running the caller's ``__main__``), with the caller's ``sys.path``."""

    def __init__(self, fn, threads: int | None) -> None:
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
        if threads:
            for var in _THREAD_VARS:
                env.setdefault(var, str(threads))
        for var, value in _MALLOC_VARS.items():
            env.setdefault(var, value)
        self.log = tempfile.TemporaryFile()
        self.process = subprocess.Popen(
            [sys.executable, "-c", "from portability.harness.workers import serve; serve()"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.log, env=env)
        stdin, stdout = self.process.stdin, self.process.stdout
        assert stdin is not None and stdout is not None  # both are pipes
        self.outbox = Connection(os.dup(stdin.fileno()), readable=False)
        self.conn = Connection(os.dup(stdout.fileno()), writable=False)
        stdin.close()
        stdout.close()
        self.outbox.send(fn)
        self.index: int | None = None
        self.started = 0.0

    def assign(self, index: int, job: Any) -> None:
        self.index, self.started = index, time.monotonic()
        self.outbox.send((index, job))

    def alive(self) -> bool:
        return self.process.poll() is None

    def ask_to_stop(self, kill: bool = False) -> None:
        """Kill the worker, or ask it to exit (``stop`` then waits for it)."""
        logger.debug("stopping worker pid %s (kill=%s)", self.process.pid, kill)
        if kill and self.alive():
            self.process.kill()
        else:
            try:
                self.outbox.send(None)
            except (OSError, ValueError):
                pass

    def stop(self, kill: bool = False, asked: bool = False) -> None:
        if not asked:
            self.ask_to_stop(kill)
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.outbox.close()
        self.conn.close()
        self.log.close()

    def last_words(self) -> str:
        """The last line the worker wrote to stderr (framework noise is kept out of the terminal)."""
        self.log.flush()
        self.log.seek(0, os.SEEK_END)
        size = self.log.tell()
        self.log.seek(max(0, size - 4096))
        lines = [ln.strip() for ln in self.log.read().decode("utf-8", "replace").splitlines() if ln.strip()]
        return lines[-1][:300] if lines else ""


def describe_exit(exitcode: int | None) -> str:
    """Say how a worker ended, from its exit code (negative: killed by a signal)."""
    if exitcode is None:
        return "worker vanished"
    if exitcode < 0:
        try:
            name = signal.Signals(-exitcode).name
        except ValueError:
            name = f"signal {-exitcode}"
        hint = " (out of memory?)" if name == "SIGKILL" else ""
        return f"worker crashed: killed by {name}{hint}"
    return f"worker exited with status {exitcode}"


def run_parallel(fn: Callable[[Any], Any], jobs: Sequence[Any], *, workers: int | None = None,
                 timeout_s: float | None = DEFAULT_TIMEOUT_S,
                 on_start: Callable[[int], None] | None = None,
                 on_done: Callable[[int, Any], None] | None = None,
                 admits: Callable[[int, list[int]], bool] | None = None) -> list[Any]:
    """Run ``fn(job)`` for every job in worker processes.

    Args:
        fn: a module-level function (it is pickled by reference).
        jobs: picklable job objects.
        workers: process count (default: the cores, at most the job count);
            0 runs in this process, without isolation.
        timeout_s: per job; a job past it has its worker killed.
        on_start / on_done: progress callbacks, by job index.
        admits: ``admits(index, running)``: whether job ``index`` may start while the
            jobs ``running`` run (``memory_budget.MemoryGate.admits``: they must fit in
            memory together). Jobs start in order, a later one when an earlier one does
            not fit yet; a worker left with nothing that fits is stopped, so its memory
            is free; with nothing running, the next job starts whatever it says.

    Returns:
        Per job, in order: ``fn``'s result, or a ``WorkerFailure``.
    """
    results: list[Any] = [None] * len(jobs)
    if workers == 0:
        for i, job in enumerate(jobs):
            on_start and on_start(i)
            results[i] = fn(job)
            on_done and on_done(i, results[i])
        return results
    count = workers or default_workers(len(jobs))
    threads = max(1, default_workers(1 << 16) // count)
    pending = list(range(len(jobs)))
    pool: list[_Worker] = []

    def next_job() -> int | None:
        running = [w.index for w in pool if w.index is not None]
        if not running and pending:
            return pending[0]
        return next((i for i in pending if admits is None or admits(i, running)), None)

    def start(w: _Worker, i: int) -> None:
        pending.remove(i)
        on_start and on_start(i)
        w.assign(i, jobs[i])

    try:
        while pending or any(w.index is not None for w in pool):
            for w in [w for w in pool if w.index is None]:
                chosen = next_job()
                if chosen is not None:
                    start(w, chosen)
                elif pending:  # nothing fits beside what runs: free this worker's memory
                    w.stop()
                    pool.remove(w)
            while len(pool) < count and (chosen := next_job()) is not None:
                pool.append(_Worker(fn, threads))
                start(pool[-1], chosen)
            busy = [w for w in pool if w.index is not None]
            deadline = None if timeout_s is None else min(w.started for w in busy) + timeout_s
            wait_s = None if deadline is None else max(0.0, deadline - time.monotonic())
            wait([w.conn for w in busy], timeout=wait_s)
            for w in list(busy):
                outcome = _poll(w, timeout_s)
                if outcome is None:
                    continue
                index, value, alive = outcome
                results[index] = value
                w.index = None
                on_done and on_done(index, value)
                if not alive:
                    w.stop(kill=True)
                    pool.remove(w)
    finally:
        for w in pool:  # all at once: the workers exit side by side
            w.ask_to_stop(kill=w.index is not None)
        for w in pool:
            w.stop(asked=True)
    return results


def _poll(w: _Worker, timeout_s: float | None) -> tuple[int, Any, bool] | None:
    """(index, result, worker still usable) if the worker's job ended, else None."""
    index = w.index
    assert index is not None, "polled a worker with no job"
    if w.conn.poll():
        try:
            got_index, value = w.conn.recv()
            return got_index, value, True
        except (EOFError, OSError):
            pass
        if w.alive():  # the channel closed but the process lingers: wait for its exit
            try:
                w.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
    if not w.alive() or w.conn.closed:
        try:
            code = w.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            w.process.kill()
            code = w.process.wait()
        words = w.last_words()
        return index, WorkerFailure(describe_exit(code) + (f"; last output: {words}" if words else "")), False
    if timeout_s is not None and time.monotonic() - w.started > timeout_s:
        return index, WorkerFailure(f"timed out after {timeout_s:g} s (worker killed)"), False
    return None
