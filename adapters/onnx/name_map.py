"""The record that lets an exported graph give back its checkpoint bitwise.

The torch exporter renames and reshapes weights: it folds each Linear weight's
transpose into a new initializer called ``val_N``, merges initializers with
equal values, and folds BatchNorm into the preceding Conv under the Conv
weight's own name. Names alone therefore cannot be trusted. At export time each
checkpoint tensor is matched *by value* (bytes digest) against the graph's
initializers, as is, reshaped, or transposed. A tensor with no match (folded
away, or not used by the graph) is stored apart under the value name
``portability/<name>`` (format 2: in the ``portability.originals`` function,
``originals.py``; format 1 wrote it as an extra initializer, which the reader
still takes). The map, the checksums and the aliases go into the model's
``metadata_props``; ``apply_name_map`` inverts it on read and verifies every
checksum.
"""

from __future__ import annotations

import json
from collections.abc import Mapping

import numpy as np

from portability.adapters.onnx import lazy_values
from portability.core import integrity
from portability.core.dtypes import dtype_name, numpy_dtype
from portability.core.tensors import Tensor
from portability.errors import FormatError, IntegrityError

KEY_VERSION = "portability.version"
KEY_NAME_MAP = "portability.name_map"
KEY_CHECKSUMS = "portability.checksums"
KEY_ALIASES = "portability.aliases"
KEY_METADATA = "portability.metadata"
KEY_STORED = "portability.stored_unused"
KEY_ORDER = "portability.order"
EXTRA_PREFIX = "portability/"
FORMAT_VERSION = "2"


def _key(arr: Tensor) -> tuple[str, str]:
    return dtype_name(np.dtype(arr.dtype)), integrity.tensor_digest(arr)


def build_name_map(initializers: Mapping[str, np.ndarray],
                   tensors: Mapping[str, Tensor]) -> tuple[dict[str, dict], dict[str, Tensor]]:
    """Match checkpoint tensors to graph initializers by value.

    Args:
        initializers: the graph's initializers by name.
        tensors: the checkpoint's canonical tensors by state_dict name, in order
            (arrays or lazy tensors: each is read, hashed and dropped in turn).

    Returns:
        ``(name_map, extras)``: for each tensor name, ``{"initializer", "transform",
        "shape", "dtype"}`` with transform ``identity``, ``reshape`` or
        ``transpose``; and the extra initializers to add (name -> array) for
        tensors the graph does not hold.
    """
    index: dict[tuple[str, str], list[str]] = {}
    for name, arr in initializers.items():
        index.setdefault(_key(arr), []).append(name)
    name_map: dict[str, dict] = {}
    extras: dict[str, Tensor] = {}
    for name, arr in tensors.items():
        entry = {"shape": list(arr.shape), "dtype": dtype_name(np.dtype(arr.dtype))}
        found = _best(index.get(_key(arr), []), name, tuple(arr.shape), initializers)
        if found is not None:
            same = tuple(initializers[found].shape) == tuple(arr.shape)
            entry.update(initializer=found, transform="identity" if same else "reshape")
        elif arr.ndim == 2 and (found := _best(index.get(_key(lazy_values.transposed(arr)), []), name,
                                               tuple(arr.shape[::-1]), initializers)) is not None:
            entry.update(initializer=found, transform="transpose")
        else:
            extra = EXTRA_PREFIX + name
            extras[extra] = arr
            entry.update(initializer=extra, transform="identity")
        name_map[name] = entry
    return name_map, extras


def _best(candidates: list[str], name: str, shape: tuple[int, ...],
          initializers: Mapping[str, np.ndarray]) -> str | None:
    if not candidates:
        return None
    if name in candidates:
        return name
    same_shape = [c for c in candidates if tuple(initializers[c].shape) == tuple(shape)]
    return (same_shape or candidates)[0]


def record(name_map: dict[str, dict], tensors: Mapping[str, Tensor], aliases: Mapping[str, str],
           metadata: Mapping[str, str], stored: list[str], order: list[str]) -> dict[str, str]:
    """The ``metadata_props`` entries to store with an export.

    Args:
        name_map: from ``build_name_map``.
        tensors: the canonical tensors, for their checksums.
        aliases: tied name -> target name.
        metadata: the checkpoint's free-form metadata.
        stored: names kept only as extra initializers.
        order: every tensor name (aliases included) in checkpoint order.
    """
    return {
        KEY_ORDER: json.dumps(order),
        KEY_VERSION: FORMAT_VERSION,
        KEY_NAME_MAP: json.dumps(name_map),
        KEY_CHECKSUMS: json.dumps({n: integrity.tensor_digest(a) for n, a in tensors.items()}),
        KEY_ALIASES: json.dumps(dict(aliases)),
        KEY_METADATA: json.dumps(dict(metadata)),
        KEY_STORED: json.dumps(stored),
    }


def has_record(props: Mapping[str, str]) -> bool:
    """Whether a model's metadata holds our name map."""
    return KEY_NAME_MAP in props


def apply_name_map(props: Mapping[str, str], arrays: Mapping[str, Tensor], where: str,
                   verify: bool = True) -> tuple[dict[str, Tensor], dict[str, str], dict[str, str]]:
    """Rebuild the checkpoint's tensors from the graph's initializers (arrays, or lazy
    tensors over external data, which stay lazy).

    Returns:
        ``(tensors, aliases, metadata)``, tensors in the original order and layout.

    Raises:
        FormatError: the record is malformed or names an initializer the graph lacks.
        IntegrityError: a tensor's bytes do not match its recorded checksum.
    """
    try:
        name_map = json.loads(props[KEY_NAME_MAP])
        checksums = json.loads(props.get(KEY_CHECKSUMS, "{}"))
        aliases = json.loads(props.get(KEY_ALIASES, "{}"))
        metadata = json.loads(props.get(KEY_METADATA, "{}"))
    except json.JSONDecodeError as exc:
        raise FormatError(f"{where}: malformed portability record in metadata_props ({exc})") from exc
    tensors: dict[str, Tensor] = {}
    for name, entry in name_map.items():
        source = entry.get("initializer")
        if source not in arrays:
            raise FormatError(f"{where}: tensor {name!r} is recorded as initializer {source!r}, "
                              "which the graph does not hold (was the file edited?)")
        arr = arrays[source]
        if entry.get("transform") == "transpose":
            arr = lazy_values.transposed(arr)
        if arr.size != int(np.prod(entry["shape"], dtype=np.int64)) or \
                arr.dtype != numpy_dtype(entry["dtype"]):
            raise IntegrityError(f"{where}: tensor {name!r}: initializer {source!r} is "
                                 f"{arr.dtype}{list(arr.shape)}, recorded {entry['dtype']}{entry['shape']}")
        arr = lazy_values.reshaped(arr, entry["shape"])
        if verify and name in checksums:
            # Streamed, one tensor at a time; a lazy (external) tensor checks again when read.
            if integrity.tensor_digest(arr) != checksums[name]:
                raise IntegrityError(f"{where}: checksum mismatch for tensor {name!r} "
                                     f"(initializer {source!r}): the data is corrupt")
            arr = lazy_values.with_digest(arr, checksums[name])
        tensors[name] = arr
    for alias, target in aliases.items():
        if target in tensors:
            tensors[alias] = tensors[target]
    order = json.loads(props.get(KEY_ORDER, "[]"))
    if sorted(order) == sorted(tensors):
        tensors = {n: tensors[n] for n in order}
    return tensors, {a: t for a, t in aliases.items() if a in tensors}, metadata
