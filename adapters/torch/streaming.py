"""Read a torch zip checkpoint lazily: structure now, each tensor's bytes on use.

``zip_structure`` gives the pickle's tree with ``TensorRef``s in place of
tensors. Model weights become ``LazyTensor``s whose bytes are read straight
from the zip record (contiguous views also expose their file range, so a
writer copies them file to file); a strided view is read per tensor from the
span of storage it touches. Ties (two names, one view of one storage) become
aliases, as in the in-memory reader. Training state (optimizer moments,
scheduler, counters) is materialised as torch objects and converted by the
in-memory reader's own code, so both paths give the same ``Checkpoint``.

Files this route cannot read (legacy non-zip pickles, other globals, big
endian) make ``read_lazy`` return None, and the caller uses ``torch.load``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from portability.adapters.torch.archive import ZIP_ERRORS, describe, verify_storage_crcs
from portability.adapters.torch.zip_structure import NotStreamable, TensorRef, read_structure
from portability.core import file_copy, integrity
from portability.core.checkpoint import Checkpoint
from portability.core.layout import get_path, parse_layout
from portability.core.layout_search import locate
from portability.core.options import ReadOptions
from portability.core.tensors import ExpectedCrc, LazyTensor
from portability.errors import FormatError, IntegrityError

logger = logging.getLogger(__name__)
RECORD = "portability.json"
KEY_ORDER = "__keys__"


def read_lazy(path: Path, options: ReadOptions) -> Checkpoint | None:
    """A ``Checkpoint`` with lazy weights, or None when the file needs ``torch.load``.

    Raises:
        FormatError: a corrupt archive (records missing or out of range).
        IntegrityError: the pickled structure does not match its recorded checksum
            (tensor checksums are checked as each tensor's bytes are read).
    """
    try:
        structure = read_structure(path)
    except NotStreamable as why:
        logger.debug("%s: reading with torch.load (%s)", path, why)
        return None
    obj = structure.obj
    if not isinstance(obj, dict):
        return None
    record = _read_record(path, structure.prefix)
    # A file this adapter wrote records where its weights are (``--weights-key`` may have chosen).
    recorded = parse_layout(record["layout"]).weights if record is not None and "layout" in record else None
    found = locate(obj, _ref_info, options.weights_key or recorded)
    weights = ({k: v for k, v in obj.items() if isinstance(v, TensorRef)}
               if not found.weights else get_path(obj, found.weights))
    if not isinstance(weights, dict) or not all(isinstance(v, TensorRef) for v in weights.values()):
        return None  # the in-memory reader names the offending entry
    sums = record.get("checksums", {}) if record is not None and options.verify else {}
    if record is not None and options.verify and record.get("pickle_digest") is not None:
        # Before anything else is trusted: scalars in the pickle carry no tensor checksum.
        if integrity.digest([structure.pickle_bytes]) != record["pickle_digest"]:
            raise IntegrityError(f"{path}: the pickled structure (training state, hyperparameters, "
                                 "tensor layout) does not match its checksum: the file is corrupt")
    tensors, aliases = _lazy_weights(weights, path, sums)
    if options.verify and record is None:
        _check_storage_crcs(obj, weights, tensors, path)
    ckpt = Checkpoint(tensors=tensors, aliases=aliases, layout=found.layout.to_text())
    # The weights stay lazy: the training state is built from the object without them.
    skeleton = ({k: v for k, v in obj.items() if not isinstance(v, TensorRef)} if not found.weights
                else _without_weights(obj, found.weights))
    if skeleton or found.optimizer or found.scheduler or found.fields:  # else no torch import at all
        ckpt.training = _training(skeleton, found, path, sums)
    if ckpt.training is not None:
        ckpt.training.extra[KEY_ORDER] = list(obj)
    if record is not None:
        ckpt.metadata.update(record.get("metadata", {}))
        ckpt.aliases.update({a: t for a, t in record.get("aliases", {}).items() if a in ckpt.tensors})
        ckpt.checksummed = True
    return ckpt


def _lazy_weights(weights: dict[str, TensorRef], path: Path,
                  sums: dict[str, str]) -> tuple[dict[str, Any], dict[str, str]]:
    tensors: dict[str, Any] = {}
    aliases: dict[str, str] = {}
    seen: dict[tuple, str] = {}
    for name, ref in weights.items():
        key = (ref.storage.key, ref.storage_offset, ref.shape, ref.stride, ref.dtype)
        if ref.size > 0 and key in seen:
            aliases[name] = seen[key]
            tensors[name] = tensors[seen[key]]
            continue
        seen[key] = name
        tensors[name] = lazy_tensor(ref, f"tensor {name!r} in {path}", sums.get(name))
    missing = [n for n in sums if n not in tensors and not n.startswith("__training__")]
    if missing:
        raise IntegrityError(f"{path}: tensor {missing[0]!r} is recorded in its checksums but missing")
    return tensors, aliases


def lazy_tensor(ref: TensorRef, label: str, expected: str | None) -> LazyTensor:
    """A ``LazyTensor`` over one view of a zip storage record.

    Its ``crc`` starts unset; ``_check_storage_crcs`` sets it where the view
    covers its storage record whole, and the reads below then check it too.
    """
    contiguous = ref.is_contiguous()
    start = ref.storage.offset + ref.storage_offset * ref.dtype.itemsize

    def read_chunks(chunk: int) -> Iterator[bytes]:
        crc = tensor.crc
        hasher = integrity.new_hasher() if expected is not None else None
        got_crc = 0
        if contiguous:
            pieces = file_copy.read_range(ref.storage.path, start, ref.nbytes, chunk)
        else:
            flat = np.ascontiguousarray(materialise(ref)).reshape(-1).view(np.uint8)
            pieces = (flat[i:i + chunk].tobytes() for i in range(0, flat.size, chunk))
        for piece in pieces:
            if hasher is not None:
                hasher.update(piece)
            if crc is not None:
                got_crc = integrity.crc32(piece, got_crc)
            yield piece
        if crc is not None:
            crc.check(got_crc)
        if hasher is not None:
            integrity.check_digest(hasher, expected, label)

    def read_into(buffer: memoryview) -> None:
        crc = tensor.crc
        if not contiguous:
            buffer[:] = np.ascontiguousarray(materialise(ref)).reshape(-1).view(np.uint8).data
            got = file_copy.Sums(integrity.digest([buffer]) if expected is not None else None,
                                 integrity.crc32(buffer) if crc is not None else None)
        else:
            got = file_copy.read_range_into(ref.storage.path, start, buffer, expected is not None,
                                            crc=crc is not None)
        if crc is not None:
            crc.check(got.crc32)
        if expected is not None:
            integrity.check_hex(got.digest, expected, label)

    tensor = LazyTensor(ref.dtype, ref.shape, read_chunks, read_into,
                        file_range=(ref.storage.path, start) if contiguous else None,
                        digest=expected, label=label)
    return tensor


def _check_storage_crcs(obj: Any, weights: dict[str, TensorRef], tensors: dict[str, Any], path: Path) -> None:
    """Check a foreign file's storage records against their zip CRC-32s, its only integrity check.

    A record that one lazy weight covers whole, and nothing else refers to, is
    checked as that tensor's bytes are read or copied (``LazyTensor.crc``): the
    check then costs no pass of its own over the data. Every other record (a
    view of part of a storage, one shared with training state) is checked now.

    Raises:
        IntegrityError: a record checked now fails its CRC-32 (names the record).
    """
    weight_of = {id(ref): name for name, ref in weights.items()}
    refs_by_storage: dict[str, list[TensorRef]] = {}
    for ref in _tensor_refs(obj):
        refs_by_storage.setdefault(ref.storage.key, []).append(ref)
    check_now = []
    for refs in refs_by_storage.values():
        storage = refs[0].storage
        owners = {id(tensors[weight_of[id(r)]]) if id(r) in weight_of else None for r in refs}
        tensor = tensors[weight_of[id(refs[0])]] if id(refs[0]) in weight_of else None
        if (len(owners) == 1 and tensor is not None and tensor.file_range == (storage.path, storage.offset)
                and tensor.nbytes == storage.record_bytes):
            tensor.crc = ExpectedCrc(storage.crc32, f"{path}: record {storage.record!r}")
        else:
            check_now.append(storage.record)
    verify_storage_crcs(path, check_now)


def _tensor_refs(obj: Any) -> Iterator[TensorRef]:
    """Every ``TensorRef`` in a tree of dicts, lists and tuples (each container visited once)."""
    seen: set[int] = set()
    stack = [obj]
    while stack:
        node = stack.pop()
        if isinstance(node, TensorRef):
            yield node
        elif isinstance(node, (dict, list, tuple)) and id(node) not in seen:
            seen.add(id(node))
            stack.extend(node.values() if isinstance(node, dict) else node)


def materialise(ref: TensorRef) -> np.ndarray:
    """The view's values, read from the span of storage it touches (strided views)."""
    first, end = ref.span()
    itemsize = ref.dtype.itemsize
    raw = np.empty(max(end - first, 0), dtype=ref.dtype)
    if raw.size:
        file_copy.read_range_into(ref.storage.path, ref.storage.offset + first * itemsize,
                                  memoryview(raw.view(np.uint8)), False)
    strides = tuple(s * itemsize for s in ref.stride)
    return np.lib.stride_tricks.as_strided(raw, shape=ref.shape, strides=strides, writeable=False)


def _ref_info(value: Any) -> tuple[bool, int] | None:
    """``tensor_info`` for the tensor references of a zip archive's pickle."""
    if not isinstance(value, TensorRef):
        return None
    return np.dtype(value.dtype).kind in "fcV", int(value.size)


def _without_weights(obj: dict[str, Any], path: tuple) -> dict[str, Any]:
    """``obj`` with an empty dict where the weights were (they are read lazily)."""
    from portability.core.layout import put_path

    copy = dict(obj)
    node = copy
    for key in path[:-1]:
        node[key] = dict(node[key]) if isinstance(node[key], dict) else list(node[key])
        node = node[key]
    put_path(copy, path, {})
    return copy


def _training(skeleton: dict[str, Any], found, path: Path, sums: dict[str, str]):
    """Training state through the in-memory reader's own conversion (imports torch), or None."""
    from portability.adapters.torch import state_dict
    from portability.core.training_codec import pack_training

    training = state_dict._training_from(_to_torch(skeleton), found, str(path))
    if training is None:
        return None
    if sums:
        _, arrays = pack_training(training)
        for name, expected in sums.items():
            if name.startswith("__training__"):
                if name not in arrays:
                    raise IntegrityError(f"{path}: tensor {name!r} is recorded in its checksums but missing")
                if integrity.tensor_digest(arrays[name]) != expected:
                    raise IntegrityError(f"{path}: checksum mismatch for tensor {name!r}: the data is corrupt")
    return training


def _to_torch(obj: Any) -> Any:
    if isinstance(obj, TensorRef):
        from portability.adapters.torch.numpy_bridge import numpy_to_tensor

        return numpy_to_tensor(np.array(materialise(obj)))
    if isinstance(obj, dict):
        return type(obj)((k, _to_torch(v)) for k, v in obj.items())
    if isinstance(obj, list):
        return [_to_torch(v) for v in obj]
    if isinstance(obj, tuple):
        return tuple(_to_torch(v) for v in obj)
    return obj


def _read_record(path: Path, prefix: str) -> dict | None:
    import zipfile

    try:
        with zipfile.ZipFile(path) as z:
            name = f"{prefix}/{RECORD}"
            return json.loads(z.read(name)) if name in z.namelist() else None
    except (json.JSONDecodeError, *ZIP_ERRORS) as exc:
        raise FormatError(f"{path}: unreadable {RECORD} record ({describe(exc)})") from exc
