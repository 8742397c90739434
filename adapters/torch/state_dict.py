"""PyTorch adapter: ``.pt/.pth/.bin/.ckpt`` state_dicts and training checkpoints.

Reading uses ``torch.load(weights_only=True)`` (see ``torch_safety``): a file
whose pickle needs other globals is refused, naming them, unless the caller
trusts it. A directory may hold one torch file or Hugging Face shards with a
``pytorch_model.bin.index.json``. Files this adapter writes carry a
``portability.json`` record inside the zip archive with an xxh3 checksum per
tensor, the tied-weight aliases and the metadata; torch ignores the record, and
``read`` verifies it. They are also marked as ours in the zip comment and after
the pickle in ``data.pkl`` (see ``archive``), so a damaged record cannot turn a
checksummed file into an unchecksummed one. Every file's zip CRC-32s are
verified too, which torch itself skips.
"""

from __future__ import annotations

import json
import pickle
import types
from pathlib import Path
from typing import Any

import numpy as np
import torch

from portability.adapters.torch.archive import PICKLE_MARKER, TorchArchive, check_archive, mark_as_ours
from portability.adapters.torch.layouts import locate_torch
from portability.adapters.torch.numpy_bridge import numpy_paths, restore_numpy, tensor_to_numpy, to_neutral, to_torch
from portability.adapters.torch.safety import first_line, load_pickle
from portability.core import integrity
from portability.core.checkpoint import Checkpoint, OptimizerState, TrainingState
from portability.core.layout import get_path, parse_layout, path_text, put_path, without
from portability.core.layout_search import Found, claimed_paths
from portability.core.options import ReadOptions, WriteOptions
from portability.core.tensors import as_array
from portability.core.training_codec import pack_training
from portability.errors import FormatError, IntegrityError, WriteError

RECORD_VERSION = 2  # version 2 added pickle_digest; version 1 records (no digest) still read
RENAMED = "__renamed__"  # extra entry: TrainingState field -> the source's key name
KEY_ORDER = "__keys__"  # extra entry: the source's top-level key order
NUMPY_ORIGIN = "__numpy__"
INDEX_SUFFIX = ".index.json"  # Hugging Face shards: pytorch_model.bin.index.json
TORCH_SUFFIXES = (".pt", ".pth", ".bin", ".ckpt")  # extra entry: paths of values that were numpy arrays, not tensors


def read(path: str | Path, options: ReadOptions = ReadOptions()) -> Checkpoint:
    """Read a torch checkpoint file into a ``Checkpoint``.

    Raises:
        FormatError: not a torch file, truncated, or holding unconvertible objects.
        UnsafeCheckpointError: the pickle needs globals and ``trust_pickle`` is off.
        IntegrityError: a recorded checksum does not match (names the tensor).
    """
    path = Path(path)
    if path.is_dir() or path.name.endswith(INDEX_SUFFIX):
        return _read_directory(path, options)
    record = check_archive(path, options.verify)
    obj = load_pickle(path, options.trust_pickle)
    # A file this adapter wrote records where its weights are (``--weights-key`` may have chosen).
    recorded = parse_layout(record["layout"]).weights if record is not None and "layout" in record else None
    ckpt = checkpoint_from_object(obj, str(path), options.weights_key or recorded)
    if record is not None:
        ckpt.metadata.update(record["metadata"])
        ckpt.aliases.update({a: t for a, t in record["aliases"].items() if a in ckpt.tensors})
        if options.verify:
            _verify(ckpt, record["checksums"], path)
        ckpt.checksummed = True
    return ckpt


def _read_directory(path: Path, options: ReadOptions) -> Checkpoint:
    """A directory with one torch file, or Hugging Face shards (``pytorch_model.bin.index.json``).

    Raises:
        FormatError: no torch file, several without an index, or a missing shard.
    """
    if path.is_dir():
        indexes = sorted(p for p in path.iterdir() if p.name.endswith(INDEX_SUFFIX)
                         and Path(p.name[: -len(INDEX_SUFFIX)]).suffix.lower() in TORCH_SUFFIXES)
        if not indexes:
            files = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in TORCH_SUFFIXES)
            if len(files) != 1:
                found = ", ".join(p.name for p in files) or "none"
                raise FormatError(f"{path}: expected one torch checkpoint file (found: {found})")
            return read(files[0], options)
        if len(indexes) > 1:
            raise FormatError(f"{path}: several index files ({', '.join(p.name for p in indexes)})")
        path = indexes[0]
    try:
        weight_map = json.loads(path.read_text())["weight_map"]
        shards = list(dict.fromkeys(weight_map.values()))
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise FormatError(f"{path}: not a valid checkpoint index ({type(exc).__name__}: {exc})") from exc
    merged: dict[str, Any] = {}
    for shard in shards:
        if not (path.parent / shard).is_file():
            raise FormatError(f"{path}: index names shard {shard!r}, which is missing")
        check_archive(path.parent / shard, options.verify)
        part = load_pickle(path.parent / shard, options.trust_pickle)
        if not isinstance(part, dict):
            raise FormatError(f"{path.parent / shard}: holds a {type(part).__name__}, not a state_dict")
        merged.update(part)
    missing = [name for name in weight_map if name not in merged]
    if missing:
        raise FormatError(f"{path}: index lists tensor {missing[0]!r}, which no shard holds")
    return checkpoint_from_object(merged, str(path), options.weights_key)


