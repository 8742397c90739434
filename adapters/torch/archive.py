"""The zip layer of torch checkpoint files, with every failure on damaged input typed.

Python's ``zipfile`` raises a zoo of exceptions on damaged archives
(``BadZipFile``, ``NotImplementedError`` for "zip file version", "compression
method" or "compressed patched data", ``UnicodeDecodeError`` for a flipped bit
in a UTF-8 name, ``struct.error``, ``zlib.error``...). Every access goes through
``TorchArchive`` so that each becomes a ``FormatError`` naming the file and the
damage. The archive is also checked structurally before torch sees it: torch
writes every record uncompressed, unencrypted and inside the file, so anything
else is damage, found before any allocation sized by the archive's own fields.

torch does not verify the zip's CRC-32 of its storage records (neither when it
memory-maps them nor when it copies them), so ``verify_crcs`` does.

Files this project writes are marked in three places: the zip comment, a
trailer after the pickle's STOP opcode in ``data.pkl`` (unpicklers stop at STOP
and never read it) and the ``portability.json`` record itself.
"""

from __future__ import annotations

import json
import mmap
import os
import struct
import zipfile
import zlib
from collections.abc import Collection, Iterator
from contextlib import contextmanager
from pathlib import Path

from portability.core.integrity import crc32, digest
from portability.errors import FormatError, IntegrityError

RECORD = "portability.json"
ZIP_COMMENT = b"portability checkpoint/1"
PICKLE_MARKER = b"\x00portability checkpoint/1\x00"
CRC_CHUNK = 16 << 20
# What zipfile (and the struct/zlib layers under it) raise on damaged input.
ZIP_ERRORS: tuple[type[BaseException], ...] = (
    zipfile.BadZipFile, zipfile.LargeZipFile, NotImplementedError, UnicodeDecodeError, ValueError,
    EOFError, OSError, struct.error, zlib.error, OverflowError, KeyError, IndexError)


# General-purpose flag bits of zip features torch never writes and zipfile cannot read
# (APPNOTE 4.4.4); bit 0, encryption, has its own message above.
UNSUPPORTED_FLAG_BITS = {5: "compressed patched data", 6: "strong encryption",
                         13: "encrypted central directory"}


def describe(exc: BaseException) -> str:
    """``Type: first line`` of an exception, for one-line messages."""
    lines = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {lines[0]}" if lines else type(exc).__name__


@contextmanager
def typed_zip_errors(path: Path, what: str = "torch zip archive") -> Iterator[None]:
    """Turn any zip-layer exception raised inside the block into a ``FormatError``.

    Raises:
        FormatError: naming ``path`` and the damage.
    """
    try:
        yield
    except ZIP_ERRORS as exc:
        raise FormatError(f"{path}: damaged {what} ({describe(exc)})") from exc


def starts_like_zip(path: Path) -> bool:
    """Whether the file begins with a zip local-file header."""
    try:
        with open(path, "rb") as f:
            return f.read(4) == b"PK\x03\x04"
    except OSError:
        return False


