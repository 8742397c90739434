"""safetensors: single files, the Hugging Face sharded layout, compatibility, integrity."""

from __future__ import annotations

import json
import re

import ml_dtypes
import numpy as np
import pytest

from portability.adapters.safetensors import format as safetensors_format
from portability.core.checkpoint import Checkpoint
from portability.core.conversion import convert
from portability.core.formats import WriteOptions
from portability.core.inspection import inspect_checkpoint
from portability.core.tensors import as_array
from portability.errors import IntegrityError

safetensors = pytest.importorskip("safetensors")
from safetensors import safe_open
from safetensors.numpy import load_file, save_file


def sample_checkpoint(layers: int = 6) -> Checkpoint:
    rng = np.random.default_rng(0)
    tensors = {}
    for i in range(layers):
        tensors[f"layer.{i}.weight"] = rng.standard_normal((64, 32)).astype(np.float32)
        tensors[f"layer.{i}.bias"] = rng.standard_normal(32).astype(np.float16)
    tensors["embed"] = rng.standard_normal((100, 16)).astype(ml_dtypes.bfloat16)
    tensors["head"] = tensors["embed"]
    return Checkpoint(tensors=tensors, aliases={"head": "embed"}, metadata={"source": "test"})


def assert_same_checkpoint(expected: Checkpoint, got: Checkpoint) -> None:
    assert list(got.tensors) == list(expected.tensors)
    assert got.aliases == expected.aliases
    for name, tensor in expected.tensors.items():
        a, b = as_array(tensor), as_array(got.tensors[name])
        assert a.dtype == b.dtype and a.shape == b.shape, name
        assert a.tobytes() == b.tobytes(), name


def test_single_file_round_trip(tmp_path):
    ckpt = sample_checkpoint()
    safetensors_format.write(ckpt, tmp_path / "m.safetensors")
    back = safetensors_format.read(tmp_path / "m.safetensors")
    assert_same_checkpoint(ckpt, back)
    assert back.metadata == {"source": "test", "format": "pt"}
    assert back.checksummed


def test_sharded_layout_matches_hugging_face(tmp_path):
    ckpt = sample_checkpoint()
    safetensors_format.write(ckpt, tmp_path / "out", WriteOptions(shard_size=20_000))
    files = sorted(p.name for p in (tmp_path / "out").iterdir())
    shards = [f for f in files if f.endswith(".safetensors")]
    assert len(shards) >= 3
    n = len(shards)
    assert shards == [f"model-{k:05d}-of-{n:05d}.safetensors" for k in range(1, n + 1)]
    assert files == sorted(shards + ["model.safetensors.index.json"])

    index = json.loads((tmp_path / "out" / "model.safetensors.index.json").read_text())
    canonical = ckpt.canonical_names()
    assert set(index["weight_map"]) == set(canonical)
    assert set(index["weight_map"].values()) == set(shards)
    assert index["metadata"]["total_size"] == sum(ckpt.tensors[n].nbytes for n in canonical)
    for shard in shards:  # every shard stays under the limit (no single tensor exceeds it here)
        assert (tmp_path / "out" / shard).stat().st_size < 20_000 + 4096

    # The safetensors package reads our shards, and finds each tensor where the index says.
    for name, shard in index["weight_map"].items():
        with safe_open(str(tmp_path / "out" / shard), framework="pt") as f:
            assert name in f.keys()
            assert f.get_tensor(name).numel() == as_array(ckpt.tensors[name]).size

    for target in (tmp_path / "out", tmp_path / "out" / "model.safetensors.index.json"):
        back = safetensors_format.read(target)
        assert_same_checkpoint(ckpt, back)
        assert back.checksummed


def test_safetensors_package_reads_our_files_bitwise(tmp_path):
    ckpt = sample_checkpoint()
    safetensors_format.write(ckpt, tmp_path / "m.safetensors")
    plain = {k: v for k, v in ckpt.tensors.items() if v.dtype != ml_dtypes.bfloat16}
    loaded = load_file(str(tmp_path / "m.safetensors"))
    for name, tensor in plain.items():
        assert loaded[name].dtype == tensor.dtype
        assert loaded[name].tobytes() == tensor.tobytes(), name
    torch = pytest.importorskip("torch")
    with safe_open(str(tmp_path / "m.safetensors"), framework="pt") as f:
        embed = f.get_tensor("embed")
        assert embed.dtype == torch.bfloat16
        assert embed.view(torch.int16).numpy().tobytes() == ckpt.tensors["embed"].tobytes()
        assert f.metadata()["source"] == "test"


def test_files_from_the_safetensors_package_read_without_checksums(tmp_path):
    arrays = {"a": np.arange(10, dtype=np.int64), "b": np.ones((2, 3), dtype=np.float32)}
    save_file(arrays, str(tmp_path / "other.safetensors"), metadata={"format": "np"})
    back = safetensors_format.read(tmp_path / "other.safetensors")
    assert not back.checksummed
    for name, value in arrays.items():
        assert np.array_equal(as_array(back.tensors[name]), value)
    assert inspect_checkpoint(tmp_path / "other.safetensors")["integrity"]["status"] == "no-checksums"


