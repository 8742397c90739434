"""Torch zip checkpoints stream: structure read without torch, bytes copied file to file.

Views, ties, training state and checksums must come out exactly as the in-memory
path (``torch.load``) gives them; files the structure reader does not handle fall
back to it.
"""

from __future__ import annotations

import os
import struct
import subprocess
import sys
import zipfile

import numpy as np
import pytest
import torch

from portability.adapters.torch import state_dict, streaming
from portability.adapters.torch.adapter import TorchAdapter
from portability.adapters.torch.numpy_bridge import tensor_to_numpy
from portability.adapters.torch.zip_structure import read_structure
from portability.core import file_copy, integrity
from portability.core.conversion import convert, read_checkpoint
from portability.core.hashing_copier import HashingCopier
from portability.core.options import ReadOptions
from portability.core.tensors import LazyTensor, as_array
from portability.errors import IntegrityError


def _bits(t: torch.Tensor) -> bytes:
    return np.ascontiguousarray(tensor_to_numpy(t.detach())).tobytes()


def _views() -> dict[str, torch.Tensor]:
    torch.manual_seed(0)
    base = torch.randn(6, 5)
    shared = torch.arange(40, dtype=torch.int64)
    return {
        "base": base,
        "transposed": base.t(),  # a strided view of the same storage
        "rows": base[2:4],  # a contiguous slice at an offset
        "tied": base,  # the same view twice: a tie
        "cols": base[:, 1],  # strided slice
        "first": shared[:10],
        "second": shared[10:30].view(4, 5),  # two tensors in one storage
        "half": torch.randn(3, dtype=torch.bfloat16),
        "flag": torch.tensor([True, False]),
        "scalar": torch.tensor(2.5),
        "empty": torch.zeros(0, 3),
        "param": torch.nn.Parameter(torch.ones(2, 2)),
    }


def test_views_ties_and_shared_storages_read_bitwise_as_lazy_tensors(tmp_path):
    sd = _views()
    torch.save(sd, tmp_path / "views.pt")
    ckpt = TorchAdapter().read(tmp_path / "views.pt")
    assert all(isinstance(t, LazyTensor) for t in ckpt.tensors.values())
    assert ckpt.aliases == {"tied": "base"}
    assert ckpt.tensors["rows"].file_range is not None and ckpt.tensors["transposed"].file_range is None
    for name, tensor in sd.items():
        got = as_array(ckpt.tensors[name])
        assert got.shape == tuple(tensor.shape) and got.tobytes() == _bits(tensor), name
        assert b"".join(ckpt.tensors[name].read_chunks(7)) == _bits(tensor), name


def test_torch_to_safetensors_and_back_is_bitwise_with_ties_kept(tmp_path):
    sd = _views()
    torch.save(sd, tmp_path / "views.pt")
    convert(tmp_path / "views.pt", tmp_path / "views.safetensors")
    convert(tmp_path / "views.safetensors", tmp_path / "back.pt")
    loaded = torch.load(tmp_path / "back.pt", weights_only=True, mmap=True)
    assert list(loaded) == list(sd)
    for name, tensor in sd.items():
        assert loaded[name].dtype == tensor.dtype and _bits(loaded[name]) == _bits(tensor), name
    assert loaded["tied"].data_ptr() == loaded["base"].data_ptr()
    with zipfile.ZipFile(tmp_path / "back.pt") as z:
        assert z.testzip() is None
    structure = read_structure(tmp_path / "back.pt")
    assert all(ref.storage.offset % 64 == 0 for ref in structure.obj.values())
    again, _ = read_checkpoint(tmp_path / "back.pt")
    assert again.checksummed and again.aliases == {"tied": "base"}


