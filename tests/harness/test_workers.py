"""Isolation: routes run in worker processes; a crash or hang costs only its own route."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import toy_models
import worker_jobs

from portability.api import check
from portability.harness.workers import WorkerFailure, describe_exit, run_parallel


@pytest.mark.slow
def test_a_segfault_a_hang_and_an_exception_each_cost_only_their_job():
    jobs = [("ok", 0), ("segfault", 0), ("ok", 0), ("hang", 600), ("raise", 0), ("ok", 0)]
    started, done = [], []
    results = run_parallel(worker_jobs.run, jobs, workers=2, timeout_s=10,
                           on_start=started.append, on_done=lambda i, r: done.append(i))
    assert sorted(started) == sorted(done) == list(range(len(jobs)))
    for i in (0, 2, 5):
        assert results[i].startswith("ok ok in ")
    assert isinstance(results[1], WorkerFailure)
    assert results[1].reason.startswith("worker crashed: killed by SIGSEGV")
    assert "last output: about to crash" in results[1].reason
    assert results[3] == WorkerFailure("timed out after 10 s (worker killed)")
    assert results[4] == WorkerFailure("worker raised ValueError: bad job")
    # the pool reuses workers: fewer distinct processes than jobs
    assert len({r.split()[-1] for r in results if isinstance(r, str)}) <= 3


def test_describe_exit_names_the_signal():
    assert describe_exit(-11) == "worker crashed: killed by SIGSEGV"
    assert describe_exit(-9) == "worker crashed: killed by SIGKILL (out of memory?)"
    assert describe_exit(3) == "worker exited with status 3"


@pytest.mark.slow
def test_a_route_whose_runtime_crashes_is_reported_and_the_run_completes(tmp_path):
    ckpt = tmp_path / "toy.pt"
    torch.save(toy_models.mlp().state_dict(), ckpt)
    inputs = tmp_path / "inputs.npz"
    np.savez(inputs, **toy_models.inputs())
    report = check(ckpt, model="toy_models:crashing", inputs=inputs, formats="torch,safetensors", workers=1,
                   timeout_s=120)
    assert [r.status for r in report.routes] == ["error", "error"]
    assert all(r.reason.startswith("worker crashed: killed by SIGSEGV") for r in report.routes)
    assert not report and report.exit_code() == 1


def test_workers_exit_at_once_with_their_exit_handlers_run(tmp_path):
    markers = [str(tmp_path / f"marker{i}") for i in range(2)]
    results = run_parallel(worker_jobs.slow_teardown, markers, workers=2)
    assert all(r.startswith("registered in ") for r in results)
    # A normal exit would wait 30 s for the thread, so the pool would kill the worker after
    # 5 s, before its exit handlers ran: the markers show the workers exited by themselves.
    # (How long the pool takes is measured by benchmarks/workers.py.)
    assert [open(m).read() for m in markers] == ["exit handlers ran"] * 2
