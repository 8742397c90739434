"""convert(): options, destination formats, and streaming memory when re-sharding."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from portability.adapters.safetensors import format as safetensors_format
from portability.core.checkpoint import Checkpoint
from portability.core.conversion import ConvertResult, convert, destination_format, parse_size
from portability.core.tensors import as_array
from portability.errors import UsageError


@pytest.mark.parametrize("text,size", [("500MB", 500 * 10**6), ("2GiB", 2 * 2**30), ("1048576", 1048576),
                                       ("1.5kb", 1500), ("10 MiB", 10 * 2**20), ("3G", 3 * 10**9)])
def test_parse_size(text, size):
    assert parse_size(text) == size


@pytest.mark.parametrize("text", ["", "MB", "-1MB", "0", "5XB", "1e3"])
def test_parse_size_rejects(text):
    with pytest.raises(UsageError):
        parse_size(text)


def test_destination_format_rules(tmp_path):
    assert destination_format(tmp_path / "a.pt", None) == "torch"
    assert destination_format(tmp_path / "a.bin", "safetensors") == "safetensors"
    assert destination_format(tmp_path / "shards", None, "100MB") == "safetensors"
    with pytest.raises(UsageError, match="pass --to"):
        destination_format(tmp_path / "shards", None)
    with pytest.raises(UsageError, match="directory"):
        destination_format(tmp_path / "model.safetensors.index.json", None)


def checkpoint() -> Checkpoint:
    return Checkpoint(tensors={"a": np.arange(10, dtype=np.float32), "b": np.ones((3, 3), np.int8)})


def test_convert_returns_what_it_did(tmp_path):
    safetensors_format.write(checkpoint(), tmp_path / "s.safetensors")
    result = convert(tmp_path / "s.safetensors", tmp_path / "d.safetensors")
    assert result == ConvertResult(tmp_path / "s.safetensors", "safetensors", tmp_path / "d.safetensors",
                                   "safetensors", 2, False)


def test_convert_refuses_same_source_and_destination(tmp_path):
    safetensors_format.write(checkpoint(), tmp_path / "s.safetensors")
    before = (tmp_path / "s.safetensors").read_bytes()
    with pytest.raises(UsageError, match="same"):
        convert(tmp_path / "s.safetensors", tmp_path / "s.safetensors", overwrite=True)
    assert (tmp_path / "s.safetensors").read_bytes() == before


def test_single_file_destination_too_big_for_shard_names_the_destination(tmp_path):
    safetensors_format.write(checkpoint(), tmp_path / "s.safetensors")
    with pytest.raises(UsageError, match=r"d\.safetensors: .*give a directory") as info:
        convert(tmp_path / "s.safetensors", tmp_path / "d.safetensors", shard_size=10)
    assert "portability-tmp" not in str(info.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.safetensors"]


def test_user_metadata_survives_conversion(tmp_path):
    ckpt = checkpoint()
    ckpt.metadata = {"author": "me", "format": "pt"}
    safetensors_format.write(ckpt, tmp_path / "s.safetensors")
    convert(tmp_path / "s.safetensors", tmp_path / "d", shard_size="20B")
    index = json.loads((tmp_path / "d" / "model.safetensors.index.json").read_text())
    assert index["metadata"]["author"] == "me"
    assert safetensors_format.read(tmp_path / "d").metadata == {"author": "me", "format": "pt"}


def test_resharding_splits_by_size_and_reads_back_bitwise(tmp_path):
    """Re-sharding a file into shards of a given size (its peak memory, which stays under
    one shard, is measured by benchmarks/reshard_memory.py)."""
    tensors = {f"block.{i}.weight": np.full(2**18, i, dtype=np.float32) for i in range(12)}  # 1 MiB each
    safetensors_format.write(Checkpoint(tensors=tensors), tmp_path / "big.safetensors")
    done = subprocess.run([sys.executable, "-m", "portability.cli", "convert", str(tmp_path / "big.safetensors"),
                           str(tmp_path / "shards"), "--shard-size", str(6 * 2**20 + 2**19)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    shards = sorted(p.name for p in (tmp_path / "shards").glob("*.safetensors"))
    assert shards == [f"model-0000{i}-of-00002.safetensors" for i in (1, 2)]  # six 1 MiB tensors a shard
    back = safetensors_format.read(tmp_path / "shards")
    assert list(back.tensors) == list(tensors)
    for name, value in tensors.items():
        assert as_array(back.tensors[name]).tobytes() == value.tobytes(), name
