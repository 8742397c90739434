"""Format detection from names, directory contents and the format table."""

from __future__ import annotations

import pytest

from portability.core.formats import FORMATS, detect, format_from_name, load_adapter, spec_for
from portability.errors import FormatError, UsageError


@pytest.mark.parametrize("name,fmt", [
    ("m.pt", "torch"), ("m.PTH", "torch"), ("pytorch_model.bin", "torch"), ("last.ckpt", "torch"),
    ("model.safetensors", "safetensors"), ("model.safetensors.index.json", "safetensors"),
    ("pytorch_model.bin.index.json", "torch"), ("model.onnx", "onnx"), ("model.json", None),
    ("config.index.json", None), ("weights", None),
])
def test_format_from_name(name, fmt):
    assert format_from_name(name) == fmt


@pytest.mark.parametrize("files,fmt", [
    (["saved_model.pb", "variables"], "tf-savedmodel"),
    (["model.safetensors.index.json", "model-00001-of-00001.safetensors"], "safetensors"),
    (["model.safetensors", "config.json"], "safetensors"),
    (["model.onnx"], "onnx"),
    (["pytorch_model.bin", "config.json"], "torch"),
])
def test_detect_directory(tmp_path, files, fmt):
    for f in files:
        (tmp_path / f).write_bytes(b"")
    assert detect(tmp_path) == fmt


def test_detect_errors_name_the_path(tmp_path):
    with pytest.raises(FormatError, match="no such file"):
        detect(tmp_path / "missing.pt")
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(FormatError, match=r"holds no checkpoint"):
        detect(tmp_path)
    with pytest.raises(FormatError, match=r"notes.txt: unknown extension '.txt'"):
        detect(tmp_path / "notes.txt")


def test_unknown_format_lists_the_supported_ones():
    with pytest.raises(UsageError, match="supported: torch, safetensors"):
        spec_for("keras")


def test_every_adapter_lives_under_portability_adapters():
    for cls in FORMATS.values():
        assert cls.__module__.startswith("portability.adapters."), cls


def test_load_adapter_returns_an_instance_of_the_registered_class():
    adapter = load_adapter("safetensors")
    assert isinstance(adapter, FORMATS["safetensors"])
