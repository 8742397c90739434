"""A safetensors file we wrote cannot lose its checksums silently: damage that hides
the checksum record (a renamed or dropped metadata key, unparsable JSON) is an
IntegrityError, never a file read as unchecksummed."""

from __future__ import annotations

import json
import struct

import numpy as np
import pytest

import portability
from portability.adapters.safetensors import format as safetensors_format
from portability.core.checkpoint import Checkpoint
from portability.core.tensors import as_array
from portability.errors import IntegrityError


def _ours(path):
    safetensors_format.write(Checkpoint(tensors={"w": np.arange(16, dtype=np.float32)}), path)
    return path


def _edit_header(path, edit) -> None:
    raw = path.read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + n])
    edit(header)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (n - len(text))  # same length: the data offsets stay valid
    assert len(text) == n
    path.write_bytes(raw[:8] + text + raw[8 + n:])


def _flip_data(path) -> None:
    raw = bytearray(path.read_bytes())
    raw[-5] ^= 0x01
    path.write_bytes(bytes(raw))


def test_two_flip_strip_renamed_checksum_key_and_changed_data(tmp_path):
    path = _ours(tmp_path / "m.safetensors")

    def rename(header):
        meta = header["__metadata__"]
        meta["portability.checksumz"] = meta.pop("portability.checksums")

    _edit_header(path, rename)
    _flip_data(path)
    with pytest.raises(IntegrityError, match=r"m\.safetensors: "):
        as_array(portability.load(path).tensors["w"])


@pytest.mark.parametrize("damage", ["drop-checksums", "drop-checksums-and-digest", "checksums-not-json"])
def test_marked_file_without_readable_checksums_is_an_integrity_error(tmp_path, damage):
    path = _ours(tmp_path / "m.safetensors")

    def edit(header):
        meta = header["__metadata__"]
        if damage == "checksums-not-json":
            meta["portability.checksums"] = "{" + meta["portability.checksums"][1:-1]
            return
        del meta["portability.checksums"]
        if damage == "drop-checksums-and-digest":
            del meta["portability.metadata_digest"]

    _edit_header(path, edit)
    with pytest.raises(IntegrityError, match=r"m\.safetensors: .*checksum record \(portability\.checksums\)"):
        portability.load(path)


def test_unmarked_files_still_read_without_checksums(tmp_path):
    from safetensors.numpy import save_file

    save_file({"w": np.ones(3, np.float32)}, str(tmp_path / "plain.safetensors"), metadata={"format": "pt"})
    assert portability.load(tmp_path / "plain.safetensors").checksummed is False


def test_index_that_lost_its_metadata_key_is_an_integrity_error(tmp_path):
    # Found by fuzzing: one flipped bit renamed "metadata" and the shards loaded
    # without their training state.
    pytest.importorskip("torch")
    from fuzz_seeds import torch_zip

    from portability.adapters.torch import state_dict
    from portability.core.options import WriteOptions

    source = torch_zip(tmp_path / "torch")[0].path
    safetensors_format.write(state_dict.read(source), tmp_path / "sharded", WriteOptions(shard_size=200))
    index = tmp_path / "sharded" / "model.safetensors.index.json"
    assert portability.load(tmp_path / "sharded").training is not None
    index.write_text(index.read_text().replace('"metadata"', '"met!data"', 1))
    with pytest.raises(IntegrityError, match=r"index\.json: the shards were written by portability but the "
                                             r"index has lost its portability metadata"):
        portability.load(tmp_path / "sharded")
