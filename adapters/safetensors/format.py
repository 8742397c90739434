"""safetensors adapter: single files and sharded directories (Hugging Face index layout).

Training state travels without pickle: optimizer tensors are stored as tensors
under ``__training__.*`` and the rest as JSON in the metadata. Tied weights are
written once; ``portability.aliases`` restores the tie on the way back. Every
file records an xxh3 checksum per tensor, checked as the bytes are read.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

import numpy as np

from portability.adapters.safetensors.header import Entry, build_header, parse_header
from portability.core import file_copy, integrity
from portability.core.checkpoint import Checkpoint
from portability.core.formats import SAFETENSORS_INDEX_SUFFIX
from portability.core.hashing_copier import HashingCopier
from portability.core.options import ReadOptions, WriteOptions
from portability.core.tensors import LazyTensor, Tensor, iter_bytes
from portability.core.training_codec import TRAINING_PREFIX, pack_training, unpack_training
from portability.errors import FormatError, IntegrityError, UsageError

SINGLE_NAME = "model.safetensors"
INDEX_NAME = "model" + SAFETENSORS_INDEX_SUFFIX
KEY_CHECKSUMS = "portability.checksums"
KEY_ALIASES = "portability.aliases"
KEY_ORDER = "portability.order"
KEY_TRAINING = "portability.training"
KEY_LAYOUT = "portability.layout"
# Digest of every other metadata entry: a flipped bit in the training-state JSON
# (a learning rate, a step count) must not load silently.
KEY_META_DIGEST = "portability.metadata_digest"
OUR_KEYS = (KEY_CHECKSUMS, KEY_ALIASES, KEY_ORDER, KEY_TRAINING, KEY_LAYOUT, "portability.format",
            KEY_META_DIGEST)


def read(path: str | Path, options: ReadOptions = ReadOptions()) -> Checkpoint:
    """Read a ``.safetensors`` file, an index file, or a directory holding either.

    Tensors come back lazy: data is read (and checksums verified) on use.

    Raises:
        FormatError: a malformed header or index, a missing shard, or a
            directory with no safetensors file.
        IntegrityError: (on use) a tensor's bytes do not match its checksum.
    """
    path = Path(path)
    index = _find_index(path)
    if index is not None:
        return _read_sharded(index, options)
    file = _find_single(path)
    tensors, metadata, checksummed = _read_file(file, options)
    return _assemble(tensors, metadata, checksummed)


def write(ckpt: Checkpoint, path: str | Path, options: WriteOptions = WriteOptions()) -> None:
    """Write a single file (``*.safetensors``) or a directory, sharded past ``shard_size``.

    Raises:
        UsageError: ``shard_size`` with a single-file destination that would need shards.
    """
    path = Path(path)
    items, global_meta = _items_and_metadata(ckpt)
    total = sum(int(t.nbytes) for _, t in items)
    shard_size = options.shard_size
    if path.suffix == ".safetensors":
        if shard_size is not None and total > shard_size:
            raise UsageError(f"{path}: {total} bytes need several shards of at most {shard_size}; "
                             "give a directory as the destination")
        _write_file(path, items, global_meta, options.durable)
        return
    path.mkdir(parents=True, exist_ok=True)
    shards = _plan_shards(items, shard_size)
    if len(shards) == 1:
        _write_file(path / SINGLE_NAME, items, global_meta, options.durable)
        return
    weight_map: dict[str, str] = {}
    for number, shard in enumerate(shards, start=1):
        name = f"model-{number:05d}-of-{len(shards):05d}.safetensors"
        _write_file(path / name, shard, {"format": global_meta.get("format", "pt")}, options.durable)
        weight_map.update({tensor_name: name for tensor_name, _ in shard})
    global_meta[KEY_META_DIGEST] = _metadata_digest(global_meta)
    index = {"metadata": {"total_size": total, **global_meta}, "weight_map": weight_map}
    (path / INDEX_NAME).write_text(json.dumps(index, indent=2))


def _items_and_metadata(ckpt: Checkpoint) -> tuple[list[tuple[str, Tensor]], dict[str, str]]:
    items = [(name, ckpt.tensors[name]) for name in ckpt.canonical_names()]
    meta = dict(ckpt.metadata)
    meta.setdefault("format", "pt")
    meta["portability.format"] = "1"
    meta[KEY_ORDER] = json.dumps(list(ckpt.tensors))
    meta[KEY_LAYOUT] = ckpt.layout
    if ckpt.aliases:
        meta[KEY_ALIASES] = json.dumps(ckpt.aliases)
    if ckpt.training is not None:
        text, arrays = pack_training(ckpt.training)
        meta[KEY_TRAINING] = text
        items += list(arrays.items())
    return items, meta


def _plan_shards(items: list[tuple[str, Tensor]], shard_size: int | None) -> list[list[tuple[str, Tensor]]]:
    if shard_size is None:
        return [items]
    shards: list[list[tuple[str, Tensor]]] = [[]]
    used = 0
    for name, tensor in items:
        if shards[-1] and used + int(tensor.nbytes) > shard_size:
            shards.append([])
            used = 0
        shards[-1].append((name, tensor))
        used += int(tensor.nbytes)
    return shards


def _write_file(path: Path, items: list[tuple[str, Tensor]], metadata: dict[str, str],
                durable: bool = True) -> None:
    """Stream tensors into one file; checksums are patched into the header afterwards.

    The header is written first with placeholder digests of the final width, so
    its length does not change when the real digests replace them. ``durable``:
    the copied bytes go to disk while later ones are copied (``atomic_output``
    does the final fsync).
    """
    metadata = {**metadata, KEY_META_DIGEST: _metadata_digest(metadata)}
    layout = [(name, np.dtype(t.dtype), tuple(t.shape), int(t.nbytes)) for name, t in items]
    placeholder = {name: "0" * integrity.DIGEST_CHARS for name, _ in items}
    head = build_header(layout, {**metadata, KEY_CHECKSUMS: json.dumps(placeholder)})
    digests: dict[str, str] = {}
    copied: list[tuple[str, LazyTensor]] = []
    # Bytes that lie in a file are copied by the kernel and hashed from the cache
    # by a second thread as they go (the hash checks the source and becomes ours).
    with open(path, "wb") as f, HashingCopier(f.fileno(), writeback=durable) as copier:
        f.write(head)
        position = len(head)
        for name, tensor in items:
            if isinstance(tensor, LazyTensor) and tensor.file_range is not None:
                f.flush()
                copier.copy(*tensor.file_range, int(tensor.nbytes), position, crc=tensor.crc is not None)
                copied.append((name, tensor))
                f.seek(position + int(tensor.nbytes))
            else:
                digests[name] = _write_through(f, tensor)
            position += int(tensor.nbytes)
        f.flush()
        for (name, tensor), sums in zip(copied, copier.finish(), strict=True):
            if tensor.crc is not None:
                tensor.crc.check(sums.crc32)
            if tensor.digest is not None:
                integrity.check_hex(sums.digest, tensor.digest, tensor.label)
            digests[name] = sums.digest
        final = build_header(layout, {**metadata, KEY_CHECKSUMS: json.dumps({n: digests[n] for n, _ in items})})
        assert len(final) == len(head), "checksum placeholder width mismatch"
        f.seek(0)
        f.write(final)


def _write_through(f: BinaryIO, tensor: Tensor) -> str:
    """Write a tensor's bytes where ``f`` stands; returns their digest."""
    hasher = integrity.new_hasher()
    for piece in iter_bytes(tensor):
        hasher.update(piece)
        f.write(piece)
    return hasher.hexdigest()


