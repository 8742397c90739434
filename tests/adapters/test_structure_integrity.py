"""Damage outside tensor data (training-state JSON, the pickled structure) is detected."""

from __future__ import annotations

import json
import struct
import zipfile
import zlib
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from portability.adapters.safetensors import format as safetensors_format
from portability.adapters.torch import state_dict as torch_state_dict
from portability.cli import main
from portability.errors import IntegrityError


def _training_checkpoint():
    torch.manual_seed(0)
    model = torch.nn.Linear(3, 2)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    model(torch.randn(4, 3)).sum().backward()
    opt.step()
    return torch_state_dict.checkpoint_from_object(
        {"model_state_dict": model.state_dict(), "optimizer_state_dict": opt.state_dict(), "epoch": 7})


def _rewrite_header(path: Path, edit) -> None:
    data = path.read_bytes()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n])
    edit(header)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (n - len(text))
    assert len(text) == n, "edit must not grow the header"
    path.write_bytes(data[:8] + text + data[8 + n:])


def test_changed_learning_rate_in_safetensors_metadata_is_detected(tmp_path, capsys):
    path = tmp_path / "ckpt.safetensors"
    safetensors_format.write(_training_checkpoint(), path)
    assert safetensors_format.read(path).training.optimizer.param_groups[0]["lr"] == 1e-3

    def bump_lr(header):
        meta = header["__metadata__"]
        meta["portability.training"] = meta["portability.training"].replace('"lr": 0.001', '"lr": 0.003')

    _rewrite_header(path, bump_lr)
    with pytest.raises(IntegrityError, match="metadata does not match its checksum"):
        safetensors_format.read(path)
    assert main(["inspect", str(path)]) != 0
    assert "metadata does not match its checksum" in capsys.readouterr().out


def test_renamed_tensor_in_header_is_detected(tmp_path):
    path = tmp_path / "ckpt.safetensors"
    safetensors_format.write(_training_checkpoint(), path)

    def rename(header):
        header["wxight"] = header.pop("weight")

    _rewrite_header(path, rename)
    with pytest.raises(IntegrityError, match="'wxight' has no recorded checksum"):
        safetensors_format.read(path)


def _central_entry(raw: bytes, name: str) -> int:
    """Offset of the central-directory header of the zip record ``name``."""
    at = raw.find(b"PK\x01\x02")
    while at >= 0:
        name_len = int.from_bytes(raw[at + 28:at + 30], "little")
        if raw[at + 46:at + 46 + name_len] == name.encode():
            return at
        at = raw.find(b"PK\x01\x02", at + 1)
    raise AssertionError(f"no central-directory entry for {name}")


def test_flipped_bit_in_torch_pickle_is_detected_before_unpickling(tmp_path, monkeypatch):
    path = tmp_path / "ckpt.pt"
    torch_state_dict.write(_training_checkpoint(), path)
    with zipfile.ZipFile(path) as z:
        info = next(i for i in z.infolist() if i.filename.endswith("/data.pkl"))
    raw = bytearray(path.read_bytes())
    name_len, extra_len = struct.unpack("<HH", raw[info.header_offset + 26:info.header_offset + 30])
    start = info.header_offset + 30 + name_len + extra_len  # torch pads the local extra field
    raw[start + info.file_size // 2] ^= 0x01
    # Keep the zip's CRC-32 consistent, so the pickle digest is what must notice.
    central = _central_entry(bytes(raw), info.filename)
    crc = zlib.crc32(bytes(raw[start:start + info.file_size]))
    raw[central + 16:central + 20] = crc.to_bytes(4, "little")
    path.write_bytes(bytes(raw))
    calls = []
    monkeypatch.setattr(torch_state_dict, "load_pickle", lambda *a, **k: calls.append(a))
    with pytest.raises(IntegrityError, match="pickled structure"):
        torch_state_dict.read(path)
    assert calls == [], "the damaged pickle must not be unpickled"


def test_files_from_other_tools_still_read(tmp_path):
    import numpy as np
    from safetensors.numpy import save_file

    save_file({"w": np.ones(3, np.float32)}, str(tmp_path / "plain.safetensors"), metadata={"format": "pt"})
    torch.save({"w": torch.ones(3)}, tmp_path / "plain.pt")
    assert safetensors_format.read(tmp_path / "plain.safetensors").checksummed is False
    assert torch_state_dict.read(tmp_path / "plain.pt").checksummed is False


def test_flipped_data_byte_is_caught_by_both_read_paths(tmp_path):
    import numpy as np

    from portability.core.checkpoint import Checkpoint
    from portability.core.tensors import as_array, iter_bytes

    path = tmp_path / "w.safetensors"
    values = np.arange(1000, dtype=np.float32)
    safetensors_format.write(Checkpoint(tensors={"a": np.zeros(3, np.float32), "w": values}), path)
    np.testing.assert_array_equal(as_array(safetensors_format.read(path).tensors["w"]), values)
    raw = bytearray(path.read_bytes())
    raw[-10] ^= 0x40  # inside the last tensor, 'w'
    path.write_bytes(bytes(raw))
    damaged = safetensors_format.read(path)
    np.testing.assert_array_equal(as_array(damaged.tensors["a"]), np.zeros(3, np.float32))
    with pytest.raises(IntegrityError, match="checksum mismatch for tensor 'w'"):
        as_array(damaged.tensors["w"])  # read_into: straight into the array
    with pytest.raises(IntegrityError, match="checksum mismatch for tensor 'w'"):
        b"".join(iter_bytes(damaged.tensors["w"]))  # streamed pieces


def test_truncated_data_is_reported_by_the_in_place_read(tmp_path):
    import numpy as np

    from portability.core.checkpoint import Checkpoint
    from portability.core.tensors import as_array
    from portability.errors import FormatError

    path = tmp_path / "w.safetensors"
    safetensors_format.write(Checkpoint(tensors={"w": np.ones(1000, np.float32)}), path)
    ckpt = safetensors_format.read(path)  # header checked while the file was whole
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(FormatError, match="truncated"):
        as_array(ckpt.tensors["w"])
