"""``--dynamic NAME=AXES``: the input axes a graph export keeps symbolic.

``image=0,2,3`` marks the batch, height and width of input ``image`` dynamic in
the ONNX graph and in the SavedModel signature translated from it. Axes the
user does not name keep their defaults (every input's batch axis, and the
sequence axis of integer inputs such as token ids).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

from portability.errors import UsageError

# (input name, its dynamic axes) pairs, sorted by name: hashable, so options stay frozen.
DynamicAxes = tuple[tuple[str, tuple[int, ...]], ...]

_ITEM = re.compile(r"^(?P<name>[^=]+)=(?P<axes>\d+(?:\s*,\s*\d+)*)$")


def parse_dynamic(value: str | Iterable[str] | Mapping[str, Iterable[int]] | None) -> DynamicAxes:
    """Read ``--dynamic`` values: ``"image=0,2,3"`` strings (one or several), or a mapping
    ``{"image": [0, 2, 3]}`` from the library.

    Returns:
        The axes per input name, sorted; empty when nothing is declared.

    Raises:
        UsageError: a malformed item, a negative or repeated axis, or an input named twice.
    """
    if value is None:
        return ()
    pairs: list[tuple[str, tuple[int, ...]]] = []
    if isinstance(value, Mapping):
        for name, axes in value.items():
            pairs.append((str(name), _axes(str(name), [int(a) for a in axes])))
    else:
        for item in [value] if isinstance(value, str) else list(value):
            match = _ITEM.match(str(item).strip())
            if match is None:
                raise UsageError(f"--dynamic {item!r}: expected NAME=AXES with axes as non-negative "
                                 "integers, e.g. image=0,2,3")
            name = match["name"].strip()
            pairs.append((name, _axes(name, [int(a) for a in match["axes"].split(",")])))
    names = [name for name, _ in pairs]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise UsageError(f"--dynamic names input {twice[0]!r} more than once; list all its axes in one item")
    return tuple(sorted(pairs))


def _axes(name: str, axes: list[int]) -> tuple[int, ...]:
    if not axes:
        raise UsageError(f"--dynamic {name}=: no axes given")
    if any(a < 0 for a in axes):
        raise UsageError(f"--dynamic {name}={','.join(map(str, axes))}: axes must not be negative")
    if len(set(axes)) != len(axes):
        raise UsageError(f"--dynamic {name}={','.join(map(str, axes))}: an axis is named twice")
    return tuple(sorted(axes))


def as_dict(axes: DynamicAxes) -> dict[str, tuple[int, ...]]:
    """The declared axes by input name."""
    return dict(axes)


def describe(name: str, axes: Iterable[int]) -> str:
    """``--dynamic image=0,2,3``, as the user would write it."""
    return f"--dynamic {name}={','.join(str(a) for a in axes)}"