@pytest.mark.parametrize("new_size", ["30KB", "9KB", None])
def test_resharding_is_bitwise(tmp_path, new_size):
    ckpt = sample_checkpoint()
    safetensors_format.write(ckpt, tmp_path / "a", WriteOptions(shard_size=20_000))
    dst = tmp_path / ("b" if new_size else "b.safetensors")
    convert(tmp_path / "a", dst, shard_size=new_size)
    back = safetensors_format.read(dst)
    assert_same_checkpoint(ckpt, back)
    if new_size:
        limit = {"30KB": 30_000, "9KB": 9_000}[new_size]
        index = json.loads((dst / "model.safetensors.index.json").read_text())
        shards = sorted(set(index["weight_map"].values()))
        source_shards = len(list((tmp_path / "a").glob("*.safetensors")))
        assert len(shards) != source_shards
        for shard in shards:
            raw = (dst / shard).read_bytes()
            n = int.from_bytes(raw[:8], "little")
            assert len(raw) - 8 - n <= limit, shard


def test_shard_larger_than_checkpoint_gives_one_file(tmp_path):
    safetensors_format.write(sample_checkpoint(), tmp_path / "d", WriteOptions(shard_size=10**9))
    assert sorted(p.name for p in (tmp_path / "d").iterdir()) == ["model.safetensors"]


def flip_byte_in_tensor(path, name: str) -> None:
    raw = bytearray(path.read_bytes())
    n = int.from_bytes(raw[:8], "little")
    begin, _end = json.loads(raw[8 : 8 + n])[name]["data_offsets"]
    raw[8 + n + begin] ^= 0x40
    path.write_bytes(bytes(raw))


def test_flipped_byte_is_an_integrity_error_naming_the_tensor(tmp_path):
    safetensors_format.write(sample_checkpoint(), tmp_path / "m.safetensors")
    flip_byte_in_tensor(tmp_path / "m.safetensors", "layer.3.weight")
    ckpt = safetensors_format.read(tmp_path / "m.safetensors")
    as_array(ckpt.tensors["layer.2.weight"])  # untouched tensors still read
    with pytest.raises(IntegrityError, match=re.escape("'layer.3.weight'")):
        as_array(ckpt.tensors["layer.3.weight"])


def test_flipped_byte_in_a_shard_names_the_tensor(tmp_path):
    safetensors_format.write(sample_checkpoint(), tmp_path / "d", WriteOptions(shard_size=20_000))
    index = json.loads((tmp_path / "d" / "model.safetensors.index.json").read_text())
    flip_byte_in_tensor(tmp_path / "d" / index["weight_map"]["embed"], "embed")
    info = inspect_checkpoint(tmp_path / "d")
    assert info["integrity"]["status"] == "failed"
    assert "'embed'" in info["integrity"]["message"]


def test_header_is_aligned_and_checksums_recorded(tmp_path):
    safetensors_format.write(sample_checkpoint(), tmp_path / "m.safetensors")
    raw = (tmp_path / "m.safetensors").read_bytes()
    n = int.from_bytes(raw[:8], "little")
    assert (8 + n) % 8 == 0
    meta = json.loads(raw[8 : 8 + n])["__metadata__"]
    sums = json.loads(meta["portability.checksums"])
    assert set(sums) == set(sample_checkpoint().canonical_names())
    assert all(re.fullmatch(r"[0-9a-f]{16}", v) for v in sums.values())


def test_sharded_checkpoint_written_by_other_tools(tmp_path):
    """The Hugging Face layout as transformers writes it: plain shards plus an index."""
    shards = {"model-00001-of-00002.safetensors": {"a.weight": np.arange(6, dtype=np.float32).reshape(2, 3)},
              "model-00002-of-00002.safetensors": {"b.weight": np.ones(4, dtype=np.float16),
                                                   "b.bias": np.zeros(2, dtype=np.int64)}}
    weight_map = {}
    for shard, arrays in shards.items():
        save_file(arrays, str(tmp_path / shard), metadata={"format": "pt"})
        weight_map.update({name: shard for name in arrays})
    index = {"metadata": {"total_size": 56}, "weight_map": weight_map}
    (tmp_path / "model.safetensors.index.json").write_text(json.dumps(index))
    back = safetensors_format.read(tmp_path)
    assert not back.checksummed
    assert set(back.tensors) == set(weight_map)
    for arrays in shards.values():
        for name, value in arrays.items():
            assert np.array_equal(as_array(back.tensors[name]), value) and back.tensors[name].dtype == value.dtype
    convert(tmp_path, tmp_path / "merged.safetensors")
    assert set(load_file(str(tmp_path / "merged.safetensors"))) == set(weight_map)
