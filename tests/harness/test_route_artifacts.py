"""Where a route's artifacts go: ONNX steps as a graph plus external data (no protobuf size
limit), and a check in a temporary folder deleting each bundle's artifacts when it ends."""

from __future__ import annotations

import numpy as np
import onnx
import onnx_toys
import torch

from portability.api import plan
from portability.harness.route_run import clear_caches, run_bundle


def _toy(tmp_path):
    ckpt = tmp_path / "toy.pt"
    torch.save(onnx_toys.make_mlp().state_dict(), ckpt)
    inputs = tmp_path / "inputs.npz"
    np.savez(inputs, **onnx_toys.mlp_inputs())
    return ckpt, inputs


def _bundle(tmp_path, keep: bool):
    ckpt, inputs = _toy(tmp_path)
    work = tmp_path / "work"
    work.mkdir()
    jobs = plan(ckpt, model="onnx_toys:make_mlp", inputs=inputs, routes="torch:onnx,torch:onnx:torch").jobs
    for job in jobs:
        job.workdir, job.keep_artifacts = str(work), keep
    clear_caches()
    return run_bundle(jobs), work


def test_onnx_steps_write_the_weights_as_external_data_beside_the_graph(tmp_path):
    results, work = _bundle(tmp_path, keep=True)
    assert [r.status for r in results] == ["pass", "pass"]
    (step,) = work.glob("torch-onnx-*/step1-onnx")
    assert sorted(p.name for p in step.iterdir()) == ["model.onnx", "model.onnx.data"]
    graph = onnx.load(str(step / "model.onnx"), load_external_data=False)
    # onnx_ir keeps tensors under 256 bytes in the graph; every larger one is in the data file.
    large = [t for t in graph.graph.initializer if np.prod(t.dims) * 4 > 256]
    assert large and all(t.data_location == onnx.TensorProto.EXTERNAL for t in large)
    assert {e.value for t in large for e in t.external_data if e.key == "location"} == {"model.onnx.data"}


def test_a_temporary_check_deletes_each_bundles_artifacts_when_it_ends(tmp_path):
    results, work = _bundle(tmp_path, keep=False)
    assert [r.status for r in results] == ["pass", "pass"]
    assert [p.name for p in work.iterdir()] == []
