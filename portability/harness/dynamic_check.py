"""Does an artifact take the input axes the user declared dynamic (``--dynamic``)?

A graph runtime reports its input shapes (onnxruntime per graph input, the
SavedModel per signature key, where names are made safe for TF: ``input.1``
becomes ``input_1``); an axis it fixes to a size cannot take other sizes, and
the route fails saying so. Weights-only artifacts run in the model's own code
and have no shapes to check.
"""

from __future__ import annotations

import re

from portability.core.dynamic_axes import describe


def _keys(name: str) -> list[str]:
    """The keys a graph input may have in a runtime: its name, or the TF-safe form of it."""
    safe = re.sub(r"[^A-Za-z0-9_]", "_", name)
    return [name, safe, f"t_{safe}"]


def fixed_dynamic_axes(input_dims: dict[str, list[int | None]] | None,
                       declared: tuple[tuple[str, tuple[int, ...]], ...], fmt: str) -> list[str]:
    """One reason per declared axis the artifact fixes (empty when it keeps them all, or
    when the artifact reports no shapes).

    Args:
        input_dims: the runtime's input shapes by name, None for a dynamic axis.
        declared: ``(input name, axes)`` pairs.
        fmt: the artifact's format, for the message.
    """
    if not input_dims or not declared:
        return []
    reasons = []
    for name, axes in declared:
        dims = next((input_dims[key] for key in _keys(name) if key in input_dims), None)
        if dims is None:
            continue
        fixed = [(axis, dims[axis]) for axis in axes if axis < len(dims) and dims[axis] is not None]
        if fixed:
            sizes = ", ".join(f"axis {axis} to {size}" for axis, size in fixed)
            reasons.append(f"the {fmt} artifact fixes {sizes} of input {name!r}, declared dynamic "
                           f"({describe(name, axes)}): it cannot take other sizes there")
    return reasons
