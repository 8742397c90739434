"""The legacy-format size check counts each storage once, however many tensors view it."""

from __future__ import annotations

import pytest
import torch

from portability.adapters.torch.legacy_sizes import check_legacy_sizes
from portability.errors import FormatError


def _legacy_save(obj, path):
    torch.save(obj, path, _use_new_zipfile_serialization=False)


def test_views_of_one_storage_are_counted_once(tmp_path):
    base = torch.arange(4096, dtype=torch.float32)  # 16 KiB, viewed by four tensors
    path = tmp_path / "views.pt"
    _legacy_save({f"w{i}": base[i * 1024:(i + 1) * 1024] for i in range(4)}, path)
    assert path.stat().st_size < 2 * base.numel() * 4  # the storage is in the file once
    check_legacy_sizes(path)  # passes: 16 KiB declared once, not four times
    back = torch.load(path, weights_only=True)
    assert torch.equal(torch.cat([back[f"w{i}"] for i in range(4)]), base)


def test_a_storage_larger_than_the_file_is_refused(tmp_path):
    path = tmp_path / "one.pt"
    _legacy_save({"w": torch.zeros(1024)}, path)
    data = bytearray(path.read_bytes())
    # The object pickle declares the element count as a protocol-2 BININT (K/M/J) after the
    # location string; make the storage claim far more elements than the file holds.
    marker = b"cpu"
    at = data.index(marker) + len(marker)
    opcode = data.index(b"M", at)  # BININT2 with 1024
    assert data[opcode + 1:opcode + 3] == (1024).to_bytes(2, "little")
    data[opcode:opcode + 3] = b"J" + (1 << 30).to_bytes(4, "little")  # BININT: 2**30 elements
    path.write_bytes(bytes(data))
    with pytest.raises(FormatError, match=r"one\.pt: corrupt legacy torch file: its storages declare \d+ bytes"):
        check_legacy_sizes(path)