def test_training_checkpoints_keep_their_state_through_the_streaming_reader(tmp_path):
    torch.manual_seed(0)
    model = torch.nn.Linear(4, 3)
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    model(torch.randn(2, 4)).sum().backward()
    opt.step()
    obj = {"model_state_dict": model.state_dict(), "optimizer_state_dict": opt.state_dict(), "epoch": 3,
           "loss": 0.5}
    torch.save(obj, tmp_path / "train.pt")
    lazy = streaming.read_lazy(tmp_path / "train.pt", ReadOptions())
    eager = state_dict.read(tmp_path / "train.pt")
    assert lazy is not None and lazy.layout == eager.layout == "classic"
    assert lazy.training.epoch == 3 and lazy.training.loss == 0.5
    assert lazy.training.optimizer.kind == eager.training.optimizer.kind == "Adam"
    for pid, state in eager.training.optimizer.state.items():
        for key, value in state.items():
            assert np.asarray(lazy.training.optimizer.state[pid][key]).tobytes() == np.asarray(value).tobytes()
    assert lazy.training.extra == eager.training.extra
    convert(tmp_path / "train.pt", tmp_path / "train.safetensors")
    convert(tmp_path / "train.safetensors", tmp_path / "again.pt")
    back = torch.load(tmp_path / "again.pt", weights_only=True)
    assert list(back) == list(obj) and back["epoch"] == 3
    assert _bits(back["optimizer_state_dict"]["state"][0]["exp_avg"]) == _bits(opt.state_dict()["state"][0]["exp_avg"])


def test_a_flipped_bit_in_a_streamed_tensor_fails_its_checksum_naming_it(tmp_path):
    torch.save({"w": torch.ones(64, 64), "b": torch.zeros(64)}, tmp_path / "a.pt")
    convert(tmp_path / "a.pt", tmp_path / "a.safetensors")
    convert(tmp_path / "a.safetensors", tmp_path / "ours.pt")  # ours records checksums
    offset = read_structure(tmp_path / "ours.pt").obj["w"].storage.offset
    data = bytearray((tmp_path / "ours.pt").read_bytes())
    data[offset + 100] ^= 0x01
    (tmp_path / "ours.pt").write_bytes(bytes(data))
    with pytest.raises(IntegrityError, match=r"checksum mismatch for tensor 'w' in .*ours\.pt"):
        as_array(TorchAdapter().read(tmp_path / "ours.pt").tensors["w"])
    with pytest.raises(IntegrityError, match=r"checksum mismatch for tensor 'w'"):
        convert(tmp_path / "ours.pt", tmp_path / "out.safetensors")
    assert not (tmp_path / "out.safetensors").exists()


def test_legacy_and_unusual_pickles_fall_back_to_torch_load(tmp_path):
    torch.save({"w": torch.ones(2)}, tmp_path / "legacy.pt", _use_new_zipfile_serialization=False)
    assert streaming.read_lazy(tmp_path / "legacy.pt", ReadOptions()) is None
    assert as_array(TorchAdapter().read(tmp_path / "legacy.pt").tensors["w"]).tolist() == [1.0, 1.0]
    torch.save({"w": torch.ones(2), "size": torch.Size([2])}, tmp_path / "size.pt")
    assert streaming.read_lazy(tmp_path / "size.pt", ReadOptions()) is None