def write(ckpt: Checkpoint, path: str | Path, options: WriteOptions = WriteOptions()) -> None:
    """Write a ``Checkpoint`` with ``torch.save`` in its original layout, plus checksums."""
    path = Path(path)
    obj = object_from_checkpoint(ckpt)
    with open(path, "wb") as f:
        try:
            torch.save(obj, f, pickle_module=_MARKED_PICKLE)
        except RuntimeError as exc:
            # torch wraps the OSError of a failed write (disk full) in a RuntimeError.
            if isinstance(exc.__context__, OSError):  # the root cause itself, without torch's wrapper
                raise exc.__context__ from None
            raise WriteError(f"{path}: torch.save failed ({first_line(exc)})") from exc
    with TorchArchive(path) as archive:
        pickle_digest = integrity.digest([archive.pickle_bytes()])
    record = {
        "version": RECORD_VERSION,
        "algorithm": integrity.ALGORITHM,
        "pickle_digest": pickle_digest,
        "checksums": _checksums(ckpt),
        "aliases": ckpt.aliases,
        "metadata": ckpt.metadata,
        "layout": ckpt.layout,
    }
    mark_as_ours(path, record)


class _MarkedPickler(pickle.Pickler):
    """Writes this project's marker after the pickle's STOP opcode (unpicklers never read it)."""

    def __init__(self, file, *args, **kwargs) -> None:
        super().__init__(file, *args, **kwargs)
        self._out = file

    def dump(self, obj) -> None:
        super().dump(obj)
        self._out.write(PICKLE_MARKER)


# torch.save only uses ``pickle_module.Pickler`` (and the module's name).
_MARKED_PICKLE = types.ModuleType("portability_marked_pickle")
_MARKED_PICKLE.Pickler = _MarkedPickler


def checkpoint_from_object(obj: Any, where: str = "checkpoint", weights_key: str | tuple | None = None) -> Checkpoint:
    """Turn what ``torch.load`` returned (or an in-memory dict) into a ``Checkpoint``.

    The weights are searched for (``portability.core.layout``): a dict of tensors
    under any key at any depth, ``weights_key`` (``KEY[.SUB]``) if given.
    Everything else (optimizer, scheduler, counters, other candidates, any
    non-tensor value) becomes training state that a writer puts back in place.

    Raises:
        FormatError: the object holds values with no portable form, or
            ``weights_key`` names something that is not a dict of tensors.
        UsageError: ``weights_key`` names nothing in the object.
    """
    if isinstance(obj, torch.nn.Module):  # a whole pickled model (only loads with trust_pickle)
        obj = obj.state_dict()
    if not isinstance(obj, dict):
        raise FormatError(f"{where}: holds a {type(obj).__name__}, not a state_dict or checkpoint dict")
    found = locate_torch(obj, weights_key)
    path = found.weights
    if path:
        weights_obj = get_path(obj, path)
        if not isinstance(weights_obj, dict):
            raise FormatError(f"{where}: the weights key {path_text(path)} holds a "
                              f"{type(weights_obj).__name__}, not a dict of tensors")
        where_weights = f"{where} (weights under {path_text(path)})"
    else:
        weights_obj = {k: v for k, v in obj.items() if isinstance(v, torch.Tensor)}
        where_weights = where
    tensors, aliases = _tensors_with_ties(weights_obj, where_weights)
    training = _training_from(obj, found, where)
    return Checkpoint(tensors=tensors, aliases=aliases, training=training, layout=found.layout.to_text())


def object_from_checkpoint(ckpt: Checkpoint) -> dict[str, Any]:
    """Inverse of ``checkpoint_from_object``: the dict ``torch.save`` should write,
    with the source's nesting, key order and non-tensor values."""
    weights: dict[str, torch.Tensor] = {}
    for name, value in ckpt.tensors.items():
        target = ckpt.aliases.get(name)
        weights[name] = weights[target] if target in weights else to_torch(as_array(value))
    layout = parse_layout(ckpt.layout)
    out: dict[str, Any] = {}
    if not layout.weights:
        out.update(weights)
    ts = ckpt.training
    if ts is not None:
        for key, value in ts.extra.items():
            if key not in (RENAMED, NUMPY_ORIGIN, KEY_ORDER):
                out[key] = to_torch(value)
    if layout.weights:
        put_path(out, layout.weights, weights)
    if ts is None:
        return out
    if ts.optimizer is not None:
        opt = {"state": to_torch(ts.optimizer.state), "param_groups": to_torch(ts.optimizer.param_groups)}
        put_path(out, layout.optimizer or ("optimizer",), opt)
    if ts.scheduler is not None:
        put_path(out, layout.scheduler or ("scheduler",), to_torch(ts.scheduler))
    renamed = ts.extra.get(RENAMED, {})
    for key in ("epoch", "global_step", "loss", "data_position", "rng"):
        value = getattr(ts, key)
        if value is not None and not (key == "rng" and not value):
            place = renamed.get(key, key)
            put_path(out, tuple(place) if isinstance(place, list) else (place,), to_torch(value))
    order = [k for k in ts.extra.get(KEY_ORDER, []) if k in out]
    out = {**{k: out[k] for k in order}, **out}
    return restore_numpy(out, ts.extra.get(NUMPY_ORIGIN, []))


