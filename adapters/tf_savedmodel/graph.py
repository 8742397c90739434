"""Translate an ONNX graph into a ``tf.Module`` with variables and a serving signature.

The module holds one ``tf.Variable`` per checkpoint tensor, named by its
state_dict name, and a ``tf.function`` that replays the ONNX nodes with TF ops
in graph mode. Shapes flow as tensors, so the batch and sequence dimensions
stay dynamic (``None`` in the signature).

Layout-sensitive ops (convolutions, pools, normalization, resize) and their
element-wise neighbours run channels-last (``layout.py``); inputs and outputs
keep the ONNX graph's layout. With ``compile_kernels``, ``serve`` reads the
weights as constants (snapshots of their variables, ``compiled_weights.py``),
so what depends on weights alone is folded while translating (a BatchNorm
into the Conv before it: ``batchnorm_folding.py``; a Linear layer's bias into
its MatMul: ``matmul_bias.py``), and
``serve_from_variables`` computes the same outputs from the variables.

Values of ONNX types TF cannot compute with travel in carrier dtypes
(``ops.dtypes.CARRIERS``); calling the module converts at its boundary, while
``serve`` (and so a saved signature) takes and returns the carriers. Sequence
and optional graph inputs work when the module is called; a serving signature
cannot take them (``serving_refusal`` says why).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import tensorflow as tf
from onnx import numpy_helper

from portability.adapters.tf_savedmodel.batchnorm_folding import fold_conv_batchnorm
from portability.adapters.tf_savedmodel.bindings import BindingPlan, is_floating, plan_bindings
from portability.adapters.tf_savedmodel.compiled_weights import compiled_weights
from portability.adapters.tf_savedmodel.layout import LayoutEnv, translate_channels_last
from portability.adapters.tf_savedmodel.matmul_bias import fuse_matmul_bias
from portability.adapters.tf_savedmodel.ops import OpContext, translator_for
from portability.adapters.tf_savedmodel.ops.carriers import (
    carried_types,
    from_carrier_array,
    is_carried,
    to_carrier_array,
)
from portability.adapters.tf_savedmodel.ops.dtypes import held_dtype
from portability.core.checkpoint import Checkpoint
from portability.core.tensors import as_array
from portability.errors import FormatError, UnsupportedOpError

_VALID_TF_NAME = re.compile(r"^[A-Za-z0-9.][A-Za-z0-9_.\-/]*$")
# Buffers that hold statistics, not parameters: never trained by gradient.
_STATISTICS = ("running_mean", "running_var", "num_batches_tracked")


def safe_name(name: str) -> str:
    """A valid identifier for a signature key or TF op name."""
    cleaned = re.sub(r"[^A-Za-z0-9_]", "_", name)
    return cleaned if cleaned and cleaned[0].isalpha() else f"t_{cleaned}"


def variable_name(name: str) -> str:
    """The TF variable name for a state_dict name (the name itself when TF allows it)."""
    return name if _VALID_TF_NAME.match(name) else safe_name(name)


class TranslatedModule(tf.Module):
    """An ONNX graph run with TF ops.

    Attributes:
        weights: state_dict name -> tf.Variable (tracked, so it is saved).
        serve: the serving ``tf.function`` (positional inputs, dict of named
            outputs); carried types in and out as their carriers. Without a
            signature when a graph input is a sequence or an optional.
        plan: how initializers were bound to variables.
        serving_refusal: why no serving signature can be built, or None.
        compiled_weights: state_dict names of the variables whose values ``serve``
            holds as constants (see ``compiled_weights.py``); ``serve_from_variables``
            (present when this is not empty) reads them from the variables instead.
    """

    def __init__(self, model: onnx.ModelProto, variables: dict[str, tf.Variable],
                 plan: BindingPlan, constants: dict[str, np.ndarray],
                 snapshots: dict[str, np.ndarray] | None = None) -> None:
        super().__init__(name="portability_onnx")
        self.weights = variables
        self.plan = plan
        self._graph = model.graph
        self._constants = constants
        self._opset = _default_opset(model)
        self._outputs = [(safe_name(o.name), o.name) for o in model.graph.output]
        inputs = _real_inputs(model)
        self._input_names = [safe_name(i.name) for i in inputs]
        self._onnx_inputs = [i.name for i in inputs]
        self._carried = carried_types(model)
        self.serving_refusal = _serving_refusal(inputs)
        specs = None if self.serving_refusal else _input_specs(inputs)
        self._snapshots = snapshots or {}
        self.compiled_weights = sorted({plan.bound[n].name for n in self._snapshots})
        self.serve = tf.function(self._run, input_signature=specs, autograph=False)
        if self._snapshots:
            self.serve_from_variables = tf.function(self._run_from_variables, input_signature=specs,
                                                    autograph=False)

    @property
    def input_names(self) -> list[str]:
        """The keyword names the module is called with, in graph order."""
        return list(self._input_names)

    @property
    def output_names(self) -> list[str]:
        """The serving signature's output keys, in graph order."""
        return [key for key, _ in self._outputs]

    @property
    def carried_outputs(self) -> dict[str, int]:
        """Output key -> ONNX element type, for outputs ``serve`` returns as carriers."""
        return {key: self._carried[name] for key, name in self._outputs if name in self._carried}

    def unread_variables(self) -> list[str]:
        """Variables the graph never reads: unused buffers, weights folded into
        others, duplicates an exporter merged into one initializer (equal
        values), and integer tensors (read as constants); training cannot update
        them through this graph."""
        read = {binding.name for binding in self.plan.bound.values()}
        return [name for name in self.weights if name not in read]

    def __call__(self, **inputs: Any) -> dict[str, Any]:
        """Run on named inputs; returns the named outputs.

        Inputs are tensors or arrays, a list of them for a sequence input and
        None for an empty optional one. Arrays of ml_dtypes types TF cannot
        compute with (float8 fnuz, int4...) are passed as their carriers, and
        such outputs come back as numpy arrays of the type the graph declares.
        """
        outputs = self.serve(*[to_carrier_array(inputs[n]) for n in self._input_names])
        for key, elem_type in self.carried_outputs.items():
            if hasattr(outputs[key], "numpy"):  # eager: hand back ONNX's type
                outputs[key] = from_carrier_array(outputs[key].numpy(), elem_type)
        return outputs

    def trace_values(self, **inputs: Any) -> dict[str, np.ndarray]:
        """Replay the graph eagerly on named inputs and return every ONNX value it
        computed, by ONNX value name (to locate where two runs start to differ)."""
        args = [tf.convert_to_tensor(to_carrier_array(inputs[n])) for n in self._input_names]
        env = self._environment(tuple(args), self._snapshots)
        names = [n for n in dict.fromkeys([*env, *env.last]) if n not in self._constants]
        return {name: env[name].numpy() for name in names if isinstance(env[name], tf.Tensor)}

    def _run(self, *args: tf.Tensor) -> dict[str, tf.Tensor]:
        return self._replay(args, self._snapshots)

    def _run_from_variables(self, *args: tf.Tensor) -> dict[str, tf.Tensor]:
        return self._replay(args, {})

    def _replay(self, args: tuple, snapshots: dict[str, np.ndarray]) -> dict[str, tf.Tensor]:
        env = self._environment(args, snapshots)
        return {key: _named_output(env[onnx_name], key) for key, onnx_name in self._outputs}

    def _environment(self, args: tuple, snapshots: dict[str, np.ndarray]) -> LayoutEnv:
        """Run every node; every value by ONNX name (channels-last ones in ``env.last``)."""
        env = LayoutEnv()
        static = dict(self._constants)
        for name, value in self._constants.items():
            env.lazy[name] = to_carrier_array(value)
        for init_name, binding in self.plan.bound.items():
            if init_name in snapshots:  # compiled in: a constant, and static for folding
                static[init_name] = env.lazy[init_name] = snapshots[init_name]
                continue
            value = tf.convert_to_tensor(self.weights[binding.name])
            env[init_name] = tf.transpose(value) if binding.transpose else value
        for name, arg in zip(self._onnx_inputs, args, strict=False):
            env[name] = arg
        outputs = {o.name for o in self._graph.output}
        nodes, folded = fold_conv_batchnorm(self._graph.node, outputs, static)  # where weights are constants
        nodes = fuse_matmul_bias(nodes, outputs)
        static.update(folded)
        env.lazy.update(folded)
        ctx = OpContext(env, static, self._opset, self._carried, snapshots)
        for node in nodes:
            result = _translate_node(node, ctx, env)
            if result is _HELD:
                continue
            results = result if isinstance(result, tuple) else (result,)
            for out_name, value in zip(node.output, results, strict=False):
                if out_name:
                    env[out_name] = value
        return env


