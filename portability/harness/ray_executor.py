"""Run the check's jobs as Ray tasks, on a local embedded cluster or a running one.

With ``RAY_ADDRESS`` unset, a local cluster is started for the run, sized to this
machine's cores, and shut down after it. With ``RAY_ADDRESS`` set, the run joins
that cluster (``ray start --head`` on one host, ``ray start --address`` on the
others) and leaves it running. A process that already called ``ray.init`` keeps
its own cluster. ``ray.init()`` without an address would attach to a cluster some
earlier ``ray start`` left behind, so the address is always passed explicitly.

A job is the same bundle the local pool runs (the routes sharing one conversion,
with their environment rows); it goes to a task with one CPU, or one GPU with
``--device cuda``, and gives back its plain results. A task whose worker died, or
that ran past the timeout (it is cancelled), is a ``WorkerFailure`` like a crashed
local worker. Every node needs this package installed; deployment environments are
built on the node that runs the job, in its own cache.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

from portability.errors import MissingDependencyError
from portability.harness.workers import DEFAULT_TIMEOUT_S, WorkerFailure, default_workers

logger = logging.getLogger(__name__)
_FORWARDED = ("PORTABILITY_CACHE", "PORTABILITY_DEBUG", "TF_CPP_MIN_LOG_LEVEL")


def _call(fn: Callable[[Any], Any], job: Any) -> Any:
    """The task body: quiet the frameworks as the local workers do, then run the job."""
    if not os.environ.get("PORTABILITY_DEBUG"):
        from portability.core.quiet import quiet_frameworks

        quiet_frameworks()
    return fn(job)


def _ray():
    try:
        import ray
    except ImportError as exc:
        raise MissingDependencyError("--executor ray needs Ray: pip install 'portability[ray]'") from exc
    return ray


def connect() -> bool:
    """Attach to (or start) the cluster; True when this call started it (and must stop it)."""
    ray = _ray()
    if ray.is_initialized():
        return False
    address = os.environ.get("RAY_ADDRESS")
    env_vars = {k: os.environ[k] for k in _FORWARDED if k in os.environ}
    quiet = {} if os.environ.get("PORTABILITY_DEBUG") else {"logging_level": logging.ERROR, "log_to_driver": False}
    if address:
        ray.init(address=address, runtime_env={"env_vars": env_vars}, **quiet)
    else:
        env_vars["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
        ray.init(address="local", num_cpus=default_workers(1 << 16), include_dashboard=False,
                 runtime_env={"env_vars": env_vars}, **quiet)
    return True


class RayExecutor:
    """Runs each job as a Ray task (see the module docstring).

    Args:
        gpus: GPUs each task asks for (1 places it on a node that has one).
    """

    name = "ray"

    def __init__(self, gpus: float = 0.0) -> None:
        self.gpus = gpus

    def run(self, fn: Callable[[Any], Any], jobs: Sequence[Any], *, workers: int | None = None,
            timeout_s: float | None = DEFAULT_TIMEOUT_S, on_start: Callable[[int], None] | None = None,
            on_done: Callable[[int, Any], None] | None = None,
            admits: Callable[[int, list[int]], bool] | None = None) -> list[Any]:
        """Run ``fn(job)`` for every job as a task; ``workers`` caps the tasks in flight.
        ``admits`` (this machine's memory gate) is not used: Ray places tasks by its nodes' resources.

        Returns:
            Per job, in order: ``fn``'s result, or a ``WorkerFailure``.
        """
        ray = _ray()
        started = connect()
        try:
            return self._run(ray, fn, jobs, workers, timeout_s, on_start, on_done)
        finally:
            if started:
                ray.shutdown()

    def _run(self, ray, fn, jobs, workers, timeout_s, on_start, on_done) -> list[Any]:
        task = ray.remote(num_cpus=1, num_gpus=self.gpus, max_retries=0)(_call)
        limit = workers or max(1, int(ray.cluster_resources().get("CPU", 1)))
        results: list[Any] = [None] * len(jobs)
        pending = list(range(len(jobs)))
        running: dict[Any, tuple[int, float]] = {}
        fn_ref = ray.put(fn)
        while pending or running:
            while pending and len(running) < limit:
                i = pending.pop(0)
                on_start and on_start(i)
                running[task.remote(fn_ref, jobs[i])] = (i, time.monotonic())
            wait_s = None
            if timeout_s is not None:
                wait_s = max(0.0, min(t for _, t in running.values()) + timeout_s - time.monotonic())
            done, _ = ray.wait(list(running), num_returns=1, timeout=wait_s)
            for ref in done:
                i, _ = running.pop(ref)
                results[i] = self._outcome(ray, ref)
                on_done and on_done(i, results[i])
            now = time.monotonic()
            for ref, (i, began) in list(running.items()):
                if timeout_s is not None and now - began > timeout_s:
                    ray.cancel(ref, force=True)
                    running.pop(ref)
                    results[i] = WorkerFailure(f"timed out after {timeout_s:g} s (Ray task cancelled)")
                    on_done and on_done(i, results[i])
        return results

    @staticmethod
    def _outcome(ray, ref) -> Any:
        try:
            return ray.get(ref)
        except ray.exceptions.RayTaskError as exc:  # fn raised: as a local worker reports it
            cause = exc.cause if getattr(exc, "cause", None) is not None else exc
            return WorkerFailure(f"worker raised {type(cause).__name__}: {str(cause).splitlines()[0][:300]}")
        except ray.exceptions.RayError as exc:  # the worker died or the node was lost
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            return WorkerFailure(f"Ray worker lost ({type(exc).__name__}): {first[:300]}")
