"""The checkpoint model and the JSON + arrays encoding of training state."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from portability.core import tree
from portability.core.checkpoint import Checkpoint, OptimizerState, TrainingState
from portability.core.training_codec import TRAINING_PREFIX, pack_training, unpack_training
from portability.errors import FormatError


def test_parameter_count_skips_aliases():
    w = np.zeros((4, 5), np.float32)
    ckpt = Checkpoint(tensors={"a": w, "b": np.zeros(3), "tied": w}, aliases={"tied": "a"})
    assert ckpt.canonical_names() == ["a", "b"]
    assert ckpt.parameter_count() == 23


def test_tree_round_trips_awkward_python_values():
    value = {
        "ints": [1, -2, 2**62], "float": 0.1, "nan": float("nan"), "inf": float("-inf"),
        "tuple": (1, (2, "x")), "none": None, "bool": True,
        "int_keys": {0: "a", 3: {"b": 1}}, "dunder": {"__tensor__": "not a ref"},
        "array": np.arange(6, dtype=np.int16).reshape(2, 3),
    }
    arrays: dict = {}
    encoded = json.loads(json.dumps(tree.encode(value, "p", arrays)))
    assert list(arrays) == ["p.array"]
    back = tree.decode(encoded, arrays)
    assert back["ints"] == [1, -2, 2**62] and back["float"] == 0.1
    assert math.isnan(back["nan"]) and back["inf"] == float("-inf")
    assert back["tuple"] == (1, (2, "x")) and isinstance(back["tuple"][1], tuple)
    assert back["int_keys"] == {0: "a", 3: {"b": 1}}
    assert back["dunder"] == {"__tensor__": "not a ref"}
    assert back["array"] is arrays["p.array"]
    assert (back["none"], back["bool"]) == (None, True)


def test_tree_refuses_values_it_cannot_store():
    with pytest.raises(FormatError, match=r"'p.obj'"):
        tree.encode({"obj": object()}, "p", {})
    with pytest.raises(FormatError, match=r"dtype object at 'p.names'"):
        tree.encode({"names": np.array(["a", 1], dtype=object)}, "p", {})


def test_tree_decode_names_a_missing_tensor():
    with pytest.raises(FormatError, match="'gone'"):
        tree.decode({"__tensor__": "gone"}, {})


def test_training_state_pack_unpack():
    opt = OptimizerState(
        param_groups=[{"lr": 1e-3, "betas": (0.9, 0.999), "params": [0, 1], "amsgrad": False}],
        state={0: {"step": np.array(3.0, np.float32), "exp_avg": np.ones(4, np.float32)}},
        kind="Adam", param_names={0: "w", 1: "b"})
    state = TrainingState(optimizer=opt, scheduler={"last_epoch": 3, "_last_lr": [0.001]}, epoch=1,
                          global_step=3, loss=0.5, rng={"python": (3, (1, 2, 3), None)},
                          data_position={"batch": 7}, extra={"note": "x"})
    text, arrays = pack_training(state)
    assert all(name.startswith(TRAINING_PREFIX + ".") for name in arrays)
    back = unpack_training(text, arrays)
    assert back.optimizer.param_groups == opt.param_groups
    assert back.optimizer.kind == "Adam" and back.optimizer.param_names == {0: "w", 1: "b"}
    assert set(back.optimizer.state) == {0}
    assert np.array_equal(back.optimizer.state[0]["exp_avg"], np.ones(4, np.float32))
    assert back.optimizer.state[0]["step"].dtype == np.float32
    for key in ("scheduler", "epoch", "global_step", "loss", "rng", "data_position", "extra"):
        assert getattr(back, key) == getattr(state, key), key