def _named_output(value: Any, key: str) -> Any:
    """An output tensor named ``key``; a sequence output stays a list, an empty optional None."""
    if value is None:
        return None
    if isinstance(value, list):
        return [tf.identity(item, name=f"{key}_{i}") for i, item in enumerate(value)]
    return tf.identity(value, name=key)


# Folding a node whose inputs are all constants is skipped past this many elements,
# except for ops that only move or convert elements (a compiled weight's transpose).
_FOLD_LIMIT = 1 << 20
_MOVE_OPS = frozenset({"Transpose", "Reshape", "Squeeze", "Unsqueeze", "Flatten", "Identity", "Cast"})


# What _translate_node returns when the layout pass recorded the node's outputs itself.
_HELD = object()


def _translate_node(node: onnx.NodeProto, ctx: OpContext, env: LayoutEnv) -> Any:
    """Run one node's translator, naming the node in any failure.

    A node whose inputs are all known constants is evaluated eagerly and its
    outputs become constants, so shape arithmetic built from constants
    (axes, split sizes) is static for the nodes that need it. Otherwise the
    layout pass may translate it on channels-last values (returning ``_HELD``).
    """
    _refuse_computing_on_carriers(node, ctx)
    try:
        if _foldable(node, ctx):
            return _fold(node, ctx)
        if translate_channels_last(node, ctx, env):
            return _HELD
        return translator_for(node)(node, ctx.bind(node))
    except (UnsupportedOpError, FormatError):
        raise
    except KeyError as exc:
        raise FormatError(f"ONNX node {node.name!r} ({node.op_type}) reads {exc.args[0]!r}, "
                          "which no earlier node defines") from exc
    except (ValueError, TypeError, tf.errors.OpError) as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise UnsupportedOpError(f"ONNX op {node.op_type} (node {node.name!r}) could not be "
                                 f"translated: {first}; nothing was written") from exc


