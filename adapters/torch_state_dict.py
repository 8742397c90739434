"""PyTorch adapter: ``.pt/.pth/.bin/.ckpt`` state_dicts and training checkpoints.

Reading uses ``torch.load(weights_only=True)``: a file whose pickle needs other
globals is refused, naming them, unless the caller trusts it. Files this
adapter writes carry a ``portability.json`` record inside the zip archive with
an xxh3 checksum per tensor, the tied-weight aliases and the metadata; torch
ignores the record, and ``read`` verifies it.
"""

from __future__ import annotations

import json
import pickle
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from portability import integrity
from portability.checkpoint import Checkpoint, OptimizerState, TrainingState
from portability.errors import FormatError, IntegrityError, UnsafeCheckpointError
from portability.formats import ReadOptions, WriteOptions
from portability.tensors import as_array
from portability.training_codec import pack_training
from portability.adapters.torch_convert import tensor_to_numpy, to_neutral, to_torch
from portability.adapters.torch_layouts import LAYOUTS, SCALAR_FIELDS, recognise

RECORD = "portability.json"
RENAMED = "__renamed__"  # extra entry: TrainingState field -> the source's key name


def read(path: str | Path, options: ReadOptions = ReadOptions()) -> Checkpoint:
    """Read a torch checkpoint file into a ``Checkpoint``.

    Raises:
        FormatError: not a torch file, truncated, or holding unconvertible objects.
        UnsafeCheckpointError: the pickle needs globals and ``trust_pickle`` is off.
        IntegrityError: a recorded checksum does not match (names the tensor).
    """
    path = Path(path)
    obj = _load(path, options.trust_pickle)
    ckpt = checkpoint_from_object(obj, str(path))
    record = _read_record(path)
    if record is not None:
        ckpt.metadata.update(record.get("metadata", {}))
        ckpt.aliases.update({a: t for a, t in record.get("aliases", {}).items() if a in ckpt.tensors})
        if options.verify:
            _verify(ckpt, record.get("checksums", {}), path)
        ckpt.checksummed = True
    return ckpt


def write(ckpt: Checkpoint, path: str | Path, options: WriteOptions = WriteOptions()) -> None:
    """Write a ``Checkpoint`` with ``torch.save`` in its original layout, plus checksums."""
    path = Path(path)
    obj = object_from_checkpoint(ckpt)
    with open(path, "wb") as f:
        torch.save(obj, f)
    record = {
        "version": 1,
        "algorithm": integrity.ALGORITHM,
        "checksums": _checksums(ckpt),
        "aliases": ckpt.aliases,
        "metadata": ckpt.metadata,
    }
    with zipfile.ZipFile(path, "a") as z:
        prefix = z.namelist()[0].split("/")[0]
        z.writestr(f"{prefix}/{RECORD}", json.dumps(record))


def checkpoint_from_object(obj: Any, where: str = "checkpoint") -> Checkpoint:
    """Turn what ``torch.load`` returned (or an in-memory dict) into a ``Checkpoint``.

    Raises:
        FormatError: the object holds values with no portable form.
    """
    layout = recognise(obj, lambda v: isinstance(v, torch.Tensor))
    if not isinstance(obj, dict):
        raise FormatError(f"{where}: holds a {type(obj).__name__}, not a state_dict or checkpoint dict")
    weights_obj = obj if layout.weights is None else obj[layout.weights]
    tensors, aliases = _tensors_with_ties(weights_obj, where)
    rest = {k: v for k, v in obj.items() if k != layout.weights} if layout.weights else {
        k: v for k, v in obj.items() if not isinstance(v, torch.Tensor)}
    training = _training_from(rest, layout, where)
    return Checkpoint(tensors=tensors, aliases=aliases, training=training, layout=layout.name)


