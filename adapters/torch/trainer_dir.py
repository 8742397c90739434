"""Read and write Hugging Face Trainer checkpoint directories as training checkpoints.

Reading: the weights come from ``model.safetensors`` (or ``pytorch_model.bin``,
single or sharded); the optimizer, scheduler, RNG and scaler states from their
pickles, under ``weights_only`` unpickling (``rng_state*.pth`` with exactly the
globals numpy's RNG state needs, ``safety.rng_state_globals``); ``global_step`` and ``epoch`` from
``trainer_state.json``. Every other file of the directory (``config.json``,
``training_args.bin``, tokenizer files...) is carried as its bytes, never
unpickled: ``training_args.bin`` is a whole pickled ``TrainingArguments`` object,
and its facts are in ``trainer_state.json`` and ``config.json`` anyway.

A training file that cannot be read fails the read with the file named: the
directory is never silently taken for its weights alone. ``ReadOptions.weights_only``
reads the weights and nothing else.

Writing a checkpoint whose layout is ``hf-trainer`` to a directory gives the
same files back, so the Trainer resumes from it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch

from portability.adapters.torch.numpy_bridge import numpy_paths, restore_numpy, to_neutral, to_torch
from portability.adapters.torch.safety import load_pickle, rng_state_globals
from portability.adapters.torch.trainer_files import (
    OPTIMIZER,
    SCALER,
    SCHEDULER,
    TRAINER_LAYOUT,
    TRAINER_STATE,
    WEIGHT_FILES,
    is_training_file,
    rng_files,
    weights_file,
)
from portability.core.checkpoint import Checkpoint, OptimizerState, TrainingState
from portability.core.options import ReadOptions, WriteOptions
from portability.errors import FormatError, PortabilityError, UnsafeCheckpointError, WriteError

BOOKKEEPING = "__trainer__"  # extra entry: file names and where numpy arrays stood, per file
FILES = "files"  # extra entry: the other files of the directory, as bytes
RNG_OTHERS = "rng_state_files"  # extra entry: rng_state_N.pth of processes after the first
SCALER_KEY = "scaler_state_dict"
HINT = "pass --weights-only to convert the weights alone"


def read(path: Path, options: ReadOptions) -> Checkpoint:
    """Read a Trainer checkpoint directory.

    Raises:
        FormatError, UnsafeCheckpointError: a weights or training file cannot be read (named).
    """
    from portability.core.formats import load_adapter

    source = weights_file(path)
    fmt = "safetensors" if ".safetensors" in source.name else "torch"
    ckpt = load_adapter(fmt).read(source, options)
    if options.weights_only:
        return Checkpoint(tensors=ckpt.tensors, aliases=ckpt.aliases, metadata=ckpt.metadata,
                          checksummed=ckpt.checksummed)
    ts = TrainingState()
    book: dict[str, Any] = {"weights_file": source.name, "numpy": {}}
    state = _json(path / TRAINER_STATE) if (path / TRAINER_STATE).is_file() else None
    if state is not None:
        ts.extra["trainer_state"] = state
        ts.global_step, ts.epoch = state.get("global_step"), state.get("epoch")
    if (path / OPTIMIZER).is_file():
        ts.optimizer = _optimizer(_pickle(path / OPTIMIZER, options, book))
    if (path / SCHEDULER).is_file():
        ts.scheduler = _pickle(path / SCHEDULER, options, book)
    if (path / SCALER).is_file():
        ts.extra[SCALER_KEY] = _pickle(path / SCALER, options, book)
    rngs = rng_files(path)
    if rngs:
        book["rng_files"] = [p.name for p in rngs]
        ts.rng = _pickle(rngs[0], options, book, rng_state_globals())
        if len(rngs) > 1:
            ts.extra[RNG_OTHERS] = {p.name: _pickle(p, options, book, rng_state_globals()) for p in rngs[1:]}
    carried = {p.name: np.frombuffer(p.read_bytes(), dtype=np.uint8).copy() for p in sorted(path.iterdir())
               if p.is_file() and not is_training_file(p.name) and not _is_weights(path, p)}
    if carried:
        ts.extra[FILES] = carried
    ts.extra[BOOKKEEPING] = book
    return Checkpoint(tensors=ckpt.tensors, aliases=ckpt.aliases, metadata=ckpt.metadata, training=ts,
                      layout=TRAINER_LAYOUT, checksummed=ckpt.checksummed)


def _is_weights(path: Path, p: Path) -> bool:
    """The weights entry point, and the shards an index names."""
    if p.name in WEIGHT_FILES:
        return True
    index = next((path / n for n in WEIGHT_FILES if n.endswith(".index.json") and (path / n).is_file()), None)
    if index is None:
        return False
    try:
        return p.name in set(json.loads(index.read_text())["weight_map"].values())
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return False


def _json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise FormatError(f"{path}: not readable JSON ({type(exc).__name__}: {exc}); {HINT}") from exc


def _pickle(path: Path, options: ReadOptions, book: dict[str, Any], allowed: list[Any] | None = None) -> Any:
    """A training file's object in portable form (arrays for tensors); the places of its
    numpy arrays go to ``book`` so a writer gives them back as numpy. ``allowed``: the globals
    beyond torch's own (default: the numpy ones ``safety`` allows)."""
    try:
        obj = load_pickle(path, options.trust_pickle, allowed)
    except UnsafeCheckpointError as exc:
        raise UnsafeCheckpointError(f"{exc}; or {HINT}") from exc
    except PortabilityError as exc:
        raise type(exc)(f"{exc}; {HINT}") from exc
    origin = numpy_paths(obj, [])
    if origin:
        book["numpy"][path.name] = origin
    try:
        return to_neutral(obj, path.name)
    except FormatError as exc:
        raise FormatError(f"{path}: {exc}; {HINT}") from exc