class TorchArchive:
    """An open, structurally checked torch zip archive.

    Use as a context manager; every method raises ``FormatError`` (never a
    zipfile exception) on damage.
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        with typed_zip_errors(self.path):
            self.size = self.path.stat().st_size
            self._zip = zipfile.ZipFile(self.path)
            self.infos = self._zip.infolist()
            self.comment = self._zip.comment
        try:
            self._check_structure()
        except FormatError:
            self._zip.close()
            raise

    def __enter__(self) -> TorchArchive:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def close(self) -> None:
        """Close the archive."""
        self._zip.close()

    def _check_structure(self) -> None:
        """Refuse what torch never writes, before anything sized by the archive is read.

        Raises:
            FormatError: no records, a compressed or encrypted record, or a record
                whose declared extent runs past the end of the file.
        """
        if not self.infos:
            raise FormatError(f"{self.path}: damaged torch zip archive (no records)")
        for info in self.infos:
            where = f"{self.path}: damaged torch zip archive (record {info.filename!r}"
            if info.compress_type != zipfile.ZIP_STORED:
                raise FormatError(f"{where} uses compression method {info.compress_type}; "
                                  "torch stores records uncompressed)")
            if info.flag_bits & 0x1:
                raise FormatError(f"{where} is marked encrypted)")
            unsupported = [bit for bit in UNSUPPORTED_FLAG_BITS if info.flag_bits & (1 << bit)]
            if unsupported:
                features = ", ".join(f"bit {bit}: {UNSUPPORTED_FLAG_BITS[bit]}" for bit in unsupported)
                raise FormatError(f"{where} sets zip flags torch never writes ({features}))")
            if info.file_size != info.compress_size or info.header_offset + info.compress_size > self.size:
                raise FormatError(f"{where} declares {info.file_size} bytes at offset "
                                  f"{info.header_offset}, past the file's {self.size} bytes)")

    def find(self, suffix: str) -> zipfile.ZipInfo | None:
        """The record whose name is ``<prefix>/<suffix>`` (or ``suffix``), or None."""
        for info in self.infos:
            if info.filename == suffix or info.filename.endswith("/" + suffix):
                return info
        return None

    def read(self, info: zipfile.ZipInfo) -> bytes:
        """One record's bytes (zipfile checks its CRC-32 on the way).

        Raises:
            FormatError: the record cannot be read.
            IntegrityError: its bytes fail the CRC-32.
        """
        with self._crc_checked(info):
            return self._zip.read(info)

    def pickle_bytes(self) -> bytes:
        """The ``data.pkl`` record.

        Raises:
            FormatError: there is none, or it cannot be read.
        """
        info = self.find("data.pkl")
        if info is None:
            raise FormatError(f"{self.path}: damaged torch zip archive (no data.pkl record)")
        return self.read(info)

    def claims_ours(self) -> bool:
        """Whether the zip comment or ``data.pkl`` carries this project's marker."""
        if self.comment.startswith(ZIP_COMMENT):
            return True
        info = self.find("data.pkl")
        if info is None:
            return False
        try:
            return PICKLE_MARKER in self.read(info)
        except (FormatError, IntegrityError):
            return False

    def record(self) -> dict | None:
        """The ``portability.json`` record, or None when the archive has none.

        Raises:
            IntegrityError: the record exists but cannot be read or parsed, or
                the archive is marked as ours and the record is missing.
        """
        info = self.find(RECORD)
        if info is None:
            if self.claims_ours():
                raise IntegrityError(f"{self.path}: written by portability but its checksum record "
                                     f"({RECORD}) is missing: the archive is damaged")
            return None
        try:
            doc = json.loads(self.read(info))
        except (FormatError, IntegrityError, ValueError) as exc:
            damage = str(exc).removeprefix(f"{self.path}: ")
            raise IntegrityError(f"{self.path}: its checksum record ({RECORD}) is unreadable "
                                 f"({damage}): the archive is damaged") from exc
        if not isinstance(doc, dict) or not isinstance(doc.get("checksums"), dict):
            raise IntegrityError(f"{self.path}: its checksum record ({RECORD}) is malformed: "
                                 "the archive is damaged")
        return doc

    def verify_crcs(self, skip_storages: bool = False, only: Collection[str] | None = None) -> None:
        """Check every record's CRC-32 against the bytes in the file.

        Args:
            skip_storages: leave out the tensor storages (``<prefix>/data/N``), for
                files whose checksum record already covers every tensor with xxh3,
                and for readers that check each storage's CRC-32 themselves.
            only: check just the records of these names.

        The bytes are hashed in place through memory maps of at most
        ``CRC_CHUNK`` bytes at a time (zipfile's own streaming reader copies each
        chunk, about a third slower; one map of the whole file would count the
        file's size against a process's address-space limit); the local header
        of each record is checked against the central directory first.

        Raises:
            IntegrityError: a record's bytes fail its CRC-32 (names the record).
            FormatError: a record's local header is damaged or its data runs past the end.
        """
        if self.size == 0:
            return
        with open(self.path, "rb") as f:
            fd = f.fileno()
            for info in self.infos:
                start = self._data_start(fd, info)
                if (skip_storages and "/data/" in info.filename) or (only is not None
                                                                      and info.filename not in only):
                    continue
                if _range_crc(fd, start, info.compress_size) != info.CRC:
                    raise IntegrityError(f"{self.path}: record {info.filename!r} fails its zip CRC-32: "
                                         "the data is corrupt")

    def _data_start(self, fd: int, info: zipfile.ZipInfo) -> int:
        """Where a record's bytes begin, from its local header (checked against the directory).

        Raises:
            FormatError: a damaged local header, or data running past the end of the file.
        """
        at = info.header_offset
        where = f"{self.path}: damaged torch zip archive (record {info.filename!r}"
        if not 0 <= at <= self.size - 30:
            raise FormatError(f"{where} has no local header at offset {at})")
        header = os.pread(fd, 30, at)
        if len(header) < 30 or header[:4] != b"PK\x03\x04":
            raise FormatError(f"{where} has no local header at offset {at})")
        name_len, extra_len = struct.unpack("<HH", header[26:30])
        encoding = "utf-8" if info.flag_bits & 0x800 else "cp437"
        if os.pread(fd, name_len, at + 30) != info.orig_filename.encode(encoding):
            raise FormatError(f"{where}: its local header names another file)")
        start = at + 30 + name_len + extra_len
        if start + info.compress_size > self.size:
            raise FormatError(f"{where} runs past the end of the file)")
        return start

    @contextmanager
    def _crc_checked(self, info: zipfile.ZipInfo) -> Iterator[None]:
        try:
            yield
        except zipfile.BadZipFile as exc:
            if "CRC" in str(exc):
                raise IntegrityError(f"{self.path}: record {info.filename!r} fails its zip CRC-32: "
                                     "the data is corrupt") from exc
            raise FormatError(f"{self.path}: damaged torch zip archive ({describe(exc)})") from exc
        except ZIP_ERRORS as exc:
            raise FormatError(f"{self.path}: damaged torch zip archive (record {info.filename!r}: "
                              f"{describe(exc)})") from exc


