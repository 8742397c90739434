"""convert(): options, destination formats, and streaming memory when re-sharding."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

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


MEASURE = textwrap.dedent("""
    import resource, subprocess, sys
    subprocess.run([sys.executable, "-m", "portability.cli", *sys.argv[1:]], check=True)
    print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024)
""")


@pytest.mark.slow
def test_resharding_streams_with_bounded_memory(tmp_path):
    mb = 2**20
    tensors = {f"block.{i}.weight": np.full(25 * mb // 4, i, dtype=np.float32) for i in range(12)}  # 300 MB
    safetensors_format.write(Checkpoint(tensors=tensors), tmp_path / "big.safetensors")
    del tensors
    shard = 160 * 10**6  # six 25 MB tensors a shard: well above the interpreter's own ~70 MB
    proc = subprocess.run([sys.executable, "-c", MEASURE, "convert", str(tmp_path / "big.safetensors"),
                           str(tmp_path / "shards"), "--shard-size", str(shard)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    peak = int(proc.stdout.strip().splitlines()[-1])
    largest = max(p.stat().st_size for p in (tmp_path / "shards").glob("*.safetensors"))
    bound = 1.5 * largest + 300 * mb
    assert peak < bound, f"peak RSS {peak / mb:.0f} MB over bound {bound / mb:.0f} MB"
    # Streaming means far less than one shard is held: 16 MB pieces plus the interpreter.
    assert peak < largest, f"peak RSS {peak / mb:.0f} MB, largest shard {largest / mb:.0f} MB"
    back = safetensors_format.read(tmp_path / "shards")
    assert as_array(back.tensors["block.11.weight"])[-1] == 11