def test_torch_to_safetensors_imports_no_torch(tmp_path):
    torch.save({"w": torch.ones(3, 3)}, tmp_path / "w.pt")
    code = ("import sys; from portability.core.conversion import convert; "
            f"convert({str(tmp_path / 'w.pt')!r}, {str(tmp_path / 'w.safetensors')!r}); "
            f"convert({str(tmp_path / 'w.safetensors')!r}, {str(tmp_path / 'w2.pt')!r}); "
            "print('torch' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"


def test_file_copies_fall_back_and_hash_what_they_copy(tmp_path, monkeypatch):
    payload = os.urandom(3 * file_copy.BUFFER_BYTES // 2 + 17)
    (tmp_path / "src").write_bytes(b"x" * 5 + payload)
    for disabled in (None, "copy_file_range"):
        if disabled:
            monkeypatch.delattr(os, disabled)
            monkeypatch.setattr(os, "sendfile", _refuse)
        with open(tmp_path / "dst", "wb") as f:
            f.write(b"head")
            f.flush()
            with open(tmp_path / "src", "rb") as src:
                file_copy.copy_fd(src.fileno(), 5, len(payload), f.fileno(), 4, str(tmp_path / "src"))
        assert (tmp_path / "dst").read_bytes() == b"head" + payload
    fd = os.open(tmp_path / "dst2", os.O_WRONLY | os.O_CREAT)
    try:
        with HashingCopier(fd) as copier:
            copier.copy(str(tmp_path / "src"), 5, len(payload), 0)
            copier.copy(str(tmp_path / "src"), 0, 5, len(payload))
            digests = [sums.digest for sums in copier.finish()]
    finally:
        os.close(fd)
    assert digests == [integrity.digest([payload]), integrity.digest([b"x" * 5])]
    assert (tmp_path / "dst2").read_bytes() == payload + b"x" * 5


def _refuse(*args):
    raise OSError(22, "Invalid argument")


def _text(value: str) -> bytes:
    raw = value.encode()
    return b"X" + struct.pack("<I", len(raw)) + raw


def test_a_pickle_that_rewrites_a_storage_reference_falls_back_instead_of_copying_other_files(tmp_path):
    torch.save({"w": torch.ones(4)}, tmp_path / "w.pt")
    with zipfile.ZipFile(tmp_path / "w.pt") as z:
        records = {n: z.read(n) for n in z.namelist()}
    pkl = next(n for n in records if n.endswith("data.pkl"))
    # {"w": tensor on storage "0"}, then BUILD on that storage with {"path": "/etc/passwd"}.
    records[pkl] = (
        b"\x80\x02}" + _text("w") + b"ctorch._utils\n_rebuild_tensor_v2\n("
        + b"(" + _text("storage") + b"ctorch\nFloatStorage\n" + _text("0") + _text("cpu") + b"K\x04tQq\x01"
        + b"K\x00K\x04\x85K\x01\x85\x89ccollections\nOrderedDict\n)RtRs"
        + b"h\x01}" + _text("path") + _text("/etc/passwd") + b"sb0."
    )
    with zipfile.ZipFile(tmp_path / "evil.pt", "w") as z:
        for name, payload in records.items():
            z.writestr(name, payload)
    assert streaming.read_lazy(tmp_path / "evil.pt", ReadOptions()) is None
    records[pkl] = records[pkl][:-len(b"h\x01}" + _text("path") + _text("/etc/passwd") + b"sb0.")] + b"."
    with zipfile.ZipFile(tmp_path / "plain.pt", "w") as z:
        for name, payload in records.items():
            z.writestr(name, payload)
    assert as_array(streaming.read_lazy(tmp_path / "plain.pt", ReadOptions()).tensors["w"]).tolist() == [1.0] * 4


def test_a_foreign_files_storage_crcs_are_checked_during_the_copy_not_in_a_pass_before(tmp_path, monkeypatch):
    from portability.adapters.torch import archive

    torch.manual_seed(1)
    weights = {"a": torch.randn(300, 100), "b": torch.randn(7)}
    torch.save({"model": weights, "optimizer": {"state": {0: {"step": torch.tensor(3.0)}},
                                                "param_groups": [{"lr": 0.1, "params": [0]}]}}, tmp_path / "m.pt")
    hashed = []
    real_range_crc = archive._range_crc
    monkeypatch.setattr(archive, "_range_crc", lambda fd, start, length: hashed.append(length)
                        or real_range_crc(fd, start, length))
    ckpt, _ = read_checkpoint(tmp_path / "m.pt")
    crcs = {name: t.crc for name, t in ckpt.tensors.items()}
    assert all(crc is not None for crc in crcs.values())  # each weight covers its storage whole
    assert sum(hashed) < 4096  # before the copy: the pickle and small records, no weight storage
    assert 4 in hashed  # the optimizer's step storage is not a weight: checked at once
    convert(tmp_path / "m.pt", tmp_path / "m.safetensors")
    back, _ = read_checkpoint(tmp_path / "m.safetensors")
    assert {n: as_array(t).tobytes() for n, t in back.tensors.items()} == {n: _bits(t) for n, t in weights.items()}
