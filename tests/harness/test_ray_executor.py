"""The Ray executor on a real local cluster (2 CPUs, one per module, shut down after):
the local pool's contract (results in order, a raising, crashing or hanging job costs
only itself) and the same verdicts as the local pool on the zoo."""

from __future__ import annotations

import os
import sys

import pytest

from portability import api
from portability.errors import UsageError
from portability.harness.executors import LocalPool, get_executor
from portability.harness.workers import WorkerFailure

ray = pytest.importorskip("ray")

import worker_jobs  # tests/ is on sys.path through conftest


@pytest.fixture(scope="module", autouse=True)
def cluster():
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False,
             runtime_env={"env_vars": {"PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}})
    yield
    ray.shutdown()


def test_results_in_order_with_progress():
    started, done = [], []
    results = get_executor("ray").run(worker_jobs.run, [("a", 0), ("b", 0), ("c", 0)], timeout_s=120,
                                      on_start=started.append, on_done=lambda i, v: done.append(i))
    assert [r.split(" ok in ")[0] for r in results] == ["a", "b", "c"]
    assert sorted(started) == sorted(done) == [0, 1, 2]
    assert ray.is_initialized()  # the module's cluster is not ours to stop


def test_a_raising_job_reads_as_in_the_local_pool():
    ray_result = get_executor("ray").run(worker_jobs.run, [("raise", 0), ("ok", 0)], timeout_s=120)
    local_result = LocalPool().run(worker_jobs.run, [("raise", 0), ("ok", 0)], timeout_s=120)
    assert isinstance(ray_result[0], WorkerFailure) and isinstance(local_result[0], WorkerFailure)
    assert ray_result[0].reason == local_result[0].reason == "worker raised ValueError: bad job"
    assert ray_result[1].startswith("ok ok in ")


def test_a_crash_or_a_hang_costs_only_its_job():
    # The budget leaves room for a new worker to start after the crash on a loaded machine.
    results = get_executor("ray").run(worker_jobs.run, [("segfault", 0), ("hang", 300), ("after", 0)],
                                      timeout_s=25)
    assert isinstance(results[0], WorkerFailure) and results[0].reason.startswith("Ray worker lost (")
    assert results[1] == WorkerFailure("timed out after 25 s (Ray task cancelled)")
    assert isinstance(results[2], str) and results[2].startswith("after ok in "), results[2]


def test_unknown_executor_and_cuda_without_ray():
    with pytest.raises(UsageError, match="--executor 'dask': choose one of local, ray"):
        get_executor("dask")
    with pytest.raises(UsageError, match="--device cuda places jobs on nodes with a GPU: it needs --executor ray"):
        get_executor("local", "cuda")
    with pytest.raises(UsageError, match="--device 'tpu': choose one of cpu, cuda"):
        get_executor("ray", "tpu")


@pytest.mark.slow
def test_the_same_verdicts_as_the_local_pool_on_the_zoo():
    routes = "torch->safetensors,torch->onnx,torch->onnx->torch"
    local = api.check(fixture="mlp,cnn", routes=routes, workers=2)
    on_ray = api.check(fixture="mlp,cnn", routes=routes, executor="ray")
    assert [(r.id, r.status, r.reason) for r in on_ray.routes] == [(r.id, r.status, r.reason) for r in local.routes]
    assert [r.status for r in local.routes] == ["pass"] * 6
    for ours, theirs in zip(local.routes, on_ray.routes, strict=True):
        assert [o.max_abs for o in theirs.outputs] == [o.max_abs for o in ours.outputs]
