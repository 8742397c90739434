"""The framework-neutral search for weights, optimizer state and counters, and the layout text."""

from __future__ import annotations

import numpy as np
import pytest

from portability.core.layout import NAMED, SLOT, Layout, parse_layout, path_text, put_path, resolve_key, without
from portability.core.layout_search import array_info, default_weights, locate, weight_dicts
from portability.errors import UsageError


def w(n: int = 4, dtype=np.float32) -> np.ndarray:
    return np.zeros(n, dtype)


OPT = {"state": {0: {"exp_avg": w(), "exp_avg_sq": w(), "step": w(1)}}, "param_groups": [{"params": [0]}]}


def test_every_candidate_in_file_order_but_never_optimizer_or_rng_state():
    obj = {"model": {"a": w(4)}, "model_ema": {"a": w(4)}, "optimizer": OPT,
           "rng": {"torch": w(8, np.uint8), "cuda": w(8)}, "ids": {"i": w(3, np.int64)}, "step": 3}
    assert weight_dicts(obj, array_info) == [(("model",), 4), (("model_ema",), 4)]


@pytest.mark.parametrize("candidates, chosen", [
    ([(("model",), 10), (("model_ema",), 10)], ("model",)),
    ([(("ema",), 10), (("model",), 10)], ("model",)),        # a non-EMA name first
    ([(("net",), 10), (("generator",), 30)], ("generator",)),  # then the most elements
    ([(("a", "b"), 10), (("c",), 10)], ("c",)),               # then the shallowest
    ([(("ema",), 10)], ("ema",)),                             # the only one, EMA or not
    ([], None),
])
def test_documented_default(candidates, chosen):
    assert default_weights(candidates) == chosen


def test_locate_names_known_layouts_and_nests_the_rest():
    assert locate({"model_state_dict": {"a": w()}, "optimizer_state_dict": OPT, "epoch": 2},
                  array_info).layout == NAMED["classic"]
    found = locate({"model_state": {"a": w()}, "optimizer_state": OPT, "step": 7}, array_info)
    assert found.layout == Layout("nested", ("model_state",), ("optimizer_state",))
    assert found.fields == {"global_step": ("step",)}
    assert parse_layout(found.layout.to_text()) == found.layout
    assert found.layout.to_text() == 'nested {"weights":["model_state"],"optimizer":["optimizer_state"]}'
    nested = locate({"meta": {"epoch": 4}, "model": {"model": {"a": w()}}}, array_info)
    assert (nested.weights, nested.fields) == (("model", "model"), {"epoch": ("meta", "epoch")})


def test_lightning_lists_count_as_their_item():
    found = locate({"state_dict": {"a": w()}, "optimizer_states": [OPT], "lr_schedulers": [{"last_epoch": 3}]},
                   array_info)
    assert found.layout.name == "lightning"
    assert (found.optimizer, found.scheduler) == (("optimizer_states", 0), ("lr_schedulers", 0))


def test_resolve_key_takes_dotted_keys_digits_and_names_what_is_missing():
    obj = {"run": {"v1.2": [{"nets": {}}]}, 3: {"x": 1}}
    assert resolve_key(obj, "run.v1.2.0.nets") == ("run", "v1.2", 0, "nets")
    assert resolve_key(obj, "3.x") == (3, "x")
    with pytest.raises(UsageError, match=r"--weights-key run\.v2: no key 'v2' under run \(keys: v1\.2\)"):
        resolve_key(obj, "run.v2")


def test_without_and_put_path_give_the_object_back():
    obj = {"model": {"cfg": 1, "model": "W", "tail": 2}, "optimizer_states": ["O"], "epoch": 3}
    rest = without(obj, [("model", "model"), ("optimizer_states", 0), ("epoch",)])
    assert rest == {"model": {"cfg": 1, "model": SLOT, "tail": 2}}  # order kept by the slot
    assert obj["model"]["model"] == "W"  # the source is untouched
    put_path(rest, ("model", "model"), "W")
    put_path(rest, ("optimizer_states", 0), "O")
    put_path(rest, ("epoch",), 3)
    assert rest == obj and list(rest["model"]) == ["cfg", "model", "tail"]


def test_path_text():
    assert (path_text(()), path_text(("model", 0, "ema"))) == ("(top level)", "model.0.ema")
