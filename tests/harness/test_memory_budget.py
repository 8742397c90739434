"""The memory budget's arithmetic, and how a check's jobs are planned against it."""

from __future__ import annotations

import json
import struct

import pytest

from portability.errors import UsageError
from portability.harness import memory_budget as mb
from portability.harness.drift import Tolerance
from portability.harness.evaluate import Subject
from portability.harness.route_run import RouteJob
from portability.harness.scheduling import APART_BYTES, parse_workers, plan_memory

GIB = 2**30


def test_parse_memory_reads_sizes_and_refuses_the_rest():
    assert mb.parse_memory("16GB") == 16 * 10**9
    assert mb.parse_memory("1.5GiB") == 3 * 2**29
    assert mb.parse_memory(12345) == 12345
    assert mb.parse_memory(None) is None
    with pytest.raises(UsageError, match=r"^--max-memory 'lots': cannot read 'lots' as a size"):
        mb.parse_memory("lots")
    with pytest.raises(UsageError, match=r"^--max-memory 0: must be positive$"):
        mb.parse_memory(0)


def test_estimates_are_the_frameworks_plus_the_largest_factor_of_the_formats_written():
    model = 2 * GIB
    assert mb.route_estimate(("safetensors", "torch"), model) == mb.FRAMEWORK_BYTES + int(1.25 * model)
    assert mb.route_estimate(("safetensors", "onnx", "safetensors"), model) == mb.FRAMEWORK_BYTES + 3 * GIB
    assert mb.route_estimate(("safetensors", "tf-savedmodel"), model) == \
        mb.FRAMEWORK_BYTES + int(3.5 * GIB) + mb.COMPILED_GRAPH_FACTOR * (64 << 20)  # 64 MiB of it compiled
    small = 100 << 20  # compiled whole
    assert mb.route_estimate(("safetensors", "tf-savedmodel"), small) == \
        mb.FRAMEWORK_BYTES + int(1.75 * small) + mb.COMPILED_GRAPH_FACTOR * small
    # The reference: the model plus a group being loaded, or its float64 copy, whichever is larger.
    assert mb.reference_estimate(model, 0) == mb.FRAMEWORK_BYTES + int(2.5 * GIB)
    assert mb.reference_estimate(model, mb.float64_bytes(model)) == mb.FRAMEWORK_BYTES + 4 * GIB
    assert mb.float64_bytes(model, 2) == 8 * GIB  # a half-precision checkpoint widens four times


def test_budget_is_max_memory_when_given_else_available_less_the_headroom(monkeypatch):
    assert mb.budget_bytes(5 * GIB) == 5 * GIB
    monkeypatch.setattr(mb, "available_bytes", lambda: 20 * GIB)
    assert mb.budget_bytes(None) == 17 * GIB  # 15 % of 20 GiB kept free
    monkeypatch.setattr(mb, "available_bytes", lambda: 4 * GIB)
    assert mb.budget_bytes(None) == 3 * GIB  # at least 1 GiB kept free
    monkeypatch.setattr(mb, "available_bytes", lambda: None)
    assert mb.budget_bytes(None) is None


def test_too_big_names_the_needed_and_the_available_memory():
    assert mb.too_big(3 * GIB, 4 * GIB, "route a->b", None) is None
    assert mb.too_big(3 * GIB, None, "route a->b", None) is None
    assert mb.too_big(6 * GIB, 4 * GIB, "route a->b", None) == (
        "route a->b needs about 6.0 GiB of memory and 4.0 GiB is available now, less the headroom; "
        "skipped rather than risk the system killing it (--max-memory overrides the budget)")
    assert "and 4.0 GiB is --max-memory;" in mb.too_big(6 * GIB, 4 * GIB, "route a->b", 4 * GIB)


def test_gate_admits_jobs_only_while_their_estimates_fit_together():
    gate = mb.MemoryGate([3 * GIB, 2 * GIB, 2 * GIB], 5 * GIB)
    assert gate.admits(0, [])
    assert gate.admits(1, [0])
    assert not gate.admits(2, [0, 1])
    assert mb.MemoryGate([10 * GIB], None).admits(0, [])


def test_dtype_width_comes_from_the_safetensors_header(tmp_path):
    def write(path, entries):
        header = json.dumps({name: {"dtype": dtype, "shape": [n], "data_offsets": [0, n * width]}
                             for name, (dtype, n, width) in entries.items()}).encode()
        path.write_bytes(struct.pack("<Q", len(header)) + header)

    write(tmp_path / "model.safetensors", {"a": ("BF16", 1000, 2), "b": ("F32", 10, 4)})
    assert mb.dtype_width(str(tmp_path)) == 2
    write(tmp_path / "model.safetensors", {"a": ("F32", 1000, 4)})
    assert mb.dtype_width(str(tmp_path / "model.safetensors")) == 4
    assert mb.dtype_width(None) == 4


