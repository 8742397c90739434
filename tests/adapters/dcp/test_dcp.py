"""DCP in and out: directories saved by ``torch.distributed.checkpoint.save`` in one process
(no process group) read bitwise, converted to safetensors (sharded) and torch, written
from any source and loaded back by DCP itself, and never a line of their pickles run."""

from __future__ import annotations

import copy
import json
import pickle
import warnings

import numpy as np
import pytest
import torch
import torch.distributed.checkpoint as dcp
import toy_models

import portability
from portability.core.conversion import convert, read_checkpoint
from portability.core.formats import detect
from portability.core.inspection import inspect_checkpoint
from portability.core.tensors import as_array
from portability.errors import UnsafeCheckpointError


def _bits(t) -> bytes:
    return t.detach().contiguous().view(torch.uint8).numpy().tobytes() if t.dtype == torch.bfloat16 else \
        t.detach().contiguous().numpy().tobytes()


def _trained():
    torch.manual_seed(0)
    model = toy_models.mlp()
    opt = torch.optim.AdamW(model.parameters(), lr=0.01)
    for _ in range(2):
        model(*(torch.from_numpy(v) for v in toy_models.inputs().values())).sum().backward()
        opt.step()
        opt.zero_grad()
    return model, opt


def _save(state, path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        dcp.save(state, checkpoint_id=str(path), no_dist=True)


def _load(state, path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        dcp.load(state, checkpoint_id=str(path), no_dist=True)


def _zeroed(optimizer_state: dict) -> dict:
    """An optimizer state_dict shaped like ``optimizer_state`` but holding nothing of it."""
    out = copy.deepcopy(optimizer_state)
    for state in out["state"].values():
        for value in state.values():
            value.zero_()
    for group in out["param_groups"]:
        group["lr"] = 99.0
    return out


@pytest.fixture()
def saved(tmp_path):
    model, opt = _trained()
    path = tmp_path / "ckpt"
    _save({"model": model.state_dict(), "optimizer": opt.state_dict(), "epoch": 7}, path)
    return path, model, opt


def test_read_gives_weights_and_optimizer_state_bitwise(saved):
    path, model, opt = saved
    assert detect(path) == "dcp"
    ckpt, fmt = read_checkpoint(path)
    assert fmt == "dcp" and ckpt.layout == "model-key"
    assert list(ckpt.tensors) == list(model.state_dict())
    for name, value in model.state_dict().items():
        assert as_array(ckpt.tensors[name]).tobytes() == _bits(value), name
    ts = ckpt.training
    assert ts.epoch == 7 and ts.optimizer.kind == "AdamW"
    assert ts.optimizer.param_groups[0]["lr"] == 0.01
    assert ts.optimizer.param_groups[0]["params"] == list(range(len(list(model.parameters()))))
    for pid, state in opt.state_dict()["state"].items():
        for key in ("exp_avg", "exp_avg_sq", "step"):
            assert np.asarray(ts.optimizer.state[pid][key]).tobytes() == _bits(state[key]), (pid, key)


def test_dcp_to_sharded_safetensors_and_torch_bitwise(saved, tmp_path):
    path, model, opt = saved
    result = convert(path, tmp_path / "sharded", to="safetensors", shard_size=1024)
    assert result.training_state and len(list((tmp_path / "sharded").glob("*.safetensors"))) > 1
    back, _ = read_checkpoint(tmp_path / "sharded")
    for name, value in model.state_dict().items():
        assert as_array(back.tensors[name]).tobytes() == _bits(value), name
    assert back.training.epoch == 7

    convert(path, tmp_path / "model.pt")
    obj = torch.load(tmp_path / "model.pt", weights_only=True)
    for name, value in model.state_dict().items():
        assert _bits(obj["model"][name]) == _bits(value), name
    for pid, state in opt.state_dict()["state"].items():
        assert _bits(obj["optimizer"]["state"][pid]["exp_avg"]) == _bits(state["exp_avg"])
    assert obj["epoch"] == 7


def test_safetensors_to_dcp_resumes_in_dcp_itself(saved, tmp_path):
    path, model, opt = saved
    convert(path, tmp_path / "model.safetensors")
    convert(tmp_path / "model.safetensors", tmp_path / "out", to="dcp")
    assert detect(tmp_path / "out") == "dcp"
    fresh = toy_models.mlp()
    target = {"model": {k: torch.zeros_like(v) for k, v in fresh.state_dict().items()},
              "optimizer": _zeroed(opt.state_dict())}
    _load(target, tmp_path / "out")
    for name, value in model.state_dict().items():
        assert _bits(target["model"][name]) == _bits(value), name
    for pid, state in opt.state_dict()["state"].items():
        assert _bits(target["optimizer"]["state"][pid]["exp_avg_sq"]) == _bits(state["exp_avg_sq"])
    assert target["optimizer"]["param_groups"][0]["lr"] == 0.01


def test_optimizer_keyed_by_parameter_name_maps_to_ids_and_back(tmp_path):
    model, opt = _trained()
    names = [n for n, _ in model.named_parameters()]
    by_name = {"state": {names[i]: s for i, s in opt.state_dict()["state"].items()},
               "param_groups": [{**g, "params": [names[i] for i in g["params"]]}
                                for g in opt.state_dict()["param_groups"]]}
    _save({"model": model.state_dict(), "optim": by_name}, tmp_path / "fqn")
    ckpt, _ = read_checkpoint(tmp_path / "fqn")
    optimizer = ckpt.training.optimizer
    assert optimizer.param_names == dict(enumerate(names))
    assert np.asarray(optimizer.state[1]["exp_avg"]).tobytes() == _bits(opt.state_dict()["state"][1]["exp_avg"])
    convert(tmp_path / "fqn", tmp_path / "again", to="dcp")
    target = {"optimizer": _zeroed(by_name)}
    _load(target, tmp_path / "again")
    assert _bits(target["optimizer"]["state"][names[1]]["exp_avg"]) == _bits(by_name["state"][names[1]]["exp_avg"])
    assert target["optimizer"]["param_groups"][0]["params"] == names


def test_ties_and_metadata_survive_a_dcp_round_trip(tmp_path):
    tied = torch.randn(4, 3)
    torch.save({"emb.weight": tied, "head.weight": tied, "bias": torch.arange(3, dtype=torch.bfloat16)},
               tmp_path / "tied.pt")
    convert(tmp_path / "tied.pt", tmp_path / "tied", to="dcp")
    back, _ = read_checkpoint(tmp_path / "tied")
    assert back.aliases == {"head.weight": "emb.weight"} and list(back.tensors) == ["emb.weight", "head.weight", "bias"]
    assert as_array(back.tensors["head.weight"]).tobytes() == _bits(tied)
    assert as_array(back.tensors["bias"]).tobytes() == _bits(torch.arange(3, dtype=torch.bfloat16))


def test_inspect_describes_a_dcp_directory(saved):
    path, model, _ = saved
    info = inspect_checkpoint(path)
    assert info["format"] == "dcp" and info["integrity"]["status"] == "no-checksums"
    assert [t["name"] for t in info["tensors"]] == list(model.state_dict())
    assert info["training_state"]["optimizer"]["kind"] == "AdamW" and info["training_state"]["epoch"] == 7
    json.dumps(info)


class _Boom:
    def __reduce__(self):
        import os

        return (os.system, ("touch PWNED",))


def test_metadata_that_would_run_code_is_refused_and_nothing_runs(saved, tmp_path, monkeypatch):
    path, _, _ = saved
    monkeypatch.chdir(tmp_path)
    (path / ".metadata").write_bytes(pickle.dumps(_Boom()))
    with pytest.raises(UnsafeCheckpointError, match=r"DCP metadata needs global (posix|os)\.system"):
        read_checkpoint(path)
    assert not (tmp_path / "PWNED").exists()


def test_check_runs_dcp_routes(tmp_path):
    model = toy_models.mlp()
    torch.save(model.state_dict(), tmp_path / "toy.pt")
    np.savez(tmp_path / "inputs.npz", **toy_models.inputs())
    report = portability.check(tmp_path / "toy.pt", model="toy_models:mlp", inputs=tmp_path / "inputs.npz",
                               formats="torch,dcp", workers=0)
    assert [r.route for r in report.routes] == [["torch", "dcp"], ["torch", "dcp", "torch"]]
    assert report and all(r.status == "pass" for r in report.routes)
    assert all(r.weights.bitwise_equal == r.weights.compared == 8 for r in report.routes)