def _find_index(path: Path) -> Path | None:
    if path.is_file():
        return path if path.name.endswith(SAFETENSORS_INDEX_SUFFIX) else None
    if path.is_dir():
        found = sorted(p for p in path.iterdir() if p.name.endswith(SAFETENSORS_INDEX_SUFFIX))
        if len(found) > 1:
            raise FormatError(f"{path}: several safetensors index files ({', '.join(p.name for p in found)})")
        return found[0] if found else None
    raise FormatError(f"{path}: no such file or directory")


def _find_single(path: Path) -> Path:
    if path.is_file():
        return path
    found = sorted(p for p in path.iterdir() if p.suffix == ".safetensors")
    if not found:
        raise FormatError(f"{path}: directory holds no .safetensors file")
    if len(found) > 1:
        raise FormatError(f"{path}: several .safetensors files ({', '.join(p.name for p in found)}) "
                          "and no index naming which belong together")
    return found[0]


def _read_file(path: Path, options: ReadOptions) -> tuple[dict[str, LazyTensor], dict[str, str], bool]:
    header = parse_header(path)
    sums = {}
    if KEY_CHECKSUMS in header.metadata:
        try:
            sums = json.loads(header.metadata[KEY_CHECKSUMS])
        except json.JSONDecodeError as exc:
            raise IntegrityError(f"{path}: its checksum record ({KEY_CHECKSUMS}) is not valid JSON ({exc}): "
                                 "the header is damaged") from exc
    if options.verify:
        _require_checksums_if_ours(header.metadata, sums, bool(header.entries), path)
        _verify_metadata(header.metadata, path)
        _verify_names(sums, [e.name for e in header.entries], path)
    tensors = {}
    for entry in header.entries:
        expected = sums.get(entry.name) if options.verify else None
        tensors[entry.name] = _lazy(path, header.data_start, entry, expected)
    return tensors, header.metadata, bool(sums)


