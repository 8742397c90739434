"""What ``portability inspect`` reports about a checkpoint."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from portability.core.checkpoint import Checkpoint
from portability.core.conversion import read_checkpoint
from portability.core.dtypes import dtype_name
from portability.core.formats import ReadOptions
from portability.core.layout import parse_layout, path_text
from portability.core.layout_search import candidates_in
from portability.core.tensors import iter_bytes
from portability.errors import IntegrityError


def inspect_checkpoint(path: str | Path, *, trust_pickle: bool = False, fmt: str | None = None,
                       weights_key: str | None = None) -> dict[str, Any]:
    """Describe a checkpoint and verify its integrity.

    Args:
        path: the checkpoint file or directory.
        trust_pickle: allow torch pickles that need other globals.
        fmt: the format, when detection should be skipped.
        weights_key: where the weights sit in a nested torch checkpoint (``KEY[.SUB]``).

    Returns:
        A JSON-able dict: ``path``, ``format``, ``layout`` (its name),
        ``weights_key`` (where the weights were found: ``(top level)`` or a
        dotted key), ``weight_candidates`` (every dict of tensors that could be
        the weights: key, tensors, parameters; the chosen one first), ``tensors`` (name,
        dtype, shape, bytes, alias_of), ``parameters``, ``total_bytes``,
        ``training_state`` and ``integrity`` (``status`` is ``ok``,
        ``no-checksums`` or ``failed``, with a ``message``).

    Raises:
        FormatError, UnsafeCheckpointError: the file cannot be read at all.
    """
    try:
        ckpt, fmt = read_checkpoint(path, fmt, ReadOptions(trust_pickle=trust_pickle, weights_key=weights_key))
        integrity = _verify_all(ckpt)
    except IntegrityError as exc:
        return {"path": str(path), "format": fmt, "integrity": {"status": "failed", "message": str(exc)}}
    tensors = [
        {"name": name, "dtype": dtype_name(t.dtype), "shape": list(t.shape), "bytes": int(t.nbytes),
         "alias_of": ckpt.aliases.get(name)}
        for name, t in ckpt.tensors.items()
    ]
    return {
        "path": str(path),
        "format": fmt,
        "layout": parse_layout(ckpt.layout).name,
        "weights_key": path_text(parse_layout(ckpt.layout).weights),
        "weight_candidates": [
            {"key": key, "tensors": len(arrays), "parameters": sum(int(a.size) for a in arrays.values())}
            for key, arrays in candidates_in(ckpt)],
        "tensors": tensors,
        "parameters": ckpt.parameter_count(),
        "total_bytes": sum(int(ckpt.tensors[n].nbytes) for n in ckpt.canonical_names()),
        "metadata": ckpt.metadata,
        "training_state": _training_summary(ckpt),
        "integrity": integrity,
    }


def _verify_all(ckpt: Checkpoint) -> dict[str, Any]:
    """Read every tensor's bytes so lazy checksums are checked."""
    for name in ckpt.canonical_names():
        for _ in iter_bytes(ckpt.tensors[name]):
            pass
    if ckpt.checksummed:
        return {"status": "ok", "message": f"{len(ckpt.canonical_names())} tensors match their checksums"}
    return {"status": "no-checksums", "message": "structure is valid; the file records no checksums"}


# The other files of a Trainer directory travel as bytes under this training-state entry.
CARRIED = "files"
FILE_NOTES = {
    "training_args.bin": "training_args.bin: a pickled TrainingArguments object, carried as its bytes and never "
                         "unpickled (its facts are in trainer_state.json and config.json)",
}


def _training_summary(ckpt: Checkpoint) -> dict[str, Any]:
    ts = ckpt.training
    if ts is None:
        return {"present": False}
    opt = ts.optimizer
    return {
        "present": True,
        "optimizer": None if opt is None else {
            "kind": opt.kind,
            "param_groups": len(opt.param_groups),
            "parameters_with_state": len(opt.state),
        },
        "scheduler": ts.scheduler is not None,
        "epoch": ts.epoch,
        "global_step": ts.global_step,
        "loss": _scalar(ts.loss),
        "rng": sorted(ts.rng),
        "data_position": ts.data_position,
        "scaler": "scaler_state_dict" in ts.extra,
        "extra_keys": sorted(k for k in ts.extra if not k.startswith("__")),
        "carried_files": {name: int(getattr(data, "size", 0)) for name, data in ts.extra.get(CARRIED, {}).items()},
        "notes": [note for name, note in FILE_NOTES.items() if name in ts.extra.get(CARRIED, {})],
    }


def _scalar(value: Any) -> Any:
    try:
        return float(value) if value is not None else None
    except (TypeError, ValueError):
        return None
