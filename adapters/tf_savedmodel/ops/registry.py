"""The ONNX -> TensorFlow op registry: one small translator per ONNX op type.

A translator is registered with ``@register("OpType")`` and called as
``fn(node, ctx)``; it returns one TF tensor or a tuple of them (one per node
output it produces). ``ctx`` gives the inputs as TF tensors, their static
values where known, attributes with their ONNX defaults, and the opset.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import onnx
import tensorflow as tf
from onnx import helper

from portability.errors import UnsupportedOpError

Translator = Callable[[onnx.NodeProto, "OpContext"], Any]
_TRANSLATORS: dict[str, Translator] = {}


def register(*op_types: str) -> Callable[[Translator], Translator]:
    """Decorator: register a translator for one or more ONNX op types (default domain).

    Raises:
        ValueError: an op type already has another translator (as a format registered
            twice does): two translators for one op would leave the winner to import order.
    """
    def wrap(fn: Translator) -> Translator:
        for op_type in op_types:
            known = _TRANSLATORS.get(op_type)
            if known is not None and known is not fn:
                raise ValueError(f"ONNX op {op_type!r} is registered twice: {_where(known)} and {_where(fn)}")
        for op_type in op_types:
            _TRANSLATORS[op_type] = fn
        return fn
    return wrap


def _where(fn: Translator) -> str:
    """``module.function`` of a translator, for the duplicate-registration message."""
    return f"{getattr(fn, '__module__', '?')}.{getattr(fn, '__qualname__', repr(fn))}"


def supported_ops() -> list[str]:
    """Every ONNX op type with a translator, sorted."""
    return sorted(_TRANSLATORS)


def translator_for(node: onnx.NodeProto) -> Translator:
    """The translator of a node's op type.

    Raises:
        UnsupportedOpError: no translator, or a non-default domain; names the op and node.
    """
    if node.domain not in ("", "ai.onnx") or node.op_type not in _TRANSLATORS:
        domain = f"{node.domain}::" if node.domain not in ("", "ai.onnx") else ""
        raise UnsupportedOpError(
            f"ONNX op {domain}{node.op_type} (node {node.name or '<unnamed>'!r}) has no "
            f"TensorFlow translation; nothing was written ({len(_TRANSLATORS)} ops are supported: "
            "portability.adapters.tf_savedmodel.ops.supported_ops() lists them)")
    return _TRANSLATORS[node.op_type]


def unsupported(node: onnx.NodeProto, why: str) -> UnsupportedOpError:
    """An UnsupportedOpError for a supported op type used in a way we cannot translate."""
    return UnsupportedOpError(f"ONNX op {node.op_type} (node {node.name or '<unnamed>'!r}): {why}; "
                              "nothing was written")


class OpContext:
    """What a translator sees of the graph around one node.

    Args:
        env: value name -> TF tensor (or a Python list for ONNX sequences).
        static: value name -> numpy array for values known at translation time.
        opset: the default-domain opset of the model.
        carried: value name -> ONNX element type, for values held in a carrier
            dtype (``dtypes.CARRIERS``): a uint8 tensor may hold FLOAT8E4M3FNUZ bits.
        snapshots: value name -> the value a variable holds while the graph is
            built, for weights the graph may compile in as constants (convolution
            kernels in their TF layout); empty unless the module asks for it.
    """

    def __init__(self, env: dict[str, Any], static: dict[str, np.ndarray], opset: int,
                 carried: dict[str, int] | None = None,
                 snapshots: dict[str, np.ndarray] | None = None) -> None:
        self.env = env
        self.static = static
        self.opset = opset
        self.carried = carried or {}
        self.snapshots = snapshots or {}
        self.node: onnx.NodeProto | None = None

    def bind(self, node: onnx.NodeProto) -> OpContext:
        self.node = node
        self._attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        return self

    def with_attrs(self, **overrides: Any) -> OpContext:
        """Override attribute values of the bound node (a layout pass remaps axes)."""
        self._attrs.update(overrides)
        return self

    def has_input(self, i: int) -> bool:
        """Whether optional input ``i`` is present (not omitted or empty)."""
        return i < len(self.node.input) and self.node.input[i] != ""

    def input(self, i: int) -> Any:
        """Input ``i`` as a TF tensor (None when the optional input is absent)."""
        if not self.has_input(i):
            return None
        return self.env[self.node.input[i]]

    def inputs(self) -> list[Any]:
        """Every present input, in order."""
        return [self.env[name] for name in self.node.input if name]

    def known_value(self, i: int) -> np.ndarray | None:
        """Input ``i``'s value if it is static or a variable's snapshot, else None."""
        value = self.static_value(i)
        if value is None and self.has_input(i):
            value = self.snapshots.get(self.node.input[i])
        return value

    def input_shape(self, i: int) -> tf.TensorShape:
        """Input ``i``'s static shape, read from its known value when there is one, so a
        weight only the translator reads never enters the graph as a constant."""
        value = self.static_value(i)
        return tf.TensorShape(np.shape(value)) if value is not None else self.input(i).shape

    def carried_type(self, i: int) -> int | None:
        """The ONNX element type of input ``i`` if its tensor is a carrier, else None."""
        return self.carried.get(self.node.input[i]) if self.has_input(i) else None

    def static_value(self, i: int, what: str = "input") -> np.ndarray | None:
        """Input ``i``'s value if it is known at translation time, else None."""
        if not self.has_input(i):
            return None
        name = self.node.input[i]
        if name in self.static:
            return self.static[name]
        if name not in self.env and name in getattr(self.env, "last", ()):
            return None  # held channels-last: computed at run time, never static
        value = tf.get_static_value(self.env[name])
        return None if value is None else np.asarray(value)

    def require_static(self, i: int, what: str) -> np.ndarray:
        """Input ``i``'s static value.

        Raises:
            UnsupportedOpError: the value is only known when the graph runs.
        """
        value = self.static_value(i)
        if value is None:
            raise unsupported(self.node, f"{what} must be a constant")
        return value

    def attr(self, name: str, default: Any = None) -> Any:
        """Attribute value (bytes decoded to str), or ``default``."""
        value = self._attrs.get(name, default)
        if isinstance(value, bytes):
            return value.decode()
        return value

    def output_count(self) -> int:
        """How many outputs the node declares (trailing empty names excluded)."""
        names = list(self.node.output)
        while names and names[-1] == "":
            names.pop()
        return len(names)


def rank_of(node: onnx.NodeProto, x: tf.Tensor) -> int:
    """Static rank of a tensor.

    Raises:
        UnsupportedOpError: the rank is unknown at translation time.
    """
    rank = x.shape.rank
    if rank is None:
        raise unsupported(node, "an input of unknown rank")
    return rank


def normalize_axis(axis: int, rank: int) -> int:
    """ONNX negative axis -> non-negative axis."""
    return axis + rank if axis < 0 else axis
