"""Channels-last forms of layout-sensitive ONNX ops, and the context they run in.

ONNX is channels-first (N, C, spatial...); TF's CPU kernels for convolution,
pooling and batch normalization want channels-last (N, spatial..., C). A
channels-last translator is registered with ``@register_last("OpType")`` next
to the op's plain translator. It is called like a plain translator, except
that its data inputs (``data_inputs``, input 0 by default) arrive
channels-last, and it returns channels-last outputs. ``accepts(node, ctx, x)``
says whether the node's attributes have a channels-last form (``x`` is input 0
in either layout: only its rank and dtype may be read); when it says no, the
layout pass (``layout.py``) runs the plain translator on channels-first inputs.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
import onnx
import tensorflow as tf

from portability.adapters.tf_savedmodel.ops import spatial as geo
from portability.adapters.tf_savedmodel.ops.registry import OpContext, Translator, rank_of

Accepts = Callable[[onnx.NodeProto, OpContext, Any], bool]


@dataclass(frozen=True)
class LastTranslator:
    """A channels-last translator, what it accepts, and which inputs it takes channels-last."""

    fn: Translator
    accepts: Accepts
    data_inputs: tuple[int, ...]


_LAST: dict[str, LastTranslator] = {}


def _any_spatial(node: onnx.NodeProto, ctx: OpContext, x: Any) -> bool:
    return x.shape.rank is not None and 3 <= x.shape.rank <= 5


def register_last(*op_types: str, accepts: Accepts = _any_spatial,
                  data_inputs: Iterable[int] = (0,)) -> Callable[[Translator], Translator]:
    """Decorator: register a channels-last translator for ONNX op types."""
    def wrap(fn: Translator) -> Translator:
        for op_type in op_types:
            _LAST[op_type] = LastTranslator(fn, accepts, tuple(data_inputs))
        return fn
    return wrap


def last_translator_for(op_type: str) -> LastTranslator | None:
    """The channels-last translator of an op type, or None."""
    return _LAST.get(op_type)


def channels_last_ops() -> list[str]:
    """Every op type with a channels-last translator, sorted."""
    return sorted(_LAST)


class ViewEnv(dict):
    """A node's inputs as one translator should see them, over the graph's values."""

    def __init__(self, base: dict, overrides: dict[str, Any]) -> None:
        super().__init__(overrides)
        self._base = base

    def __missing__(self, name: str) -> Any:
        return self._base[name]


def view_context(ctx: OpContext, node: onnx.NodeProto, overrides: dict[str, Any],
                 static: dict[str, np.ndarray] | None = None) -> OpContext:
    """A context bound to ``node`` whose inputs named in ``overrides`` read the given
    tensors (and ``static`` values) instead of the graph's."""
    known = {n: v for n, v in ctx.static.items() if n in node.input and n not in overrides}
    known.update(static or {})
    view = OpContext(ViewEnv(ctx.env, overrides), known, ctx.opset, ctx.carried, ctx.snapshots)
    return view.bind(node)


def run_channels_last(node: onnx.NodeProto, ctx: OpContext, fn: Translator) -> Any:
    """Run a channels-last translator on a channels-first input 0 (the plain
    translator's path): the input is transposed in, the result left channels-last.

    Raises:
        UnsupportedOpError: input 0 has an unknown rank.
    """
    x = ctx.input(0)
    rank = rank_of(node, x)
    geo.spatial_rank(node, x)
    return fn(node, view_context(ctx, node, {node.input[0]: tf.transpose(x, geo.to_last_perm(rank))}))
