"""Split ``TrainingState`` into JSON and named arrays, and join them again.

Formats without pickle (safetensors) store the arrays as tensors under
``TRAINING_PREFIX`` and the JSON as string metadata, so a training checkpoint
resumes without executing anything.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from portability.core import tree
from portability.core.checkpoint import OptimizerState, TrainingState
from portability.errors import FormatError

TRAINING_PREFIX = "__training__"
FORMAT_VERSION = 1


def pack_training(state: TrainingState) -> tuple[str, dict[str, np.ndarray]]:
    """Return ``(json_text, arrays)`` for a training state."""
    arrays: dict[str, np.ndarray] = {}
    doc: dict[str, Any] = {"version": FORMAT_VERSION}
    if state.optimizer is not None:
        opt = state.optimizer
        doc["optimizer"] = {
            "kind": opt.kind,
            "param_groups": tree.encode(opt.param_groups, f"{TRAINING_PREFIX}.param_groups", arrays),
            "state": tree.encode(opt.state, f"{TRAINING_PREFIX}.optimizer", arrays),
            "param_names": tree.encode(opt.param_names, f"{TRAINING_PREFIX}.param_names", arrays),
        }
    for key in ("scheduler", "epoch", "global_step", "loss", "rng", "data_position", "extra"):
        doc[key] = tree.encode(getattr(state, key), f"{TRAINING_PREFIX}.{key}", arrays)
    return json.dumps(doc), arrays


def unpack_training(text: str, arrays: dict[str, Any]) -> TrainingState:
    """Invert ``pack_training``."""
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise FormatError(f"training state metadata is not valid JSON ({exc}): damaged checkpoint") from exc
    state = TrainingState()
    opt = doc.get("optimizer")
    if opt is not None:
        state.optimizer = OptimizerState(
            kind=opt.get("kind"),
            param_groups=tree.decode(opt["param_groups"], arrays),
            state=tree.decode(opt["state"], arrays),
            param_names=tree.decode(opt.get("param_names", {}), arrays),
        )
    for key in ("scheduler", "epoch", "global_step", "loss", "rng", "data_position", "extra"):
        if key in doc:
            setattr(state, key, tree.decode(doc[key], arrays))
    if state.rng is None:
        state.rng = {}
    if state.extra is None:
        state.extra = {}
    return state
