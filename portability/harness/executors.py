"""Where the check's jobs run: the local process pool (default) or a Ray cluster.

Both take a module-level function and picklable jobs and give back, per job in
order, the function's result or a ``WorkerFailure`` (a crashed, hung or lost
worker costs only its job), with the same progress callbacks, so the check's
verdicts do not depend on the executor.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Protocol

from portability.errors import UsageError
from portability.harness.workers import DEFAULT_TIMEOUT_S, run_parallel

EXECUTORS = ("local", "ray")
DEVICES = ("cpu", "cuda")


class Executor(Protocol):
    """Runs ``fn(job)`` for every job (see ``workers.run_parallel`` for the contract;
    ``admits`` gates jobs by this machine's memory and disk, which only the local pool uses)."""

    name: str

    def run(self, fn: Callable[[Any], Any], jobs: Sequence[Any], *, workers: int | None = None,
            timeout_s: float | None = DEFAULT_TIMEOUT_S, on_start: Callable[[int], None] | None = None,
            on_done: Callable[[int, Any], None] | None = None,
            admits: Callable[[int, list[int]], bool] | None = None) -> list[Any]:
        ...


class LocalPool:
    """Fresh worker processes on this machine (``workers.run_parallel``)."""

    name = "local"

    def run(self, fn: Callable[[Any], Any], jobs: Sequence[Any], *, workers: int | None = None,
            timeout_s: float | None = DEFAULT_TIMEOUT_S, on_start: Callable[[int], None] | None = None,
            on_done: Callable[[int, Any], None] | None = None,
            admits: Callable[[int, list[int]], bool] | None = None) -> list[Any]:
        return run_parallel(fn, jobs, workers=workers, timeout_s=timeout_s, on_start=on_start, on_done=on_done,
                            admits=admits)


def get_executor(name: str | None = None, device: str | None = None) -> Executor:
    """The executor called ``name`` (default ``local``).

    Args:
        name: ``local`` or ``ray``.
        device: ``cpu`` (default) or ``cuda``: each job is placed where that device is
            (Ray only: ``num_gpus=1`` per job).

    Raises:
        UsageError: an unknown executor or device, or ``cuda`` without Ray.
        MissingDependencyError: ``ray`` without the ``ray`` package.
    """
    name = name or "local"
    if name not in EXECUTORS:
        raise UsageError(f"--executor {name!r}: choose one of {', '.join(EXECUTORS)}")
    if device is not None and device not in DEVICES:
        raise UsageError(f"--device {device!r}: choose one of {', '.join(DEVICES)}")
    if name == "local":
        if device == "cuda":
            raise UsageError("--device cuda places jobs on nodes with a GPU: it needs --executor ray")
        return LocalPool()
    from portability.harness.ray_executor import RayExecutor

    return RayExecutor(gpus=1.0 if device == "cuda" else 0.0)
