"""Every registered format honours the one adapter contract (``adapters/base.py``).

The same checks run on each format: capabilities are declared, ``detect`` claims
what ``write`` produced, ``read`` gives the weights back bitwise, and ``runner``
runs the artifact in the format's own runtime to the torch reference's outputs.
"""

from __future__ import annotations

import inspect

import numpy as np
import pytest
import torch
import toy_models

from portability.adapters.base import FormatAdapter, registered_formats
from portability.core.checkpoint import Checkpoint
from portability.core.formats import FORMATS, detect, load_adapter
from portability.core.options import ReadOptions, RunOptions, WriteOptions
from portability.core.tensors import as_array
from portability.errors import UsageError

SPEC = "toy_models:mlp"
SUFFIX = {"torch": ".pt", "safetensors": ".safetensors", "onnx": ".onnx", "tf-savedmodel": "", "dcp": ""}


def _reference() -> tuple[Checkpoint, dict[str, np.ndarray], np.ndarray]:
    model = toy_models.mlp().eval()
    ckpt = Checkpoint(tensors={k: v.detach().numpy().copy() for k, v in model.state_dict().items()})
    feed = toy_models.inputs()
    with torch.no_grad():
        expected = model(*(torch.from_numpy(v) for v in feed.values())).numpy()
    return ckpt, feed, expected


def test_the_registry_is_the_format_table():
    assert FORMATS == registered_formats()
    assert list(FORMATS) == ["torch", "safetensors", "onnx", "tf-savedmodel", "dcp"]


@pytest.mark.parametrize("name", list(FORMATS))
def test_capabilities_are_declared(name):
    cls = FORMATS[name]
    assert issubclass(cls, FormatAdapter) and not inspect.isabstract(cls)
    assert cls.name == name
    assert all(isinstance(getattr(cls, attr), bool) for attr in
               ("is_directory", "stores_graph", "needs_model_spec", "keeps_training_state"))
    assert cls.needs_model_spec <= cls.stores_graph  # only graphs need the model's code
    assert cls.is_directory or cls.extensions


@pytest.mark.parametrize("name", list(FORMATS))
def test_write_detect_read_run(name, tmp_path):
    adapter = load_adapter(name)
    ckpt, feed, expected = _reference()
    dst = tmp_path / f"model{SUFFIX[name]}"
    np.savez(tmp_path / "inputs.npz", **feed)  # graph exports trace on the user's inputs
    adapter.write(ckpt, dst, WriteOptions(model=SPEC, inputs=str(tmp_path / "inputs.npz")))

    assert adapter.detect(dst) and detect(dst) == name
    back = adapter.read(dst, ReadOptions())
    for key, value in ckpt.tensors.items():
        got = as_array(back.tensors[key])
        assert got.dtype == value.dtype and got.tobytes() == value.tobytes(), key

    runner = adapter.runner(dst, RunOptions(model=SPEC))
    with runner:
        outputs = runner.infer(feed)
    (out,) = outputs.values()
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", [n for n, cls in FORMATS.items() if not cls.stores_graph])
def test_weights_only_runner_needs_a_model_spec(name, tmp_path):
    adapter = load_adapter(name)
    dst = tmp_path / f"model{SUFFIX[name]}"
    adapter.write(_reference()[0], dst)
    with pytest.raises(UsageError, match="stores only weights; pass --model SPEC"):
        adapter.runner(dst, RunOptions())


@pytest.mark.parametrize("name", [n for n, cls in FORMATS.items() if cls.needs_model_spec])
def test_graph_write_without_a_model_spec_is_a_usage_error(name, tmp_path):
    with pytest.raises(UsageError, match="--model SPEC"):
        load_adapter(name).write(_reference()[0], tmp_path / f"model{SUFFIX[name]}", WriteOptions())
    assert not (tmp_path / f"model{SUFFIX[name]}").exists()


def test_a_missing_framework_makes_the_format_unavailable(monkeypatch):
    cls = FORMATS["onnx"]
    monkeypatch.setattr(cls, "requires", ("no_such_package_for_portability",))
    assert cls.unavailable() == ("format 'onnx' not available: no_such_package_for_portability is not "
                                 "installed (pip install 'portability[onnx]')")


@pytest.mark.parametrize("package", ["onnx", "tf_savedmodel"])
def test_module_level_methods_stay_callable_after_every_submodule_is_imported(package):
    """A submodule named like a method (``runner``, ``read``) would replace it on import."""
    import importlib
    import pkgutil

    module = importlib.import_module(f"portability.adapters.{package}")
    for info in pkgutil.iter_modules(module.__path__):
        importlib.import_module(f"{module.__name__}.{info.name}")
    for name in ("read", "write", "runner", "detect"):
        assert callable(getattr(module, name)), f"{module.__name__}.{name}"


def test_format_order_does_not_depend_on_import_order():
    """Sorting the imports in adapters/__init__.py must not reorder routes and reports."""
    assert [cls.route_order for cls in FORMATS.values()] == sorted(cls.route_order for cls in FORMATS.values())
    assert len({cls.route_order for cls in FORMATS.values()}) == len(FORMATS)
