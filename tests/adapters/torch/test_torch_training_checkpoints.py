"""Training checkpoints (tutorial and Lightning layouts) survive torch -> safetensors -> torch.

The safetensors leg must need no pickle at all, and an optimizer restored from
it must continue training bit for bit like the uninterrupted run.
"""

from __future__ import annotations

import json
import pickle
import random

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from nested_asserts import assert_same

from portability.adapters.safetensors import format as safetensors_format
from portability.adapters.torch import state_dict as torch_state_dict
from portability.adapters.torch.safety import load_pickle
from portability.core.conversion import convert


def make_model() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Tanh(), torch.nn.Linear(8, 3))


def train_steps(model, opt, steps: int, seed: int, sched=None) -> None:
    g = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        x, y = torch.randn(16, 4, generator=g), torch.randint(0, 3, (16,), generator=g)
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
        if sched is not None:
            sched.step()


def trained(steps: int = 3):
    model = make_model()
    opt = torch.optim.Adam(model.parameters(), lr=1e-2, weight_decay=0.01)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=2, gamma=0.5)
    train_steps(model, opt, steps, seed=1, sched=sched)
    return model, opt, sched


def rng_states() -> dict:
    random.seed(5)
    np.random.seed(5)
    torch.manual_seed(5)
    return {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}



def through_safetensors(tmp_path, obj, name="ckpt"):
    torch.save(obj, tmp_path / f"{name}.pt")
    convert(tmp_path / f"{name}.pt", tmp_path / f"{name}.safetensors")
    convert(tmp_path / f"{name}.safetensors", tmp_path / f"{name}_back.pt")
    return load_pickle(tmp_path / f"{name}_back.pt", trust_pickle=False)


def test_classic_tutorial_layout_round_trips(tmp_path):
    model, opt, sched = trained()
    ckpt = {"epoch": 3, "model_state_dict": model.state_dict(), "optimizer_state_dict": opt.state_dict(),
            "loss": torch.tensor(0.3125), "scheduler_state_dict": sched.state_dict(), "rng": rng_states()}
    back = through_safetensors(tmp_path, ckpt)
    assert list(back) == list(ckpt)
    assert_same(ckpt, back)
    state = back["optimizer_state_dict"]["state"]
    assert set(state[0]) == {"step", "exp_avg", "exp_avg_sq"}
    assert state[0]["step"].item() == 3.0


def test_rng_states_restore_the_same_random_streams(tmp_path):
    saved = rng_states()
    expected = (random.random(), np.random.rand(), torch.rand(1).item())
    back = through_safetensors(tmp_path, {"w": torch.ones(2), "rng": saved})["rng"]
    random.seed(0), np.random.seed(0), torch.manual_seed(0)
    random.setstate(back["python"])
    np.random.set_state(back["numpy"])
    torch.set_rng_state(back["torch"])
    assert (random.random(), np.random.rand(), torch.rand(1).item()) == expected


def test_lightning_layout_round_trips(tmp_path):
    model, opt, sched = trained()
    ckpt = {
        "epoch": 2, "global_step": 3, "pytorch-lightning_version": "2.4.0",
        "state_dict": {f"model.{k}": v for k, v in model.state_dict().items()},
        "loops": {"fit_loop": {"epoch_progress": {"current": {"completed": 2}}}},
        "callbacks": {"ModelCheckpoint{'monitor': None}": {"best_model_score": None}},
        "optimizer_states": [opt.state_dict()], "lr_schedulers": [sched.state_dict()],
        "hparams_name": "kwargs", "hyper_parameters": {"lr": 0.01, "layers": (4, 8, 3)},
    }
    back = through_safetensors(tmp_path, ckpt, "lightning")
    assert list(back) == list(ckpt)
    assert_same(ckpt, back)


