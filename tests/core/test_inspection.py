"""inspect_checkpoint: what it reports for each format and layout."""

from __future__ import annotations

import numpy as np
import pytest

from portability.adapters.safetensors import format as safetensors_format
from portability.core.checkpoint import Checkpoint
from portability.core.formats import WriteOptions
from portability.core.inspection import inspect_checkpoint


def weights(n: int = 3) -> Checkpoint:
    return Checkpoint(tensors={f"l{i}.weight": np.full((10, 10), i, np.float32) for i in range(n)})


def test_sharded_directory_is_one_checkpoint(tmp_path):
    safetensors_format.write(weights(), tmp_path / "d", WriteOptions(shard_size=500))
    info = inspect_checkpoint(tmp_path / "d")
    assert info["format"] == "safetensors"
    assert [t["name"] for t in info["tensors"]] == ["l0.weight", "l1.weight", "l2.weight"]
    assert info["parameters"] == 300 and info["total_bytes"] == 1200
    assert info["integrity"] == {"status": "ok", "message": "3 tensors match their checksums"}
    assert info["training_state"] == {"present": False}


def test_torch_training_checkpoint_summary(tmp_path):
    torch = pytest.importorskip("torch")
    model = torch.nn.Linear(3, 2)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    model(torch.ones(1, 3)).sum().backward()
    opt.step()
    torch.save({"model": model.state_dict(), "optimizer": opt.state_dict(), "epoch": 4, "step": 10},
               tmp_path / "c.pth")
    info = inspect_checkpoint(tmp_path / "c.pth")
    assert info["format"] == "torch" and info["layout"] == "model-key"
    assert info["parameters"] == 8
    ts = info["training_state"]
    assert ts["optimizer"] == {"kind": "SGD", "param_groups": 1, "parameters_with_state": 2}
    assert ts["epoch"] == 4 and ts["global_step"] == 10
    assert info["integrity"]["status"] == "no-checksums"


def test_explicit_format_overrides_detection(tmp_path):
    safetensors_format.write(weights(1), tmp_path / "odd.weights")
    info = inspect_checkpoint(tmp_path / "odd.weights", fmt="safetensors")
    assert info["format"] == "safetensors" and info["parameters"] == 100
