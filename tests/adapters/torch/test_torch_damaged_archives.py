"""Damaged torch zips: each crash class found by fuzzing gets a typed error naming
the file and the damage, and a checksummed file cannot lose its checksums
silently (the two-flip strip)."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import pytest

import portability
from portability.adapters.torch.archive import PICKLE_MARKER, ZIP_COMMENT
from portability.cli import main
from portability.core.checkpoint import Checkpoint
from portability.core.tensors import as_array, iter_bytes
from portability.errors import FormatError, IntegrityError

torch = pytest.importorskip("torch")


def _ours(path: Path) -> Path:
    from portability.adapters.torch import state_dict

    tensors = {"fc.weight": np.arange(64, dtype=np.float32).reshape(8, 8), "fc.bias": np.ones(8, np.float32)}
    state_dict.write(Checkpoint(tensors=tensors), path)
    return path


def _central_entries(raw: bytes) -> dict[str, int]:
    """Central-directory header offset of every record, by name."""
    found, at = {}, raw.find(b"PK\x01\x02")
    while at >= 0:
        name_len = int.from_bytes(raw[at + 28:at + 30], "little")
        found[raw[at + 46:at + 46 + name_len].decode("utf-8", "replace")] = at
        at = raw.find(b"PK\x01\x02", at + 1)
    return found


def _entry(raw: bytes, suffix: str) -> int:
    return next(at for name, at in _central_entries(raw).items() if name.endswith(suffix))


def _data_start(raw: bytes, suffix: str) -> tuple[int, int]:
    """Where a record's bytes start in the file, and how many there are."""
    central = _entry(raw, suffix)
    local = int.from_bytes(raw[central + 42:central + 46], "little")
    size = int.from_bytes(raw[central + 20:central + 24], "little")
    name_len, extra_len = (int.from_bytes(raw[local + i:local + i + 2], "little") for i in (26, 28))
    return local + 30 + name_len + extra_len, size


def _damaged(tmp_path: Path, edit) -> Path:
    path = _ours(tmp_path / "ckpt.pt")
    raw = bytearray(path.read_bytes())
    edit(raw)
    path.write_bytes(bytes(raw))
    return path


def _set(raw: bytearray, at: int, value: int, width: int) -> None:
    raw[at:at + width] = value.to_bytes(width, "little")


def test_written_files_are_marked_as_ours_in_three_places(tmp_path):
    path = _ours(tmp_path / "ckpt.pt")
    with zipfile.ZipFile(path) as z:
        assert z.comment == ZIP_COMMENT
        names = z.namelist()
        assert any(n.endswith("/portability.json") for n in names)
        assert z.read(next(n for n in names if n.endswith("/data.pkl"))).endswith(PICKLE_MARKER)
    # torch itself still loads the file, marker and all.
    assert torch.equal(torch.load(path, weights_only=True)["fc.bias"], torch.ones(8))
    assert portability.load(path).checksummed


def test_invalid_utf8_in_a_record_name_is_a_format_error(tmp_path):
    path = _damaged(tmp_path, lambda raw: raw.__setitem__(_entry(bytes(raw), "data.pkl") + 46 + 2, 0xFF))
    with pytest.raises(FormatError, match=r"ckpt\.pt: damaged torch zip archive \(UnicodeDecodeError"):
        portability.load(path)


def test_unsupported_zip_version_is_a_format_error(tmp_path):
    path = _damaged(tmp_path, lambda raw: _set(raw, _entry(bytes(raw), "data.pkl") + 6, 0xFF, 2))
    with pytest.raises(FormatError, match=r"ckpt\.pt: damaged torch zip archive \(NotImplementedError: "
                                          r"zip file version 25\.5"):
        portability.load(path)


def test_unknown_compression_method_is_a_format_error(tmp_path):
    path = _damaged(tmp_path, lambda raw: _set(raw, _entry(bytes(raw), "data/0") + 10, 99, 2))
    with pytest.raises(FormatError, match=r"ckpt\.pt: damaged torch zip archive \(record 'archive/data/0' "
                                          r"uses compression method 99"):
        portability.load(path)


def test_compressed_patched_data_flag_is_a_format_error(tmp_path):
    def flag(raw: bytearray) -> None:
        at = _entry(bytes(raw), "data.pkl") + 8
        _set(raw, at, int.from_bytes(raw[at:at + 2], "little") | 0x20, 2)

    path = _damaged(tmp_path, flag)
    with pytest.raises(FormatError, match=r"ckpt\.pt: damaged torch zip archive \(record 'archive/data\.pkl' "
                                          r"sets zip flags torch never writes \(bit 5: compressed patched data\)"):
        portability.load(path)


def test_multi_disk_zip64_locator_is_a_format_error(tmp_path):
    def span_disks(raw: bytearray) -> None:
        end = bytes(raw).rindex(b"PK\x05\x06")
        # A zip64 end-of-directory locator just before the end record, claiming two disks.
        raw[end - 20:end] = b"PK\x06\x07" + (0).to_bytes(4, "little") + (0).to_bytes(8, "little") \
            + (2).to_bytes(4, "little")

    path = _damaged(tmp_path, span_disks)
    with pytest.raises(FormatError, match=r"ckpt\.pt: damaged torch zip archive \(BadZipFile: "
                                          r"zipfiles that span multiple disks"):
        portability.load(path)