def _optimizer(sd: Any) -> OptimizerState:
    from portability.adapters.torch.state_dict import optimizer_from

    return optimizer_from(sd, OPTIMIZER)


def write(ckpt: Checkpoint, path: Path, options: WriteOptions) -> None:
    """Write a ``hf-trainer`` checkpoint as a Trainer directory at ``path``.

    Raises:
        WriteError: a file could not be written.
    """
    from portability.core.formats import load_adapter

    ts = ckpt.training or TrainingState()
    book = ts.extra.get(BOOKKEEPING, {})
    numpy_at = book.get("numpy", {})
    path.mkdir(parents=True, exist_ok=True)
    weights = Checkpoint(tensors=ckpt.tensors, aliases=ckpt.aliases, metadata=dict(ckpt.metadata))
    name = book.get("weights_file", "model.safetensors")
    if name.endswith(".index.json"):  # shards are rewritten as one file
        name = name[: -len(".index.json")]
    load_adapter("safetensors" if name.endswith(".safetensors") else "torch").write(weights, path / name, options)
    files: dict[str, Any] = {}
    if ts.optimizer is not None:
        files[OPTIMIZER] = {"state": ts.optimizer.state, "param_groups": ts.optimizer.param_groups}
    if ts.scheduler is not None:
        files[SCHEDULER] = ts.scheduler
    if SCALER_KEY in ts.extra:
        files[SCALER] = ts.extra[SCALER_KEY]
    rng_names = book.get("rng_files", ["rng_state.pth"])
    if ts.rng:
        files[rng_names[0]] = ts.rng
    files.update(ts.extra.get(RNG_OTHERS, {}))
    try:
        for file_name, obj in files.items():
            torch.save(restore_numpy(to_torch(obj), numpy_at.get(file_name, [])), path / file_name)
        if "trainer_state" in ts.extra:
            (path / TRAINER_STATE).write_text(json.dumps(ts.extra["trainer_state"], indent=2, sort_keys=True) + "\n")
        for file_name, data in ts.extra.get(FILES, {}).items():
            (path / file_name).write_bytes(np.asarray(data, dtype=np.uint8).tobytes())
    except (OSError, RuntimeError) as exc:
        raise WriteError(f"{path}: writing the Trainer directory failed ({type(exc).__name__}: {exc})") from exc
