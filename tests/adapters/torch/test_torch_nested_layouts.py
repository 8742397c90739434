"""Weights found wherever people saved them, and the original nesting given back.

Each case is saved with ``torch.save`` as its authors do, converted to
safetensors (where ``safetensors.torch.load_file`` must find the weights under
their own names) and back to torch, which must give the original object:
nesting, key order, every non-tensor value, optimizer state and the other
weight candidates.
"""

from __future__ import annotations

import collections
import json

import pytest
import torch
from nested_asserts import assert_same
from safetensors.torch import load_file

from portability.adapters.torch import state_dict as torch_state_dict
from portability.adapters.torch.safety import load_pickle
from portability.core.conversion import convert
from portability.core.inspection import inspect_checkpoint
from portability.errors import UsageError


def trained():
    """A small model after three Adam steps with a StepLR schedule."""
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Tanh(), torch.nn.Linear(8, 3))
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=2, gamma=0.5)
    g = torch.Generator().manual_seed(1)
    for _ in range(3):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(torch.randn(16, 4, generator=g)),
                                          torch.randint(0, 3, (16,), generator=g)).backward()
        opt.step()
        sched.step()
    return model, opt, sched



def weights(seed: int = 0) -> dict:
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Linear(8, 3)).state_dict()


NESTED = {
    key: (lambda key=key: ({key: weights(), "step": 12, "note": "saved by hand"}, (key,)))
    for key in ("model_state", "net", "network", "model", "module", "params", "generator", "ema",
                "model_ema", "state_dict")
}
NESTED["model.model"] = lambda: ({"model": {"model": weights(), "args": {"lr": 0.1, "sizes": (4, 8)}},
                                  "epoch": 3}, ("model", "model"))
NESTED["deep"] = lambda: ({"run": {"nets": {"student": weights()}, "tag": None}, "cfg": [1, 2.5, "x"]},
                          ("run", "nets", "student"))


def through_safetensors(tmp_path, obj, name="ckpt"):
    src, mid, back = tmp_path / f"{name}.pt", tmp_path / f"{name}.safetensors", tmp_path / f"{name}_back.pt"
    torch.save(obj, src)
    convert(src, mid)
    convert(mid, back)
    return mid, load_pickle(back, trust_pickle=False)


@pytest.mark.parametrize("case", sorted(NESTED))
def test_nested_weights_are_found_and_the_nesting_comes_back(tmp_path, case):
    obj, path = NESTED[case]()
    mid, back = through_safetensors(tmp_path, obj, case.replace(".", "_"))
    model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Linear(8, 3))
    plain = {k: v for k, v in load_file(mid).items() if not k.startswith("__training__")}
    model.load_state_dict(plain, strict=True)  # the weights are top-level tensors with their own names
    assert list(back) == list(obj)
    assert_same(obj, back)
    info = inspect_checkpoint(tmp_path / f"{case.replace('.', '_')}.pt")
    assert info["weights_key"] == ".".join(path) and len(info["tensors"]) == 4


