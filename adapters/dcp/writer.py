"""Write any ``Checkpoint`` as a DCP directory with ``torch.distributed.checkpoint.save``.

The saved tree is ``{"model": weights, "optimizer": ..., "scheduler": ...,
<counters>, "portability": record}``: weights under ``model`` as FSDP resumes
load them, the optimizer keyed by parameter name when every parameter's name
is known (the ``get_state_dict`` convention ``set_state_dict`` expects), else
by id as ``optimizer.state_dict()`` gives it. Tied names are saved once; the
record (a small dict) keeps the ties, the metadata, the layout and the order.
Runs in one process without a process group.
"""

from __future__ import annotations

import dataclasses
import warnings
from pathlib import Path
from typing import Any

import torch.distributed.checkpoint as dcp
from torch.distributed.checkpoint import FileSystemWriter

from portability.adapters.dcp.reader import RECORD_KEY
from portability.adapters.torch import state_dict as torch_state_dict
from portability.adapters.torch.safety import first_line
from portability.core.checkpoint import Checkpoint
from portability.core.options import WriteOptions
from portability.errors import WriteError


def write(ckpt: Checkpoint, path: Path, options: WriteOptions = WriteOptions()) -> None:
    """Write ``ckpt`` as a DCP directory at ``path``.

    Raises:
        WriteError: DCP failed to write (the caller removes the directory).
        OSError: the disk is full or not writable.
    """
    obj = torch_state_dict.object_from_checkpoint(dataclasses.replace(ckpt, layout="model-key"))
    model = obj.setdefault("model", {})
    for alias in ckpt.aliases:
        model.pop(alias, None)
    if ckpt.training is not None and ckpt.training.optimizer is not None and "optimizer" in obj:
        obj["optimizer"] = _by_name(obj["optimizer"], ckpt.training.optimizer.param_names)
    obj[RECORD_KEY] = {"aliases": dict(ckpt.aliases), "metadata": dict(ckpt.metadata),
                       "layout": ckpt.layout, "order": list(ckpt.tensors)}
    path.mkdir(parents=True, exist_ok=True)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # DCP warns that it runs without a process group
            dcp.save(obj, storage_writer=FileSystemWriter(str(path)), no_dist=True)
    except OSError:
        raise
    except Exception as exc:  # DCP wraps writer failures in CheckpointException
        inner = next(iter(getattr(exc, "failures", {}).values()), exc)
        if isinstance(inner, OSError):
            raise inner from exc
        raise WriteError(f"{path}: DCP save failed ({first_line(inner)})") from inner


def _by_name(opt: dict[str, Any], names: dict[int, str]) -> dict[str, Any]:
    ids = [p for group in opt.get("param_groups", []) for p in group.get("params", [])]
    if not ids or not all(i in names for i in ids) or len({names[i] for i in ids}) != len(ids):
        return opt
    groups = [{**group, "params": [names[i] for i in group["params"]]} for group in opt["param_groups"]]
    return {"state": {names[i]: value for i, value in opt.get("state", {}).items() if i in names},
            "param_groups": groups}