def test_flipped_storage_byte_fails_the_zip_crc_even_without_our_checksums(tmp_path):
    path = tmp_path / "plain.pt"
    torch.save({"w": torch.arange(100, dtype=torch.float32)}, path)
    raw = bytearray(path.read_bytes())
    start, _ = _data_start(bytes(raw), "data/0")
    raw[start + 10] ^= 0x04
    path.write_bytes(bytes(raw))
    assert torch.load(path, weights_only=True)["w"][2] != 2.0  # torch itself does not notice
    crc_failure = r"plain\.pt: record 'plain/data/0' fails its zip CRC-32: the data is corrupt"
    # Checked as the bytes are read (like our own checksums), by every way of reading them:
    ckpt = portability.load(path)
    with pytest.raises(IntegrityError, match=crc_failure):
        as_array(ckpt.tensors["w"])
    with pytest.raises(IntegrityError, match=crc_failure):
        list(iter_bytes(ckpt.tensors["w"]))
    with pytest.raises(IntegrityError, match=crc_failure):  # copied file to file, hashed on the side
        portability.convert(path, tmp_path / "out.safetensors")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["plain.pt"]  # nothing half-written


def test_flipped_byte_in_a_storage_no_single_tensor_covers_fails_its_crc_at_once(tmp_path):
    path = tmp_path / "views.pt"
    base = torch.arange(100, dtype=torch.float32)
    torch.save({"head": base[:50], "tail": base[50:]}, path)  # two views of one storage
    raw = bytearray(path.read_bytes())
    start, _ = _data_start(bytes(raw), "data/0")
    raw[start + 10] ^= 0x04
    path.write_bytes(bytes(raw))
    with pytest.raises(IntegrityError, match=r"views\.pt: record 'views/data/0' fails its zip CRC-32"):
        portability.load(path)


def _strip_record_name(raw: bytearray) -> None:
    """One flip in the central-directory name of ``portability.json``: the record is not found."""
    raw[_entry(bytes(raw), "portability.json") + 46 + len("archive/")] ^= 0x01


def _flip_tensor(raw: bytearray) -> None:
    start, size = _data_start(bytes(raw), "data/0")
    raw[start + size // 2] ^= 0x10


def test_two_flip_checksum_strip_is_an_integrity_error(tmp_path):
    path = _damaged(tmp_path, lambda raw: (_flip_tensor(raw), _strip_record_name(raw)))
    with pytest.raises(IntegrityError, match=r"ckpt\.pt: "):
        portability.load(path)


@pytest.mark.parametrize("also_damage_comment", [False, True], ids=["record-name", "record-name-and-comment"])
def test_a_marked_file_without_its_record_is_an_integrity_error(tmp_path, also_damage_comment):
    def edit(raw: bytearray) -> None:
        _strip_record_name(raw)
        if also_damage_comment:  # the marker inside data.pkl still says the file is ours
            at = bytes(raw).rindex(ZIP_COMMENT)
            raw[at] ^= 0x01

    path = _damaged(tmp_path, edit)
    with pytest.raises(IntegrityError, match=r"ckpt\.pt: written by portability but its checksum record "
                                             r"\(portability\.json\) is missing"):
        portability.load(path)


def test_unreadable_record_is_an_integrity_error(tmp_path):
    def break_json(raw: bytearray) -> None:
        start, size = _data_start(bytes(raw), "portability.json")
        raw[start] = ord("[")

    path = _damaged(tmp_path, break_json)
    with pytest.raises(IntegrityError, match=r"ckpt\.pt: .*portability\.json"):
        portability.load(path)


def test_damaged_zip_on_the_command_line_is_one_line_and_exit_2(tmp_path, capsys):
    path = _damaged(tmp_path, lambda raw: _set(raw, _entry(bytes(raw), "data.pkl") + 6, 0xFF, 2))
    assert main(["inspect", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"error: {path}: damaged torch zip archive") and "\n" not in err


def _foreign(path: Path) -> Path:
    torch.save({"w": torch.arange(12.0).reshape(3, 4), "b": torch.ones(3)}, path)
    return path


@pytest.mark.parametrize("header", ["local", "central"])
@pytest.mark.parametrize("bit", range(16))
def test_every_zip_flag_bit_loads_bitwise_or_is_a_format_error(tmp_path, header, bit):
    # zipfile raises NotImplementedError for bits 5 and 6 (patched data, strong encryption):
    # those must reach the user as FormatError naming the file, like any other damage.
    path = _foreign(tmp_path / "model.pt")
    raw = bytearray(path.read_bytes())
    signature, offset = (b"PK\x03\x04", 6) if header == "local" else (b"PK\x01\x02", 8)
    at = raw.find(signature)
    while at >= 0:
        raw[at + offset + bit // 8] |= 1 << (bit % 8)
        at = raw.find(signature, at + 1)
    path.write_bytes(bytes(raw))
    try:
        ckpt = portability.load(path)
        loaded = {name: as_array(t) for name, t in ckpt.tensors.items()}
    except FormatError as exc:
        assert str(exc).startswith(f"{path}: ")
        return
    # zipfile reads the flags of the central directory; a local header's are not consulted.
    assert header == "local" or bit not in (0, 5, 6, 13), f"flag bit {bit} of the {header} headers was accepted"
    np.testing.assert_array_equal(loaded["w"], np.arange(12.0, dtype=np.float32).reshape(3, 4))
    np.testing.assert_array_equal(loaded["b"], np.ones(3, np.float32))
