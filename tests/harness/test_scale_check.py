"""A check at scale: a generated GPT-2-style model past protobuf's 2 GiB, through every route.

Slow tier: generating the model takes about a minute and the check a few more. The
model has random weights (width 1600, 16 layers: 573M parameters, 2.29 GB of
float32), one ``model.safetensors``, as ``benchmarks/scale.py`` generates them.
"""

from __future__ import annotations

import shutil

import numpy as np
import pytest

import portability
from portability.harness import memory_budget

GIB = 2**30


@pytest.mark.slow
def test_a_model_past_2_gib_passes_every_route(tmp_path):
    transformers = pytest.importorskip("transformers")
    import torch

    available = memory_budget.available_bytes()
    if available is not None and available < 10 * GIB:
        pytest.skip(f"needs about 10 GiB of free memory, {available / GIB:.1f} GiB is available")
    if shutil.disk_usage(tmp_path).free < 12 * GIB:
        pytest.skip("needs about 12 GiB of free disk (the model and one bundle's artifacts)")
    config = transformers.GPT2Config(n_embd=1600, n_head=16, n_layer=16, vocab_size=50257, n_positions=1024)
    torch.manual_seed(0)
    model = transformers.GPT2LMHeadModel(config)
    directory = tmp_path / "gpt2"
    model.save_pretrained(directory, safe_serialization=True)
    del model
    weights = (directory / "model.safetensors").stat().st_size
    assert weights > 2 * GIB
    batch = tmp_path / "batch.npz"
    np.savez(batch, input_ids=np.random.RandomState(0).randint(0, 50257, (2, 16)).astype(np.int64))

    report = portability.check(directory, inputs=batch)

    statuses = {r.name: (r.status, r.reason) for r in report.routes}
    assert statuses == {name: ("pass", "") for name in [
        "safetensors->torch", "safetensors->onnx", "safetensors->tf-savedmodel", "safetensors->dcp",
        "safetensors->torch->safetensors", "safetensors->onnx->safetensors",
        "safetensors->tf-savedmodel->safetensors", "safetensors->dcp->safetensors"]}
    assert all(r.casts == [] for r in report.routes)  # float32 throughout
    onnx = next(r for r in report.routes if r.name == "safetensors->onnx")
    assert all(o.passed for o in onnx.outputs) and onnx.weights is not None and onnx.weights.passed