def _tensors_with_ties(weights_obj: dict, where: str) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    tensors: dict[str, np.ndarray] = {}
    aliases: dict[str, str] = {}
    seen: dict[tuple, str] = {}
    for name, value in weights_obj.items():
        if not isinstance(value, torch.Tensor):
            raise FormatError(f"{where}: state_dict entry {name!r} is a {type(value).__name__}, not a tensor")
        key = (value.untyped_storage().data_ptr(), value.storage_offset(), tuple(value.shape),
               tuple(value.stride()), value.dtype)
        if value.numel() > 0 and key in seen:
            aliases[name] = seen[key]
            tensors[name] = tensors[seen[key]]
            continue
        seen[key] = name
        tensors[name] = tensor_to_numpy(value, name)
    return tensors, aliases


def _training_from(obj: dict[str, Any], found: Found, where: str) -> TrainingState | None:
    """Everything but the weights; None when the object holds nothing else."""
    base = obj if found.weights else {k: v for k, v in obj.items() if not isinstance(v, torch.Tensor)}
    rest = without(base, [p for p in claimed_paths(found) if p])
    if not rest and found.optimizer is None and found.scheduler is None and not found.fields:
        return None

    def neutral(value: Any, name: str) -> Any:
        try:
            return to_neutral(value, name)
        except FormatError as exc:
            raise FormatError(f"{where}: {exc}") from exc

    ts = TrainingState()
    origin = numpy_paths(obj, [])
    if origin:
        ts.extra[NUMPY_ORIGIN] = origin
    if found.optimizer is not None:
        ts.optimizer = optimizer_from(neutral(get_path(obj, found.optimizer), path_text(found.optimizer)), where)
    if found.scheduler is not None:
        ts.scheduler = neutral(get_path(obj, found.scheduler), path_text(found.scheduler))
    for field, path in found.fields.items():
        setattr(ts, field, neutral(get_path(obj, path), path_text(path)))
        if path != (field,):
            ts.extra.setdefault(RENAMED, {})[field] = path[0] if len(path) == 1 else list(path)
    for key, value in rest.items():
        ts.extra[key] = neutral(value, str(key))
    ts.extra[KEY_ORDER] = list(obj)
    return ts


def optimizer_from(sd: Any, where: str) -> OptimizerState:
    """``OptimizerState`` from a torch optimizer state dict in portable form (its kind guessed from its state).

    Raises:
        FormatError: no ``param_groups``.
    """
    if not isinstance(sd, dict) or "param_groups" not in sd:
        raise FormatError(f"{where}: optimizer state has no 'param_groups'")
    state = sd.get("state", {})
    groups = sd["param_groups"]
    names: dict[int, str] = {}
    for group in groups:
        for pid, pname in zip(group.get("params", []), group.get("param_names", []), strict=False):
            names[pid] = pname
    kind = None
    first = next(iter(state.values()), {})
    if "exp_avg" in first and "exp_avg_sq" in first:
        kind = "AdamW" if groups and groups[0].get("decoupled_weight_decay") else "Adam"
    elif "momentum_buffer" in first:
        kind = "SGD"
    return OptimizerState(param_groups=groups, state=state, kind=kind, param_names=names)


def _checksums(ckpt: Checkpoint) -> dict[str, str]:
    sums = {name: integrity.tensor_digest(ckpt.tensors[name]) for name in ckpt.canonical_names()}
    if ckpt.training is not None:
        _, arrays = pack_training(ckpt.training)
        sums.update({name: integrity.tensor_digest(a) for name, a in arrays.items()})
    return sums


def _verify(ckpt: Checkpoint, sums: dict[str, str], path: Path) -> None:
    arrays = dict(ckpt.tensors)
    if ckpt.training is not None:
        arrays.update(pack_training(ckpt.training)[1])
    for name, expected in sums.items():
        if name not in arrays:
            raise IntegrityError(f"{path}: tensor {name!r} is recorded in its checksums but missing")
        got = integrity.tensor_digest(arrays[name])
        if got != expected:
            raise IntegrityError(f"{path}: checksum mismatch for tensor {name!r}: the data is corrupt")