# Ops that only move, select or re-describe elements (or convert them, for Cast):
# on a carrier's codes they give the codes of the right result. Any other op
# would compute on the codes, not the values, and give a wrong answer silently.
_CARRIER_SAFE_OPS = frozenset({
    "Cast", "CastLike", "Concat", "Constant", "DepthToSpace", "Expand", "Flatten", "Gather",
    "GatherElements", "GatherND", "Identity", "Reshape", "SequenceAt", "Shape", "Size", "Slice",
    "SpaceToDepth", "Split", "SplitToSequence", "Squeeze", "Tile", "Transpose", "Unsqueeze",
})


def _refuse_computing_on_carriers(node: onnx.NodeProto, ctx: OpContext) -> None:
    """Raise unless ``node`` is safe on values held in a carrier (float8 fnuz, int4...).

    Raises:
        UnsupportedOpError: naming the op, the node, the value and its type.
    """
    if node.op_type in _CARRIER_SAFE_OPS:
        return
    for name in [*node.input, *node.output]:
        if name and name in ctx.carried:
            type_name = onnx.TensorProto.DataType.Name(ctx.carried[name])
            raise UnsupportedOpError(
                f"ONNX op {node.op_type} (node {node.name!r}) would compute on values of type {type_name} "
                f"({name!r}): TF has no kernels for that type; only casts to and from it and ops that move "
                "elements are translated; nothing was written")


def _foldable(node: onnx.NodeProto, ctx: OpContext) -> bool:
    names = [n for n in node.input if n]
    return (node.op_type != "Constant" and bool(names)
            and all(n in ctx.static for n in names)
            and (node.op_type in _MOVE_OPS or sum(ctx.static[n].size for n in names) <= _FOLD_LIMIT))


def _fold(node: onnx.NodeProto, ctx: OpContext) -> Any:
    with tf.init_scope():
        eager = OpContext({n: tf.constant(to_carrier_array(ctx.static[n])) for n in node.input if n}, ctx.static,
                          ctx.opset, ctx.carried)
        result = translator_for(node)(node, eager.bind(node))
        results = result if isinstance(result, tuple) else (result,)
        if not all(isinstance(r, tf.Tensor) for r in results):
            return translator_for(node)(node, ctx.bind(node))
        arrays = [r.numpy() for r in results]
    for name, array in zip(node.output, arrays, strict=False):
        if name:  # a constant enters the graph only where a node reads it as a tensor
            ctx.static[name] = ctx.env.lazy[name] = array
    return _HELD


def _default_opset(model: onnx.ModelProto) -> int:
    for entry in model.opset_import:
        if entry.domain in ("", "ai.onnx"):
            return entry.version
    return 1


def _real_inputs(model: onnx.ModelProto) -> list[onnx.ValueInfoProto]:
    initializer_names = {i.name for i in model.graph.initializer}
    return [i for i in model.graph.input if i.name not in initializer_names]


def _serving_refusal(inputs: list[onnx.ValueInfoProto]) -> str | None:
    """Why a serving signature cannot take these graph inputs (None when it can)."""
    for value in inputs:
        kind = value.type.WhichOneof("value")
        if kind not in (None, "tensor_type"):
            return (f"graph input {value.name!r} is an ONNX {kind.replace('_type', '')}: "
                    "TF serving signatures take tensors only")
    return None


def _input_specs(inputs: list[onnx.ValueInfoProto]) -> list[tf.TensorSpec]:
    """One TensorSpec per graph input; symbolic or unknown dims become None; types TF
    cannot compute with take their carrier dtype."""
    specs = []
    for value in inputs:
        tensor_type = value.type.tensor_type
        # paddle2onnx writes unknown dims as dim_value -1; only positive values are fixed.
        dims = [d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else None
                for d in tensor_type.shape.dim]
        shape = dims if tensor_type.HasField("shape") else None
        specs.append(tf.TensorSpec(shape, held_dtype(tensor_type.elem_type, f"graph input {value.name!r}"),
                                   name=safe_name(value.name)))
    return specs