def test_legacy_pickle_saved_on_a_gpu(tmp_path, monkeypatch):
    """The pre-1.6 format records each storage's device as a string; a file pickled on
    CUDA says ``cuda:0``, which a CPU-only machine must map to the CPU."""
    model, opt, _ = trained()
    obj = {"step": 1564501, "model_state": model.state_dict(), "optimizer_state": opt.state_dict()}
    with monkeypatch.context() as patch:
        patch.setattr(torch.serialization, "location_tag", lambda storage: "cuda:0")
        torch.save(obj, tmp_path / "gpu.pt", _use_new_zipfile_serialization=False)
    with open(tmp_path / "gpu.pt", "rb") as f:
        assert f.read(2) != b"PK"  # not a zip: the legacy format
    seen = collections.Counter()
    torch.load(tmp_path / "gpu.pt", map_location=lambda s, loc: seen.update([loc]) or s, weights_only=True)
    assert set(seen) == {"cuda:0"}

    ckpt = torch_state_dict.read(tmp_path / "gpu.pt")
    assert sorted(ckpt.tensors) == sorted(model.state_dict())
    assert ckpt.training.global_step == 1564501 and ckpt.training.optimizer.kind == "Adam"
    info = inspect_checkpoint(tmp_path / "gpu.pt")
    assert (info["weights_key"], len(info["tensors"])) == ("model_state", 4)
    assert info["training_state"]["optimizer"]["parameters_with_state"] == 4

    result = convert(tmp_path / "gpu.pt", tmp_path / "gpu.safetensors")
    assert "4 tensors with training state" in result.describe()
    fresh = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Tanh(), torch.nn.Linear(8, 3))
    plain = {k: v for k, v in load_file(tmp_path / "gpu.safetensors").items() if not k.startswith("__")}
    fresh.load_state_dict(plain, strict=True)
    convert(tmp_path / "gpu.safetensors", tmp_path / "back.pt")
    assert_same(obj, load_pickle(tmp_path / "back.pt", trust_pickle=False))


def test_several_candidates_default_weights_key_and_inspect(tmp_path):
    obj = {"model": weights(0), "model_ema": weights(1), "optimizer": trained()[1].state_dict(), "epoch": 7}
    torch.save(obj, tmp_path / "c.pt")
    info = inspect_checkpoint(tmp_path / "c.pt")
    assert info["weights_key"] == "model"
    assert [c["key"] for c in info["weight_candidates"]] == ["model", "model_ema"]
    assert info["weight_candidates"][1] == {"key": "model_ema", "tensors": 4, "parameters": 67}
    assert inspect_checkpoint(tmp_path / "c.pt", weights_key="model_ema")["weights_key"] == "model_ema"

    convert(tmp_path / "c.pt", tmp_path / "ema.safetensors", weights_key="model_ema")
    plain = {k: v for k, v in load_file(tmp_path / "ema.safetensors").items() if not k.startswith("__")}
    assert all(torch.equal(plain[k], obj["model_ema"][k]) for k in obj["model_ema"])
    convert(tmp_path / "ema.safetensors", tmp_path / "back.pt")
    assert_same(obj, load_pickle(tmp_path / "back.pt", trust_pickle=False))


def test_weights_key_names_nested_and_dotted_keys(tmp_path):
    obj = {"run": {"v1.2": {"nets": weights()}}, "other": weights(3)}
    ckpt = torch_state_dict.checkpoint_from_object(obj, weights_key="run.v1.2.nets")
    assert json.loads(ckpt.layout.split(" ", 1)[1])["weights"] == ["run", "v1.2", "nets"]
    assert_same(obj, torch_state_dict.object_from_checkpoint(ckpt))


def test_unknown_weights_key_lists_the_keys(tmp_path):
    torch.save({"model": weights(), "epoch": 1}, tmp_path / "c.pt")
    with pytest.raises(UsageError, match=r"--weights-key net: no key 'net' at the top level \(keys: model, epoch\)"):
        convert(tmp_path / "c.pt", tmp_path / "c.safetensors", weights_key="net")
    assert not (tmp_path / "c.safetensors").exists()


def test_lightning_optimizer_list_and_optimizer_not_taken_for_weights(tmp_path):
    model, opt, sched = trained()
    obj = {"state_dict": model.state_dict(), "optimizer_states": [opt.state_dict()],
           "lr_schedulers": [sched.state_dict()], "epoch": 1}
    ckpt = torch_state_dict.checkpoint_from_object(obj)
    assert ckpt.layout == "lightning" and ckpt.training.optimizer.kind == "Adam"
    # optimizer state's per-parameter dicts are tensors too, but never weights
    only_opt = torch_state_dict.checkpoint_from_object({"optimizer": opt.state_dict(), "w": torch.ones(2)})
    assert list(only_opt.tensors) == ["w"]