def object_from_checkpoint(ckpt: Checkpoint) -> dict[str, Any]:
    """Inverse of ``checkpoint_from_object``: the dict ``torch.save`` should write."""
    weights: dict[str, torch.Tensor] = {}
    for name, value in ckpt.tensors.items():
        target = ckpt.aliases.get(name)
        weights[name] = weights[target] if target in weights else to_torch(as_array(value))
    layout = LAYOUTS.get(ckpt.layout, LAYOUTS["state_dict"])
    if ckpt.training is None:
        return weights if layout.weights is None else {layout.weights: weights}
    ts = ckpt.training
    out: dict[str, Any] = {} if layout.weights is None else {layout.weights: weights}
    if layout.weights is None:
        out.update(weights)
    if ts.optimizer is not None and layout.optimizer:
        opt = {"state": to_torch(ts.optimizer.state), "param_groups": to_torch(ts.optimizer.param_groups)}
        out[layout.optimizer] = [opt] if layout.optimizer_is_list else opt
    if ts.scheduler is not None and layout.scheduler:
        sched = to_torch(ts.scheduler)
        out[layout.scheduler] = [sched] if layout.optimizer_is_list else sched
    renamed = ts.extra.get(RENAMED, {})
    for key in ("epoch", "global_step", "loss", "data_position", "rng"):
        value = getattr(ts, key)
        if value is not None and not (key == "rng" and not value):
            out[renamed.get(key, key)] = to_torch(value)
    for key, value in ts.extra.items():
        if key != RENAMED:
            out[key] = to_torch(value)
    return out


def _load(path: Path, trust_pickle: bool) -> Any:
    is_zip = zipfile.is_zipfile(path)
    try:
        return torch.load(path, map_location="cpu", weights_only=not trust_pickle, mmap=is_zip)
    except pickle.UnpicklingError as exc:
        if "Unsupported global" in str(exc) or _unsafe_globals(path):
            raise UnsafeCheckpointError(_unsafe_message(path, exc)) from None
        raise FormatError(f"{path}: corrupt pickle ({_first_line(exc)})") from None
    except RuntimeError as exc:
        if "zip archive" in str(exc) or "PytorchStreamReader" in str(exc):
            raise FormatError(f"{path}: truncated or corrupt torch zip archive ({_first_line(exc)})") from None
        raise FormatError(f"{path}: cannot be read as a torch checkpoint ({_first_line(exc)})") from None
    except (EOFError, ValueError, KeyError, AttributeError, TypeError, IndexError, OSError) as exc:
        raise FormatError(f"{path}: not a readable torch checkpoint ({type(exc).__name__}: {_first_line(exc)})") from None


def _unsafe_globals(path: Path) -> list[str]:
    try:
        return list(torch.serialization.get_unsafe_globals_in_checkpoint(str(path)))
    except Exception:  # legacy (non-zip) or damaged files cannot be scanned
        return []


def _unsafe_message(path: Path, exc: Exception) -> str:
    names = _unsafe_globals(path)
    listed = ", ".join(names) if names else _first_line(exc)
    return (f"{path}: refusing to unpickle: the file needs globals that could run code "
            f"({listed}); pass --trust-pickle only if you trust where it came from")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


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


def _training_from(rest: dict[str, Any], layout, where: str) -> TrainingState | None:
    if not rest:
        return None
    ts = TrainingState()
    for key, value in rest.items():
        neutral = to_neutral(value, key)
        if key == layout.optimizer:
            if layout.optimizer_is_list:
                if len(neutral) != 1:
                    ts.extra[key] = neutral
                    continue
                neutral = neutral[0]
            ts.optimizer = _optimizer_from(neutral, where)
        elif key == layout.scheduler or (layout.name == "model-key" and key == "lr_scheduler"):
            if layout.optimizer_is_list:
                if len(neutral) != 1:
                    ts.extra[key] = neutral
                    continue
                neutral = neutral[0]
            ts.scheduler = neutral
        elif key in SCALAR_FIELDS and getattr(ts, SCALAR_FIELDS[key]) in (None, {}):
            setattr(ts, SCALAR_FIELDS[key], neutral)
            if key != SCALAR_FIELDS[key]:
                ts.extra.setdefault(RENAMED, {})[SCALAR_FIELDS[key]] = key
        else:
            ts.extra[key] = neutral
    return ts


def _optimizer_from(sd: Any, where: str) -> OptimizerState:
    if not isinstance(sd, dict) or "param_groups" not in sd:
        raise FormatError(f"{where}: optimizer state has no 'param_groups'")
    state = sd.get("state", {})
    groups = sd["param_groups"]
    names: dict[int, str] = {}
    for group in groups:
        for pid, pname in zip(group.get("params", []), group.get("param_names", [])):
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


def _read_record(path: Path) -> dict | None:
    if not zipfile.is_zipfile(path):
        return None
    try:
        with zipfile.ZipFile(path) as z:
            for info in z.infolist():
                if info.filename.endswith("/" + RECORD):
                    return json.loads(z.read(info))
    except (zipfile.BadZipFile, json.JSONDecodeError, OSError) as exc:
        raise FormatError(f"{path}: unreadable {RECORD} record ({exc})") from None
    return None
