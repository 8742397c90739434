"""Small seed artifacts for mutation fuzzing, one builder per reader.

Each builder writes into a fresh folder and returns ``Seed`` rows: the path
``portability.load`` is given, the files inside it that mutations may touch,
and whether the artifact carries our checksums (then any load that succeeds
must give the tensors back bitwise).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass(frozen=True)
class Seed:
    """One artifact to mutate.

    Attributes:
        name: short label (``ours``, ``plain``...).
        path: what ``portability.load`` opens (a file or a directory).
        files: the files mutations may change, relative to ``root``.
        root: the folder holding the artifact (copied per example).
        checksummed: written by this project with checksums.
    """

    name: str
    path: Path
    files: tuple[str, ...]
    root: Path
    checksummed: bool


def _torch_objects():
    import torch

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(6, 4), torch.nn.ReLU(), torch.nn.Linear(4, 3))
    # An Adam state_dict built by hand: importing torch.optim starts dynamo (seconds).
    params = list(model.parameters())
    optimizer = {"state": {i: {"step": torch.tensor(1.0), "exp_avg": torch.randn_like(p),
                               "exp_avg_sq": torch.rand_like(p)} for i, p in enumerate(params)},
                 "param_groups": [{"lr": 1e-3, "betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 0.0,
                                   "amsgrad": False, "params": list(range(len(params)))}]}
    state = {"model": model.state_dict(), "optimizer": optimizer, "epoch": 2,
             "step_ids": torch.arange(5, dtype=torch.int64), "half": torch.randn(3).half()}
    return model.state_dict(), state


def _ours(src: Path, dst: Path, fmt: str, **write) -> None:
    import portability
    from portability.core.formats import load_adapter
    from portability.core.options import WriteOptions

    load_adapter(fmt).write(portability.load(src), dst, WriteOptions(**write))


def torch_zip(folder: Path) -> list[Seed]:
    """A plain ``torch.save`` training checkpoint, and ours written from it."""
    import torch

    _, state = _torch_objects()
    (folder / "plain").mkdir(parents=True)
    (folder / "ours").mkdir()
    torch.save(state, folder / "plain" / "ckpt.pt")
    _ours(folder / "plain" / "ckpt.pt", folder / "ours" / "ckpt.pt", "torch")
    return [Seed("plain", folder / "plain" / "ckpt.pt", ("ckpt.pt",), folder / "plain", False),
            Seed("ours", folder / "ours" / "ckpt.pt", ("ckpt.pt",), folder / "ours", True)]


def torch_legacy(folder: Path) -> list[Seed]:
    """A state_dict saved in torch's legacy (non-zip) pickle format."""
    import torch

    weights, _ = _torch_objects()
    (folder / "legacy").mkdir()
    torch.save(weights, folder / "legacy" / "model.pt", _use_new_zipfile_serialization=False)
    return [Seed("legacy", folder / "legacy" / "model.pt", ("model.pt",), folder / "legacy", False)]


def safetensors_file(folder: Path) -> list[Seed]:
    """A plain safetensors file (the safetensors package) and ours with training state."""
    from safetensors.numpy import save_file

    rng = np.random.default_rng(0)
    (folder / "plain").mkdir(parents=True)
    (folder / "ours").mkdir()
    save_file({"a": rng.standard_normal((4, 6)).astype(np.float32), "b": np.arange(7, dtype=np.int64),
               "c": rng.standard_normal(5).astype(np.float16)}, str(folder / "plain" / "model.safetensors"))
    torch_seeds = torch_zip(folder / "torch")
    _ours(torch_seeds[0].path, folder / "ours" / "model.safetensors", "safetensors")
    return [Seed("plain", folder / "plain" / "model.safetensors", ("model.safetensors",),
                 folder / "plain", False),
            Seed("ours", folder / "ours" / "model.safetensors", ("model.safetensors",), folder / "ours", True)]


def safetensors_index(folder: Path) -> list[Seed]:
    """Our sharded safetensors directory (index + three shards)."""
    torch_seeds = torch_zip(folder / "torch")
    _ours(torch_seeds[0].path, folder / "sharded", "safetensors", shard_size=200)
    files = tuple(sorted(p.name for p in (folder / "sharded").iterdir()))
    return [Seed("sharded", folder / "sharded", files, folder / "sharded", True)]


def onnx_external(folder: Path) -> list[Seed]:
    """An ONNX model whose initializers live in an external data file."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    w = numpy_helper.from_array(rng.standard_normal((6, 4)).astype(np.float32), "w")
    b = numpy_helper.from_array(rng.standard_normal(4).astype(np.float32), "b")
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["h"]), helper.make_node("Add", ["h", "b"], ["y"])],
        "fuzz", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 6])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])], initializer=[w, b])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    (folder / "onnx").mkdir()
    onnx.save_model(model, str(folder / "onnx" / "model.onnx"), save_as_external_data=True,
                    all_tensors_to_one_file=True, location="weights.bin", size_threshold=0)
    return [Seed("external", folder / "onnx", ("model.onnx", "weights.bin"), folder / "onnx", False)]


def savedmodel_variables(folder: Path) -> list[Seed]:
    """A plain TensorFlow SavedModel with a few variables."""
    import tensorflow as tf

    module = tf.Module()
    module.w = tf.Variable(np.arange(12, dtype=np.float32).reshape(3, 4), name="w")
    module.b = tf.Variable(np.arange(4, dtype=np.int64), name="b")
    tf.saved_model.save(module, str(folder / "sm"))
    files = tuple(sorted(str(p.relative_to(folder / "sm")) for p in (folder / "sm").rglob("*") if p.is_file()))
    return [Seed("savedmodel", folder / "sm", files, folder / "sm", False)]


BUILDERS: dict[str, Callable[[Path], list[Seed]]] = {
    "torch-zip": torch_zip,
    "torch-legacy": torch_legacy,
    "safetensors-file": safetensors_file,
    "safetensors-index": safetensors_index,
    "onnx-external": onnx_external,
    "savedmodel": savedmodel_variables,
}
