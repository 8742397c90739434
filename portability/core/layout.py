"""How a checkpoint arranges its weights and training state, as paths of keys.

People save torch checkpoints as a bare ``{name: tensor}`` dict, or with the
weights under some key (``model_state``, ``net``, ``model``, ``ema``,
``{'model': {'model': ...}}``) next to optimizer state, scheduler state,
counters and anything else; ``portability.core.layout_search`` finds them.

A ``Layout`` records the paths found, so a writer rebuilds the original
nesting: ``without`` takes the claimed values out of the object (a ``SLOT``
keeps each one's place inside a container that stays), ``put_path`` puts them
back. Well-known arrangements keep a short name (``state_dict``, ``classic``,
``lightning``, ``model-key``); any other is ``nested`` followed by its paths as
JSON (``Checkpoint.layout`` is a string that every format carries).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from portability.errors import UsageError

KeyPath = tuple  # keys (str or int) from the top-level object down to a value

NESTED = "nested"
SLOT = "__portability_slot__"  # stands where a claimed value sat inside a kept container


@dataclass(frozen=True)
class Layout:
    """The paths of the weights, the optimizer state and the scheduler state.

    Attributes:
        name: ``state_dict``, ``classic``, ``lightning``, ``model-key`` or ``nested``.
        weights: path of the weights dict; ``()`` means the top level's tensors.
        optimizer: path of the optimizer state, or None.
        scheduler: path of the scheduler state, or None.
    """

    name: str
    weights: KeyPath = ()
    optimizer: KeyPath | None = None
    scheduler: KeyPath | None = None

    def to_text(self) -> str:
        """The string stored in ``Checkpoint.layout``."""
        if self.name != NESTED:
            return self.name
        doc = {"weights": list(self.weights)}
        for key in ("optimizer", "scheduler"):
            if getattr(self, key) is not None:
                doc[key] = list(getattr(self, key))
        return f"{NESTED} {json.dumps(doc, separators=(',', ':'))}"


NAMED = {
    layout.name: layout
    for layout in (
        Layout("state_dict"),
        Layout("classic", ("model_state_dict",), ("optimizer_state_dict",), ("scheduler_state_dict",)),
        Layout("lightning", ("state_dict",), ("optimizer_states", 0), ("lr_schedulers", 0)),
        Layout("model-key", ("model",), ("optimizer",), ("scheduler",)),
        # A Hugging Face Trainer directory's files, held in one object when written to one file.
        Layout("hf-trainer", ("model",), ("optimizer",), ("scheduler",)),
    )
}


def parse_layout(text: str | None) -> Layout:
    """Invert ``Layout.to_text``; an unknown or missing text means a bare state_dict."""
    if text and text.startswith(NESTED + " "):
        try:
            doc = json.loads(text[len(NESTED) + 1:])
            return Layout(NESTED, tuple(doc["weights"]),
                          *(tuple(doc[k]) if doc.get(k) is not None else None for k in ("optimizer", "scheduler")))
        except (ValueError, KeyError, TypeError):
            return NAMED["state_dict"]
    return NAMED.get(text or "", NAMED["state_dict"])


def layout_for(weights: KeyPath, optimizer: KeyPath | None, scheduler: KeyPath | None) -> Layout:
    """The named layout these paths match, else a ``nested`` one."""
    for layout in NAMED.values():
        if (layout.weights == weights and optimizer in (None, layout.optimizer)
                and scheduler in (None, layout.scheduler)):
            return layout
    return Layout(NESTED, weights, optimizer, scheduler)


def path_text(path: KeyPath) -> str:
    """``model.ema`` for ``('model', 'ema')``; the top level is ``(top level)``."""
    return ".".join(str(k) for k in path) if path else "(top level)"


def children(obj: Any) -> list[tuple[Any, Any]]:
    """``(key, value)`` pairs of a dict, or ``(index, item)`` of a list or tuple."""
    if isinstance(obj, dict):
        return list(obj.items())
    if isinstance(obj, (list, tuple)):
        return list(enumerate(obj))
    return []


def resolve_key(obj: Any, text: str) -> KeyPath:
    """The path ``--weights-key KEY[.SUB]`` names in ``obj``.

    Keys may themselves hold dots: at each level the longest run of dotted parts
    that is a key wins. Digits match integer keys and list positions.

    Raises:
        UsageError: no such key (the message lists the keys at that level).
    """
    parts, path, node = text.split("."), [], obj
    while parts:
        for n in range(len(parts), 0, -1):
            key = _child_key(node, ".".join(parts[:n]))
            if key is not None:
                path.append(key)
                node = node[key]
                parts = parts[n:]
                break
        else:
            keys = ", ".join(str(k) for k, _ in children(node)[:20]) or "none"
            where = f"under {path_text(tuple(path))}" if path else "at the top level"
            raise UsageError(f"--weights-key {text}: no key {parts[0]!r} {where} (keys: {keys})")
    return tuple(path)


def _child_key(node: Any, text: str) -> Any:
    if isinstance(node, dict):
        if text in node:
            return text
        if text.isdigit() and int(text) in node:
            return int(text)
    if isinstance(node, (list, tuple)) and text.isdigit() and int(text) < len(node):
        return int(text)
    return None


def get_path(obj: Any, path: KeyPath) -> Any:
    """The value at ``path``."""
    for key in path:
        obj = obj[key]
    return obj


# Keys that map onto TrainingState fields (searched at the top level, then one level down).
def without(obj: dict, paths: list[KeyPath]) -> dict:
    """``obj`` minus the values at ``paths``, copied where changed (``obj`` is untouched).

    A top-level key is dropped; a deeper value becomes ``SLOT`` so its container
    keeps its order. A top-level entry left holding nothing but slots is dropped.
    """
    rest = dict(obj)
    for path in paths:
        if len(path) == 1:
            rest.pop(path[0], None)
        elif len(path) > 1:
            rest[path[0]] = _with_slot(rest[path[0]], path[1:])
    return {k: v for k, v in rest.items() if not _only_slots(v)}


def _with_slot(node: Any, path: KeyPath) -> Any:
    copy = dict(node) if isinstance(node, dict) else list(node)
    key = path[0]
    copy[key] = SLOT if len(path) == 1 else _with_slot(copy[key], path[1:])
    return tuple(copy) if isinstance(node, tuple) else copy


def _only_slots(value: Any) -> bool:
    if isinstance(value, str):
        return value == SLOT
    if isinstance(value, (dict, list, tuple)) and value:
        return all(_only_slots(v) for _, v in children(value))
    return False


def put_path(root: dict, path: KeyPath, value: Any) -> None:
    """Set ``root[path] = value`` in place, creating missing containers (a dict,
    or a list where the next key is an integer) and filling a ``SLOT``."""
    node = root
    for i, key in enumerate(path):
        last = i == len(path) - 1
        fresh = value if last else ([] if isinstance(path[i + 1], int) else {})
        if isinstance(node, list):
            while len(node) <= key:
                node.append(SLOT)
            if last or (isinstance(node[key], str) and node[key] == SLOT):
                node[key] = fresh
            elif isinstance(node[key], tuple):
                node[key] = list(node[key])
            node = node[key]
        else:
            if last or key not in node or (isinstance(node[key], str) and node[key] == SLOT):
                node[key] = fresh
            elif isinstance(node[key], tuple):
                node[key] = list(node[key])
            node = node[key]
