"""Fit a checkpoint's tensors to a model the way transformers does.

- Prefixes: names saved from a ``DistributedDataParallel`` wrapper
  (``module.``) or a ``torch.compile`` model (``_orig_mod.``) are stripped, and
  a transformers base-model prefix (``bert.``) is stripped or added, when that
  is what makes the names fit. The checkpoint's own names never change.
- Unexpected names the model declares ignorable pass with a note: the model's
  non-persistent buffers (it computes them itself), the patterns in
  ``_keys_to_ignore_on_load_unexpected``, and the legacy buffers transformers
  ignores (``position_ids``, ``rotary_emb.inv_freq``) when the model has them.
- Missing names the model ties to a loaded tensor (``lm_head.weight`` to the
  input embedding) are re-tied, with a note; ``_keys_to_ignore_on_load_missing``
  patterns pass with a note.
- Everything else (other unexpected or missing names, a shape mismatch) is a
  ``FormatError`` that names the tensors.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import torch

from portability.adapters.torch.numpy_bridge import numpy_to_tensor
from portability.core.tensors import as_array
from portability.errors import FormatError

WRAPPER_PREFIXES = {"module.": "DistributedDataParallel", "_orig_mod.": "torch.compile"}
# transformers ignores these old persistent buffers when the model has a buffer of that name.
LEGACY_BUFFERS = (r"(^|\.)position_ids$", r"rotary_emb\.inv_freq$")
MAX_LISTED = 10
# ``apply_fit`` reads and loads the checkpoint's tensors this many bytes at a time.
LOAD_GROUP_BYTES = 64 * 2**20


@dataclass
class Fit:
    """How a checkpoint's tensors fit a model.

    Attributes:
        state: model name -> the checkpoint's tensor (an array, a lazy tensor or a
            torch tensor), read when ``apply_fit`` loads it.
        notes: what was stripped, ignored or re-tied, one line each.
        tied: missing model names that share a loaded tensor's storage.
        weights_key: the candidate the tensors came from when it is not the
            checkpoint's own weights (``model_ema`` next to ``model``), else None.
        left_initial: model names the checkpoint lacks and the model may miss,
            left at the values the model was built with.
    """

    state: dict[str, Any]
    notes: list[str] = field(default_factory=list)
    tied: dict[str, str] = field(default_factory=dict)
    weights_key: str | None = None
    left_initial: list[str] = field(default_factory=list)


def fit_tensors(model: torch.nn.Module, tensors: Mapping[str, Any], where: str) -> Fit:
    """Match checkpoint tensors to the model's state_dict names (the model is not changed).

    Raises:
        FormatError: unexpected or missing names, or shape mismatches (all listed).
    """
    expected = model.state_dict(keep_vars=True)
    state, notes = _renamed(dict(tensors), expected, model)
    unexpected = sorted(set(state) - set(expected))
    ignored = [n for n in unexpected if _ignorable(model, n)]
    unexpected = [n for n in unexpected if n not in ignored]
    wrong = [f"{n} {tuple(state[n].shape)} vs model {tuple(expected[n].shape)}"
             for n in state if n in expected and tuple(state[n].shape) != tuple(expected[n].shape)]
    if unexpected or wrong:
        parts = ([f"unexpected names: {', '.join(unexpected[:MAX_LISTED])}"] if unexpected else []) + \
                ([f"shape mismatch: {'; '.join(wrong[:MAX_LISTED])}"] if wrong else [])
        raise FormatError(f"checkpoint does not fit model {where}: {'; '.join(parts)}")
    if ignored:
        notes.append(f"ignored {len(ignored)} checkpoint tensors the model declares ignorable "
                     f"(legacy or non-persistent buffers it computes itself): {', '.join(ignored[:MAX_LISTED])}")
    tied = {n: t for n in expected if n not in state and (t := _tie_target(expected, n, state)) is not None}
    skippable = [n for n in expected if n not in state and n not in tied and _matches(
        getattr(model, "_keys_to_ignore_on_load_missing", None), n)]
    missing = [n for n in expected if n not in state and n not in tied and n not in skippable]
    if missing:
        raise FormatError(f"checkpoint does not fit model {where}: missing {len(missing)} "
                          f"tensors ({', '.join(missing[:MAX_LISTED])})")
    if tied:
        notes.append("re-tied " + ", ".join(f"{n} to {t}" for n, t in list(tied.items())[:MAX_LISTED]))
    if skippable:
        notes.append(f"left {len(skippable)} tensors the model may miss at their initial values: "
                     f"{', '.join(skippable[:MAX_LISTED])}")
    return Fit({n: t for n, t in state.items() if n not in ignored}, notes, tied, left_initial=skippable)


def apply_fit(model: torch.nn.Module, fit: Fit, group_bytes: int = LOAD_GROUP_BYTES) -> None:
    """Load a ``Fit`` into the model and re-tie what the model ties.

    Tensors are read from the checkpoint and loaded a group of at most
    ``group_bytes`` at a time (``load_state_dict`` on each group, so the
    model's own load hooks still run): memory holds the model plus one group,
    never a second copy of the whole checkpoint.
    """
    group: dict[str, torch.Tensor] = {}
    size = 0
    for name, value in fit.state.items():
        tensor = value if isinstance(value, torch.Tensor) else numpy_to_tensor(as_array(value))
        group[name] = tensor
        size += tensor.numel() * tensor.element_size()
        if size >= group_bytes:
            model.load_state_dict(group, strict=False)
            group, size = {}, 0
    if group or not fit.state:
        model.load_state_dict(group, strict=False)
    if hasattr(model, "tie_weights"):
        model.tie_weights()


def _renamed(state: dict[str, Any], expected: Mapping[str, Any],
             model: torch.nn.Module) -> tuple[dict[str, Any], list[str]]:
    """Strip wrapper prefixes (and a base-model prefix) when that makes the names fit."""
    notes: list[str] = []
    changed = True
    while changed and state:
        changed = False
        for prefix, wrapper in WRAPPER_PREFIXES.items():
            if all(n.startswith(prefix) for n in state) and not any(n.startswith(prefix) for n in expected):
                state = {n[len(prefix):]: t for n, t in state.items()}
                notes.append(f"stripped the {wrapper} prefix {prefix!r} from every checkpoint name "
                             "(the file keeps its names)")
                changed = True
    base = getattr(model, "base_model_prefix", "") or ""
    if base and not (set(state) & set(expected)):
        dotted = base + "."
        if all(n.startswith(dotted) for n in state):
            state = {n[len(dotted):]: t for n, t in state.items()}
            notes.append(f"stripped the base-model prefix {dotted!r} (a checkpoint of a model with a head)")
        elif any(n.startswith(dotted) for n in expected):
            state = {(dotted + n if dotted + n in expected else n): t for n, t in state.items()}
            notes.append(f"added the base-model prefix {dotted!r} (a checkpoint of the bare base model)")
    return state, notes


def _ignorable(model: torch.nn.Module, name: str) -> bool:
    if name in _non_persistent_buffers(model):
        return True
    if _matches(getattr(model, "_keys_to_ignore_on_load_unexpected", None), name):
        return True
    buffers = [n for n, _ in model.named_buffers()]
    return any(re.search(p, name) and any(re.search(p, b) for b in buffers) for p in LEGACY_BUFFERS)


def _non_persistent_buffers(model: torch.nn.Module) -> set[str]:
    return {f"{prefix}.{name}" if prefix else name
            for prefix, module in model.named_modules() for name in module._non_persistent_buffers_set}


def _matches(patterns: Any, name: str) -> bool:
    return bool(patterns) and any(re.search(p, name) for p in patterns)


def _tie_target(expected: Mapping[str, torch.Tensor], name: str, state: Mapping[str, Any]) -> str | None:
    """A loaded name whose tensor the model shares with ``name``, or None."""
    mine = expected[name]
    if mine.numel() == 0:
        return None
    for other, tensor in expected.items():
        if other != name and other in state and tensor.data_ptr() == mine.data_ptr() \
                and tensor.shape == mine.shape:
            return other
    return None