def open_archive(path: Path) -> TorchArchive | None:
    """A checked ``TorchArchive`` for a zip file, or None for a legacy (non-zip) pickle.

    Raises:
        FormatError: the file starts like a zip but its archive is damaged.
    """
    with typed_zip_errors(path):
        is_zip = zipfile.is_zipfile(path)
    if not is_zip:
        if starts_like_zip(path):
            raise FormatError(f"{path}: truncated or corrupt torch zip archive (its central directory "
                              "is missing: the file was cut short or damaged)")
        return None
    return TorchArchive(path)


def mark_as_ours(path: Path, record: dict) -> None:
    """Append the ``portability.json`` record and set the zip comment of a torch.save'd file."""
    with zipfile.ZipFile(path, "a") as z:
        prefix = z.namelist()[0].split("/")[0]
        # A fixed timestamp keeps the file byte-for-byte reproducible.
        info = zipfile.ZipInfo(f"{prefix}/{RECORD}", date_time=(1980, 1, 1, 0, 0, 0))
        z.writestr(info, json.dumps(record))
        z.comment = ZIP_COMMENT


def check_archive(path: Path, verify: bool, storage_crcs: bool = True) -> dict | None:
    """Check a torch file's zip layer; return its ``portability.json`` record (None if not ours).

    Done before unpickling: scalars in the pickle (learning rate, step, RNG
    state) are not covered by the tensor checksums, and a damaged archive must
    be refused before torch allocates anything for it. ``storage_crcs=False``
    leaves the storage records' CRC-32s to a reader that checks them itself
    (``streaming.read_lazy`` does, as it copies the bytes: no extra pass).

    Raises:
        FormatError: a damaged archive (names the damage).
        IntegrityError: a record failing its CRC-32, a pickle that does not match
            its digest, or a file marked as ours whose checksum record is missing.
    """
    archive = open_archive(path)
    if archive is None:  # a legacy (non-zip) pickle
        return None
    with archive:
        record = archive.record()
        if record is not None:
            _check_record_fields(record, path)
        if verify:
            # Our record's xxh3 checksums cover every storage; the CRC-32s cover the rest.
            archive.verify_crcs(skip_storages=record is not None or not storage_crcs)
            if record is not None:
                _verify_pickle(archive, record)
    return record


def verify_storage_crcs(path: Path, records: Collection[str]) -> None:
    """Check the CRC-32s of the named records now.

    Raises:
        IntegrityError: a record's bytes fail its CRC-32 (names the record).
        FormatError: a record's local header is damaged or its data runs past the end.
    """
    if not records:
        return
    archive = open_archive(path)
    if archive is not None:
        with archive:
            archive.verify_crcs(only=records)


def _check_record_fields(record: dict, path: Path) -> None:
    """Raises IntegrityError unless the record has the fields and types ``read`` relies on."""
    record.setdefault("aliases", {})
    record.setdefault("metadata", {})
    fields_ok = (isinstance(record["aliases"], dict) and isinstance(record["metadata"], dict)
                 and all(isinstance(v, str) for v in record["checksums"].values()))
    version = record.get("version")
    if isinstance(version, int) and version >= 2 and not isinstance(record.get("pickle_digest"), str):
        fields_ok = False
    if not fields_ok:
        raise IntegrityError(f"{path}: its checksum record ({RECORD}) is malformed: the archive is damaged")


def _verify_pickle(archive: TorchArchive, record: dict) -> None:
    """Raise if the pickled structure changed since it was written.

    Raises:
        IntegrityError: the digest differs.
    """
    expected = record.get("pickle_digest")
    if expected is None:  # a version 1 record
        return
    if digest([archive.pickle_bytes()]) != expected:
        raise IntegrityError(f"{archive.path}: the pickled structure (training state, hyperparameters, "
                             "tensor layout) does not match its checksum: the file is corrupt")


def _range_crc(fd: int, start: int, length: int) -> int:
    """CRC-32 of ``length`` bytes from ``start``, hashed in place through memory maps of
    at most ``CRC_CHUNK`` bytes, so the address space used stays bounded."""
    crc, at, end = 0, start, start + length
    while at < end:
        base = at - at % mmap.ALLOCATIONGRANULARITY
        size = min(end, at + CRC_CHUNK) - base
        with mmap.mmap(fd, size, access=mmap.ACCESS_READ, offset=base) as window, memoryview(window) as view:
            crc = crc32(view[at - base:], crc)
        at = base + size
    return crc