def _require_checksums_if_ours(metadata: dict[str, str], sums: object, has_tensors: bool,
                               path: Path) -> None:
    """A file whose metadata says we wrote it must carry its checksums.

    Without this, damage to the one key holding the checksums would turn a
    checksummed file into an unchecked one.

    Raises:
        IntegrityError: a file marked as ours whose checksum record is missing or malformed.
    """
    marked = [k for k in OUR_KEYS if k in metadata and k not in (KEY_CHECKSUMS, KEY_META_DIGEST)]
    if not marked and KEY_CHECKSUMS not in metadata and KEY_META_DIGEST not in metadata:
        return
    # The metadata digest is not required: files written before it existed (the
    # committed golden set among them) have checksums without it.
    if not isinstance(sums, dict) or (has_tensors and not sums) or not all(isinstance(v, str) for v in sums.values()):
        raise IntegrityError(f"{path}: written by portability (metadata {', '.join(marked) or KEY_CHECKSUMS}) "
                             f"but its checksum record ({KEY_CHECKSUMS}) is missing or malformed: "
                             "the header is damaged")


def _metadata_digest(metadata: dict[str, str]) -> str:
    """Digest of the metadata entries other than the checksums themselves."""
    covered = {k: v for k, v in metadata.items() if k not in (KEY_CHECKSUMS, KEY_META_DIGEST)}
    return integrity.digest([json.dumps(covered, sort_keys=True).encode("utf-8")])


def _verify_metadata(metadata: dict[str, str], path: Path) -> None:
    """Raise if the metadata (training state, aliases, order) was altered after writing."""
    expected = metadata.get(KEY_META_DIGEST)
    if expected is not None and _metadata_digest(metadata) != expected:
        raise IntegrityError(f"{path}: metadata does not match its checksum: the header "
                             "(training state, aliases or tensor order) is corrupt")


def _verify_names(sums: dict[str, str], names: list[str], path: Path) -> None:
    """A file with checksums must have one for every tensor, and no others."""
    if not sums:
        return
    unlisted = [n for n in names if n not in sums]
    missing = [n for n in sums if n not in set(names)]
    if unlisted:
        raise IntegrityError(f"{path}: tensor {unlisted[0]!r} has no recorded checksum: the header is corrupt")
    if missing:
        raise IntegrityError(f"{path}: tensor {missing[0]!r} is recorded in the checksums but missing: "
                             "the header is corrupt")