def check_supported(model: onnx.ModelProto) -> None:
    """Raise for the first node whose op has no translator (before anything is built).

    Raises:
        UnsupportedOpError: names the op type and the node.
    """
    for node in model.graph.node:
        translator_for(node)


def translate(model: onnx.ModelProto, ckpt: Checkpoint | None = None,
              names: Mapping[str, str] | None = None,
              trainable: set[str] | None = None, compile_kernels: bool = False,
              base: str | Path | None = None) -> TranslatedModule:
    """Build a TF module computing the ONNX graph, holding the checkpoint as variables.

    Weights are read one tensor at a time: each checkpoint tensor (or initializer)
    goes into its variable and is dropped, so memory holds the variables plus one
    tensor, never a second copy of the model.

    Args:
        model: the ONNX model; initializers with external data are read from ``base``
            (their data need not be loaded into the proto).
        ckpt: the checkpoint the graph was exported from. Every canonical tensor
            becomes a variable under its name. Without it, every floating-point
            initializer becomes a variable under the initializer's name.
        names: initializer name -> state_dict name, where the exporter knows it.
        trainable: names of trainable variables; by default every floating-point
            tensor except BatchNorm statistics.
        compile_kernels: let ``serve`` hold the weights it reads from variables as
            constants (``compiled_weights.py``, up to ``COMPILED_WEIGHT_BYTES``), so
            their layout changes are folded away; ``serve_from_variables`` then
            computes from the variables (for training through the module).
        base: the folder external-data locations are relative to (the ``.onnx``
            file's); needed only when some initializer's data is external and not loaded.

    Returns:
        The module, already traced once (so any translation error is raised here),
        unless a graph input is a sequence or an optional: then it is traced on
        its first call.

    Raises:
        UnsupportedOpError: an op or an op's usage has no translation.
        FormatError: a graph that references values it never defines, or external
            data with no ``base`` to read it from.
    """
    check_supported(model)
    used = {name for node in model.graph.node for name in node.input}
    initializers = {i.name: _initializer_value(i, base) for i in model.graph.initializer if i.name in used}
    if ckpt is not None:
        tensors: dict[str, Any] = {n: ckpt.tensors[n] for n in ckpt.canonical_names()}
        aliases = dict(ckpt.aliases)
    else:
        tensors = {n: v for n, v in initializers.items()
                   if is_floating(np.dtype(v.dtype)) and not is_carried(np.dtype(v.dtype))}
        aliases = {}
    plan = plan_bindings(initializers, tensors, aliases, names)
    # Integer initializers are shapes, axes and indices: the ops that read them need their
    # values while tracing (a Slice's axes), so they stay constants; their variables are
    # still saved, so the weights read back whole.
    # So do values of types TF cannot compute with: their carriers are not their values.
    for init_name in [n for n in plan.bound if not is_floating(np.dtype(initializers[n].dtype))
                      or is_carried(np.dtype(initializers[n].dtype))]:
        del plan.bound[init_name]
        plan.constants.append(init_name)
    variables = {}
    for name, value in tensors.items():
        is_trainable = (name in trainable) if trainable is not None else (
            is_floating(np.dtype(value.dtype)) and not name.endswith(_STATISTICS))
        variables[name] = tf.Variable(as_array(value), name=variable_name(name), trainable=is_trainable)
    constants = {n: as_array(initializers[n]) for n in plan.constants}
    snapshots = compiled_weights(model, plan, tensors) if compile_kernels else {}
    module = TranslatedModule(model, variables, plan, constants, snapshots)
    if module.serving_refusal is None:
        module.serve.get_concrete_function()
    return module


def _initializer_value(tensor: onnx.TensorProto, base: str | Path | None) -> Any:
    """An initializer's value: decoded from the proto, or a lazy view of its external data."""
    if tensor.data_location != onnx.TensorProto.EXTERNAL:
        return numpy_helper.to_array(tensor)
    if base is None:
        raise FormatError(f"initializer {tensor.name!r} keeps its data in an external file, and no folder "
                          "was given to read it from")
    from portability.adapters.onnx.lazy_values import external_value
    from portability.adapters.onnx.tensors import NUMPY_BY_ONNX

    if tensor.data_type in NUMPY_BY_ONNX:
        return external_value(tensor, Path(base))
    loaded = onnx.TensorProto()  # a type only onnx decodes (int4, float8 fnuz...): read it whole
    loaded.CopyFrom(tensor)
    onnx.external_data_helper.load_external_data_for_tensor(loaded, str(base))
    return numpy_helper.to_array(loaded)