def _jobs(checkpoint: str) -> list[RouteJob]:
    subject = Subject(label=checkpoint, checkpoint=checkpoint, model="toy:model")
    routes = [("safetensors", "torch"), ("safetensors", "tf-savedmodel"), ("safetensors", "onnx", "safetensors")]
    return [RouteJob(subject, route, Tolerance()) for route in routes]


def test_a_route_that_cannot_fit_alone_is_skipped_with_both_figures(tmp_path):
    checkpoint = tmp_path / "model.safetensors"
    with open(checkpoint, "wb") as f:  # sparse: 2 GiB on paper, nothing on disk
        f.truncate(2 * GIB)
    jobs = _jobs(str(checkpoint))
    budget = 15 * GIB // 4  # the reference (3.5 GiB) and the torch route (3.5) fit; SavedModel (5.3) and ONNX (4) not
    memory = plan_memory(jobs, {}, budget)
    assert memory.skipped == {
        1: "route safetensors->tf-savedmodel needs about 5.3 GiB of memory and 3.8 GiB is --max-memory; "
           "skipped rather than risk the system killing it (--max-memory overrides the budget)",
        2: "route safetensors->onnx->safetensors needs about 4.0 GiB of memory and 3.8 GiB is --max-memory; "
           "skipped rather than risk the system killing it (--max-memory overrides the budget)"}
    # The reference is computed apart, once, for the route that runs; the float64 copy (8 GiB) is
    # left out of its estimate because the budget cannot hold it.
    assert memory.references == [(0, [0], mb.reference_estimate(2 * GIB, 0))]
    assert memory.route_estimates == {0: mb.route_estimate(jobs[0].route, 2 * GIB)}
    assert jobs[0].float64_limit == budget - mb.FRAMEWORK_BYTES


def test_a_reference_that_cannot_fit_skips_every_route_of_its_subject(tmp_path):
    checkpoint = tmp_path / "model.safetensors"
    with open(checkpoint, "wb") as f:
        f.truncate(APART_BYTES)
    memory = plan_memory(_jobs(str(checkpoint)), {}, GIB)
    assert set(memory.skipped) == {0, 1, 2}
    assert memory.skipped[0].startswith("the reference (the source model, run once) needs about 1.3 GiB of "
                                        "memory and 1.0 GiB is --max-memory;")
    assert memory.references == []


def test_in_process_checks_compute_the_reference_with_the_routes(tmp_path):
    checkpoint = tmp_path / "model.safetensors"
    with open(checkpoint, "wb") as f:
        f.truncate(APART_BYTES)
    jobs = _jobs(str(checkpoint))
    memory = plan_memory(jobs, {}, 64 * GIB, in_process=True)
    assert memory.references == [] and memory.skipped == {}
    reference = mb.reference_estimate(APART_BYTES, mb.float64_bytes(APART_BYTES))
    assert memory.route_estimates[0] == max(mb.route_estimate(jobs[0].route, APART_BYTES), reference)


def test_parse_workers():
    assert parse_workers("auto") is None and parse_workers(None) is None
    assert parse_workers("3") == 3 and parse_workers(0) == 0
    with pytest.raises(UsageError, match=r"^--workers 'many': give a number of worker processes or 'auto'$"):
        parse_workers("many")
    with pytest.raises(UsageError, match=r"^--workers '-1': cannot be negative$"):
        parse_workers("-1")


def test_a_route_whose_artifacts_cannot_fit_on_disk_is_skipped_with_both_figures(tmp_path, monkeypatch):
    checkpoint = tmp_path / "model.safetensors"
    with open(checkpoint, "wb") as f:
        f.truncate(2 * GIB)
    jobs = _jobs(str(checkpoint))
    for job in jobs:
        job.workdir = str(tmp_path)
    monkeypatch.setattr(mb, "disk_budget", lambda folder: 3 * GIB)
    memory = plan_memory(jobs, {}, 64 * GIB)
    assert memory.skipped == {2: f"route safetensors->onnx->safetensors writes about 4.0 GiB of artifacts and "
                                 f"3.0 GiB is free in {tmp_path}, less the headroom; skipped rather than fill "
                                 "the disk"}
    assert memory.disk_estimates == {0: 2 * GIB, 1: 2 * GIB, 2: 4 * GIB}
    gate = memory.bundle_gate([[0], [1]])
    assert gate.admits(0, []) and not gate.admits(1, [0])  # 4 GiB of artifacts at once would not fit


def test_disk_headroom_keeps_a_share_of_the_free_space(tmp_path, monkeypatch):
    import shutil

    free = 40 * GIB
    monkeypatch.setattr(shutil, "disk_usage", lambda folder: shutil._ntuple_diskusage(100 * GIB, 60 * GIB, free))
    assert mb.disk_budget(tmp_path) == 34 * GIB  # 15 % of 40 GiB
    free = 3 * GIB
    assert mb.disk_budget(tmp_path) == GIB  # at least 2 GiB
    assert mb.disk_estimate(("torch", "onnx", "torch"), 5) == 10