def _lazy(path: Path, data_start: int, entry: Entry, expected: str | None) -> LazyTensor:
    def read_chunks(chunk: int) -> Iterator[bytes]:
        pieces = file_copy.read_range(path, data_start + entry.begin, entry.end - entry.begin, chunk)
        if expected is None:
            yield from pieces
        else:
            yield from integrity.verified(pieces, expected, f"tensor {entry.name!r} in {path}")

    def read_into(buffer: memoryview) -> None:
        # A second thread hashes each piece right after it lands, while the next is read.
        got = file_copy.read_range_into(path, data_start + entry.begin, buffer, expected is not None)
        if expected is not None:
            integrity.check_hex(got.digest, expected, f"tensor {entry.name!r} in {path}")

    return LazyTensor(entry.dtype, entry.shape, read_chunks, read_into,
                      file_range=(str(path), data_start + entry.begin), digest=expected,
                      label=f"tensor {entry.name!r} in {path}")




def _read_sharded(index_path: Path, options: ReadOptions) -> Checkpoint:
    try:
        index = json.loads(index_path.read_text())
        weight_map = index["weight_map"]
        metadata = {k: v for k, v in index.get("metadata", {}).items() if k != "total_size"}
    except (json.JSONDecodeError, KeyError, TypeError, AttributeError, UnicodeDecodeError) as exc:
        raise FormatError(f"{index_path}: not a valid safetensors index ({type(exc).__name__}: {exc})") from exc
    tensors: dict[str, LazyTensor] = {}
    checksummed = True
    for shard in dict.fromkeys(weight_map.values()):
        shard_path = index_path.parent / shard
        if not shard_path.is_file():
            raise FormatError(f"{index_path}: index names shard {shard!r}, which is missing")
        shard_tensors, _, has_sums = _read_file(shard_path, options)
        checksummed = checksummed and has_sums
        tensors.update(shard_tensors)
    for name, shard in weight_map.items():
        if name not in tensors:
            raise FormatError(f"{index_path}: index puts tensor {name!r} in {shard!r}, which lacks it")
    metadata = {k: v if isinstance(v, str) else json.dumps(v) for k, v in metadata.items()}
    if options.verify:
        if checksummed and tensors and "portability.format" not in metadata:
            # Our shards always come with our index metadata (order, layout, training
            # state); without it they would load quietly stripped of all three.
            raise IntegrityError(f"{index_path}: the shards were written by portability but the index "
                                 "has lost its portability metadata: the index is damaged")
        _verify_metadata(metadata, index_path)
    return _assemble(tensors, metadata, checksummed)


def _assemble(tensors: dict[str, LazyTensor], metadata: dict[str, str], checksummed: bool) -> Checkpoint:
    def load_json(key: str, default):
        if key not in metadata:
            return default
        try:
            return json.loads(metadata[key])
        except json.JSONDecodeError as exc:
            raise FormatError(f"metadata {key} is not valid JSON ({exc})") from exc

    aliases = load_json(KEY_ALIASES, {})
    order = load_json(KEY_ORDER, None)
    model = {n: t for n, t in tensors.items() if not n.startswith(TRAINING_PREFIX + ".")}
    training_arrays = {n: t for n, t in tensors.items() if n.startswith(TRAINING_PREFIX + ".")}
    names = order if order is not None else list(model)
    ordered: dict[str, Tensor] = {}
    for name in names:
        target = aliases.get(name)
        source = target if target is not None else name
        if source not in model:
            raise FormatError(f"tensor {source!r} is listed in the metadata but missing from the data")
        ordered[name] = model[source]
    for name in model:
        ordered.setdefault(name, model[name])
    training = None
    if KEY_TRAINING in metadata:
        loaded = {n: t.load() for n, t in training_arrays.items()}
        training = unpack_training(metadata[KEY_TRAINING], loaded)
    user_meta = {k: v for k, v in metadata.items() if k not in OUR_KEYS}
    return Checkpoint(tensors=ordered, aliases=aliases, metadata=user_meta, training=training,
                      layout=metadata.get(KEY_LAYOUT, "state_dict"), checksummed=checksummed)