def test_optimizer_state_value_by_value_in_the_neutral_model(tmp_path):
    _model, opt, _sched = trained()
    torch.save({"model_state_dict": _model.state_dict(), "optimizer_state_dict": opt.state_dict()},
               tmp_path / "c.pt")
    convert(tmp_path / "c.pt", tmp_path / "c.safetensors")
    ckpt = safetensors_format.read(tmp_path / "c.safetensors")
    assert ckpt.layout == "classic"
    optimizer = ckpt.training.optimizer
    assert optimizer.kind == "Adam"
    source = opt.state_dict()
    assert optimizer.param_groups == source["param_groups"]
    for pid, entries in source["state"].items():
        for key, value in entries.items():
            got = optimizer.state[pid][key]
            assert np.array_equal(got, value.numpy()), (pid, key)


def test_safetensors_training_checkpoint_reads_with_no_pickle(tmp_path, monkeypatch):
    model, opt, sched = trained()
    torch.save({"epoch": 1, "model_state_dict": model.state_dict(), "optimizer_state_dict": opt.state_dict(),
                "scheduler_state_dict": sched.state_dict(), "rng": rng_states()}, tmp_path / "c.pt")
    convert(tmp_path / "c.pt", tmp_path / "c.safetensors")

    def forbidden(*args, **kwargs):
        raise AssertionError("pickle used while reading safetensors")

    for module, attr in [(pickle, "load"), (pickle, "loads"), (pickle, "Unpickler"), (torch, "load")]:
        monkeypatch.setattr(module, attr, forbidden)
    ckpt = safetensors_format.read(tmp_path / "c.safetensors")
    obj = torch_state_dict.object_from_checkpoint(ckpt)
    assert torch.equal(obj["model_state_dict"]["0.weight"], model.state_dict()["0.weight"])
    assert obj["optimizer_state_dict"]["param_groups"] == opt.state_dict()["param_groups"]
    assert isinstance(obj["rng"]["numpy"][1], np.ndarray)


def test_resumed_adam_matches_uninterrupted_run_bitwise(tmp_path):
    reference, ref_opt, _ = trained(steps=3)
    torch.save({"model_state_dict": reference.state_dict(), "optimizer_state_dict": ref_opt.state_dict()},
               tmp_path / "c.pt")
    convert(tmp_path / "c.pt", tmp_path / "c.safetensors")
    ckpt = torch_state_dict.object_from_checkpoint(safetensors_format.read(tmp_path / "c.safetensors"))

    resumed = make_model()
    resumed.load_state_dict(ckpt["model_state_dict"])
    opt = torch.optim.Adam(resumed.parameters(), lr=1.0)
    opt.load_state_dict(ckpt["optimizer_state_dict"])
    train_steps(reference, ref_opt, 4, seed=9)
    train_steps(resumed, opt, 4, seed=9)
    for (name, a), b in zip(reference.state_dict().items(), resumed.state_dict().values(), strict=True):
        assert torch.equal(a.view(torch.int32), b.view(torch.int32)), name


def test_bare_state_dict_with_extra_scalars(tmp_path):
    ckpt = {"w": torch.arange(3.0), "step": 7, "best": float("inf"), "note": "x", "sizes": (1, 2)}
    back = through_safetensors(tmp_path, ckpt, "bare")
    assert_same(ckpt, back)


def test_training_checkpoint_through_sharded_safetensors(tmp_path):
    model, opt, sched = trained()
    ckpt = {"epoch": 3, "model_state_dict": model.state_dict(), "optimizer_state_dict": opt.state_dict(),
            "scheduler_state_dict": sched.state_dict()}
    torch.save(ckpt, tmp_path / "c.pt")
    convert(tmp_path / "c.pt", tmp_path / "shards", shard_size="400B")
    index = json.loads((tmp_path / "shards" / "model.safetensors.index.json").read_text())
    assert len(set(index["weight_map"].values())) > 2
    assert any(name.startswith("__training__.") for name in index["weight_map"])
    convert(tmp_path / "shards", tmp_path / "back.pt")
    assert_same(ckpt, load_pickle(tmp_path / "back.pt", trust_pickle=False))
