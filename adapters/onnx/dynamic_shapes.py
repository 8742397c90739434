"""Which input axes an export keeps symbolic, and the check that it did.

By default every input's batch axis (``batch``, shared) and the sequence axis
of integer inputs of rank 2 or more (``sequence``) are dynamic. ``--dynamic
NAME=AXES`` adds axes per input, named ``<input>_<axis>`` in the graph (axis 0
stays ``batch``). Declared axes are always strict ``torch.export.Dim`` s: if the
model cannot take them dynamic, the export fails with the exporter's reason,
and a graph that came out with a declared axis fixed is refused.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import onnx_ir as ir
import torch

from portability.core.dynamic_axes import describe
from portability.errors import UnsupportedOpError, UsageError


def check_declared(declared: Mapping[str, tuple[int, ...]], inputs: Mapping[str, np.ndarray], where: str) -> None:
    """Refuse declared axes the example inputs cannot show as dynamic.

    Raises:
        UsageError: an unknown input name, an axis past the input's rank, or an axis of
            size 0 or 1 in the example (torch.export fixes such sizes).
    """
    for name, axes in declared.items():
        if name not in inputs:
            raise UsageError(f"{describe(name, axes)}: {where} has no input {name!r} "
                             f"(its inputs: {', '.join(inputs)})")
        shape = np.shape(inputs[name])
        for axis in axes:
            if axis >= len(shape):
                raise UsageError(f"{describe(name, axes)}: input {name!r} has rank {len(shape)}, no axis {axis}")
            if axis != 0 and shape[axis] < 2:
                raise UsageError(f"{describe(name, axes)}: axis {axis} of the example input {name!r} has size "
                                 f"{shape[axis]}; torch.export fixes sizes 0 and 1, so give inputs of size "
                                 "2 or more on every dynamic axis")


def dynamic_shapes(kwargs: Mapping[str, torch.Tensor], names: Mapping[str, str], auto: bool,
                   declared: Mapping[str, tuple[int, ...]]) -> dict[str, dict[int, Any]]:
    """``dynamic_shapes`` for ``torch.onnx.export``, per forward parameter.

    Args:
        kwargs: the example inputs by forward parameter.
        names: forward parameter -> graph input name.
        auto: let torch.export decide the default axes (``Dim.AUTO``), for models that
            fix their batch; declared axes stay strict.
        declared: graph input name -> the axes the user declared dynamic.
    """
    batch, seq = torch.export.Dim("batch"), torch.export.Dim("sequence")
    shapes: dict[str, dict[int, Any]] = {}
    for param, t in kwargs.items():
        axes: dict[int, Any] = {}
        if t.ndim >= 1:
            axes[0] = torch.export.Dim.AUTO if auto else batch
        if t.ndim >= 2 and not t.is_floating_point() and t.shape[1] >= 2:
            axes[1] = torch.export.Dim.AUTO if auto else seq
        name = names[param]
        for axis in declared.get(name, ()):
            axes[axis] = batch if axis == 0 else torch.export.Dim(_dim_name(name, axis))
        shapes[param] = axes
    return shapes


def _dim_name(name: str, axis: int) -> str:
    cleaned = "".join(c if c.isalnum() else "_" for c in name)
    return f"{cleaned if cleaned[:1].isalpha() else 'x_' + cleaned}_{axis}"


def check_exported(model: ir.Model, declared: Mapping[str, tuple[int, ...]], where: str) -> None:
    """Refuse a graph whose inputs fix an axis the user declared dynamic.

    Raises:
        UnsupportedOpError: names the input, the axis and the size it was fixed to.
    """
    by_name = {value.name: value for value in model.graph.inputs}
    for name, axes in declared.items():
        value = by_name.get(name)
        dims = [] if value is None or value.shape is None else list(value.shape)
        for axis in axes:
            if axis < len(dims) and isinstance(dims[axis], int):
                raise UnsupportedOpError(f"cannot keep {describe(name, axes)} in the ONNX export of {where}: "
                                         f"torch.export fixed axis {axis} to {dims[axis]}")
