"""Export a torch model (or a checkpoint plus model spec) to ONNX.

The graph comes from the torch.export-based ``torch.onnx.export(dynamo=True)``
(it needs onnxscript), with a dynamic batch axis on every input, a dynamic
sequence axis on integer inputs of rank 2 or more (token ids, masks), and the
axes ``--dynamic`` declares (``dynamic_shapes.py``). Input
names are the model's input names, output names come from its output structure
(``logits`` for a transformers model). After export, the name map of
``name_map.py`` is written into the model's ``metadata_props``.

The exporter's optimizer is off by default: it folds BatchNorm into the
preceding Conv, which cannot be undone, so the original tensors had to be
stored a second time. Unfolded, every tensor the graph reads is an initializer
under its own name, each held once, and onnxruntime does the same folding
itself when it opens the file. Tensors no node reads are kept as described in
``originals.py``, never as unused initializers.

Destinations:
- a path ending in ``.onnx``: one self-contained file while the weights fit
  protobuf's 2 GiB limit; past it (or with ``external_data=True``) the weights
  go to ``<name>.onnx.data`` beside the file. This function writes in place;
  ``portability convert`` stages both files and publishes them together
  (``portability.core.atomic.atomic_pair``). ``external_data=False`` refuses a
  graph past the limit instead.
- any other path: a directory holding ``model.onnx`` and, next to it, all
  weights in ``model.onnx.data`` (external data). The directory is published
  as one unit, so the graph and its data always match.
"""

from __future__ import annotations

import contextlib
import gc
import io
import logging
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx_ir as ir
import torch

from portability.adapters.onnx import dynamic_shapes, exporter_state, ir_version, name_map, originals
from portability.adapters.onnx.forward_failure import forward_failure
from portability.adapters.torch import model_inputs as torch_model_inputs
from portability.adapters.torch import models as torch_models
from portability.adapters.torch.numpy_bridge import numpy_to_tensor
from portability.core.checkpoint import Checkpoint
from portability.core.model_spec import ModelSpec, parse_model_spec
from portability.core.tensors import as_array
from portability.errors import UnsupportedOpError, UsageError

DIRECTORY_MODEL_NAME = "model.onnx"
EXTERNAL_DATA_NAME = "model.onnx.data"
# Protobuf cannot serialise a message of 2 GiB or more; keep headroom for the graph.
SINGLE_FILE_LIMIT = 2**31 - 64 * 2**20


@dataclass
class ExportResult:
    """What an export wrote.

    Attributes:
        model_path: the ``.onnx`` file.
        input_names / output_names: the graph's input and output names.
        opset: the default-domain opset of the graph.
        stored_unused: checkpoint tensors the graph does not hold as they are
            (unused, or folded with ``optimize``), kept in the ``portability.originals``
            function as ``portability/<name>`` (``originals.py``).
        external_data: the external-data file, or None.
        notes: what was changed after the exporter (the IR version lowered).
    """

    model_path: Path
    input_names: list[str]
    output_names: list[str]
    opset: int
    stored_unused: list[str] = field(default_factory=list)
    external_data: Path | None = None
    notes: list[str] = field(default_factory=list)


def export_model(model: torch.nn.Module, inputs: dict[str, np.ndarray], path: str | Path, *,
                 opset: int | None = None, output_names: list[str] | tuple[str, ...] | None = None,
                 checkpoint: Checkpoint | None = None, external_data: bool | None = None,
                 optimize: bool = False, where: str = "model", max_ir: int | None = None,
                 dynamic: Mapping[str, tuple[int, ...]] | None = None) -> ExportResult:
    """Export a torch model to ONNX and record how to get its weights back.

    Args:
        model: the model, in eval mode, holding the weights to export.
        inputs: example inputs by name (ONNX input names); bound to forward's
            parameters by name, else by position.
        path: ``*.onnx`` for one file, anything else for a directory (see module doc).
        opset: default-domain opset; None takes the exporter's default.
        output_names: names for the flattened outputs; None derives them.
        checkpoint: the tensors the import must give back (names, aliases,
            metadata); None means the model's own state_dict.
        external_data: force (True) or forbid (False) external data; None uses it
            always for a directory destination and, for a ``.onnx`` file, past
            protobuf's 2 GiB limit.
        optimize: run the exporter's graph optimizer (constant folding,
            BatchNorm folded into Conv, initializer merging); the tensors it
            folds away are then stored again apart. False (the default) keeps
            one initializer per parameter and explicit Transpose nodes.
        where: how messages name the model.
        max_ir: the newest ONNX IR version the file may carry (a target runtime's).
            Whatever the limit, the file carries the lowest IR version its opset and
            features allow (``ir_version.lower``), not the exporter's.
        dynamic: input name -> axes to keep symbolic besides the defaults
            (``dynamic_shapes.py``); the export fails if the model fixes one.

    Returns:
        An ``ExportResult``.

    Raises:
        UnsupportedOpError: the exporter cannot convert the model (its message), or
            the graph needs an IR version above ``max_ir``.
        UsageError: a file destination for weights past 2 GiB with ``external_data=False``,
            inputs the model rejects, or declared dynamic axes the example inputs cannot show.
        ModelError: the model's own code fails on the example inputs.
    """
    path = Path(path)
    model = model.eval()
    check_opset(opset)
    if path.suffix == ".onnx":  # fail before the slow export when the weights alone are too big
        _check_single_file(path, sum(t.numel() * t.element_size() for t in model.state_dict().values()),
                           external_data)
    declared = dict(dynamic or {})
    dynamic_shapes.check_declared(declared, inputs, where)
    binding = torch_models.bind_inputs(model, inputs)
    kwargs = {param: numpy_to_tensor(_at_least_two(np.ascontiguousarray(inputs[name])))
              for param, name in binding.items()}
    try:
        with torch.inference_mode():
            eager = model(**kwargs)
    except Exception as exc:  # the inputs do not fit, or the model's own code fails
        raise forward_failure(exc, where, inputs, _summary(exc)) from exc
    if output_names is None and isinstance(model, torch_models.FixtureModule):
        output_names = model.output_names
    names_out = list(torch_models.named_outputs(eager, output_names))
    program = _run_exporter(model, kwargs, binding, names_out, opset, optimize, where, declared)
    _check_exported_opset(program.model, opset, where)
    dynamic_shapes.check_exported(program.model, declared, where)
    if not optimize:
        _fold_constants(program.model)
    ckpt = checkpoint if checkpoint is not None else _state_checkpoint(model)
    stored = _attach_record(program.model, ckpt)
    try:
        notes = ir_version.lower(program.model, max_ir)
    except ValueError as exc:
        raise UnsupportedOpError(f"cannot export {where} for the target runtime: {exc}") from exc
    directory = path.suffix != ".onnx"
    model_path = path / DIRECTORY_MODEL_NAME if directory else path
    external = _wants_external(program.model, directory, external_data, path)
    if directory:
        path.mkdir(parents=True, exist_ok=True)
    data_name = external_data_name(model_path) if external else None
    ir.save(program.model, model_path, external_data=data_name)
    return ExportResult(model_path, list(binding.values()), names_out,
                        int(program.model.opset_imports.get("", 0)), stored,
                        model_path.parent / data_name if data_name else None, notes)


def export_checkpoint(ckpt: Checkpoint, spec: str | ModelSpec, path: str | Path, *,
                      opset: int | None = None, inputs: str | Path | dict[str, np.ndarray] | None = None,
                      external_data: bool | None = None, optimize: bool = False,
                      max_ir: int | None = None,
                      dynamic: Mapping[str, tuple[int, ...]] | None = None) -> ExportResult:
    """Build the model a spec names, load ``ckpt`` into it, and export it.

    Args:
        ckpt: the weights (as read from any format).
        spec: ``fixture:NAME``, ``hf:DIR`` or ``package.module:factory``.
        path: destination (see ``export_model``).
        opset: default-domain opset.
        inputs: an ``.npz`` path or arrays by name; None takes the spec's own
            (fixture batch, tokenizer, or synthesized from the config).
        external_data, optimize, max_ir, dynamic: see ``export_model``.

    Raises:
        UsageError, FormatError, UnsupportedOpError: see ``build_model`` and ``export_model``.
    """
    spec = parse_model_spec(spec) if isinstance(spec, str) else spec
    model = torch_models.build_model(spec, ckpt)
    feed = inputs if isinstance(inputs, dict) else torch_model_inputs.example_inputs(spec, model, inputs)
    try:
        return export_model(model, feed, path, opset=opset, checkpoint=ckpt,
                            external_data=external_data, optimize=optimize, where=str(spec), max_ir=max_ir,
                            dynamic=dynamic)
    finally:
        # The exported program's graph modules hold the model's parameters in reference
        # cycles: free them now, before whatever reads the export (a SavedModel translation).
        del model
        exporter_state.release()
        gc.collect()


def check_opset(opset: int | None) -> None:
    """Refuse an opset this onnx release does not define.

    Raises:
        UsageError: ``opset`` is below 1 or above ``onnx.defs.onnx_opset_version()``.
    """
    import onnx.defs

    newest = onnx.defs.onnx_opset_version()
    if opset is not None and not 1 <= opset <= newest:
        raise UsageError(f"--opset {opset}: onnx {onnx.__version__} defines opsets 1 to {newest}")


def _check_exported_opset(model: ir.Model, opset: int | None, where: str) -> None:
    # The exporter writes opset 18 and converts down or up; when the conversion
    # fails it logs the failure and keeps 18 instead of raising.
    got = int(model.opset_imports.get("", 0))
    if opset is not None and got != opset:
        reason = _LOG.failure or "the exporter's version converter failed"
        raise UnsupportedOpError(f"cannot export {where} at opset {opset} with torch {torch.__version__} "
                                 f"(the graph stayed at opset {got}): {reason}")


# Ops that read a weight's shape, not its values: the only ones folded over weights.
_SHAPE_OPS = frozenset({"Shape", "Size"})


def _fold_constants(model: ir.Model) -> None:
    """Fold what the unoptimized graph computes from constants alone (a bias-less Conv's
    zero bias is ``Expand(CastLike(0, x), Shape(weight))``, which onnxruntime cannot fold,
    and then it cannot fuse the BatchNorm behind that Conv either), and drop the nodes
    left unused. No rewrite rule runs and no node folds a weight's values, so every
    weight stays an initializer under its own name (onnxruntime folds a Linear weight's
    transpose or an LSTM's summed biases itself when it opens the file)."""
    from onnxscript import optimizer

    weights = set(model.graph.initializers.values())

    def should_fold(node: ir.Node) -> bool | None:
        reads_weight = any(value in weights for value in node.inputs)
        return False if reads_weight and node.op_type not in _SHAPE_OPS else None

    with warnings.catch_warnings(), _LOG.captured():
        warnings.simplefilter("ignore")
        optimizer.fold_constants(model, should_fold=should_fold)
        optimizer.remove_unused_nodes(model)


def _at_least_two(arr: np.ndarray) -> np.ndarray:
    # torch.export specialises a dimension of size 1; trace with a batch of two.
    return np.concatenate([arr, arr]) if arr.ndim >= 1 and arr.shape[0] == 1 else arr


def _run_exporter(model: torch.nn.Module, kwargs: dict[str, torch.Tensor], binding: dict[str, str],
                  output_names: list[str], opset: int | None, optimize: bool, where: str,
                  declared: Mapping[str, tuple[int, ...]]):
    positional = isinstance(model, torch_models.FixtureModule)  # forward(*args): pass in order
    errors = []
    for auto in (False, True):
        shapes = dynamic_shapes.dynamic_shapes(kwargs, binding, auto, declared)
        try:
            with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()), _LOG.captured():
                warnings.simplefilter("ignore")
                return torch.onnx.export(
                    model, tuple(kwargs.values()) if positional else (),
                    kwargs=None if positional else kwargs, dynamo=True, opset_version=opset,
                    input_names=list(binding.values()), output_names=output_names, optimize=optimize,
                    dynamic_shapes=(tuple(shapes.values()),) if positional else shapes, verbose=False)
        except Exception as exc:  # the exporter raises many kinds; report its own words
            errors.append(exc)
    raise UnsupportedOpError(f"cannot export {where} to ONNX with torch {torch.__version__}: "
                             f"{_summary(errors[-1])}") from errors[-1]


class _ExporterLog(logging.Handler):
    """Keeps the exporter's log lines off the terminal; remembers the last failure.

    The exporter logs warnings (a missing torchvision, opset conversion) and the
    traceback of a failed version conversion instead of raising.
    """

    LOGGERS = ("torch.onnx", "onnxscript", "onnx_ir")

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.failure = ""

    def emit(self, record: logging.LogRecord) -> None:
        if record.exc_info and record.exc_info[1] is not None:
            self.failure = _summary(record.exc_info[1])
        elif record.levelno >= logging.ERROR:
            self.failure = record.getMessage().splitlines()[0][:300]

    @contextlib.contextmanager
    def captured(self):
        self.failure = ""
        loggers = [logging.getLogger(name) for name in self.LOGGERS]
        saved = [(lg.handlers[:], lg.propagate) for lg in loggers]
        for lg in loggers:
            lg.handlers, lg.propagate = [self], False
        try:
            yield self
        finally:
            for lg, (handlers, propagate) in zip(loggers, saved, strict=False):
                lg.handlers, lg.propagate = handlers, propagate


_LOG = _ExporterLog()


def _summary(exc: BaseException) -> str:
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    text = next((ln for ln in lines if not ln.startswith(("#", "[torch.onnx]"))), type(exc).__name__)
    return f"{type(exc).__name__}: {text[:300]}"


def _state_checkpoint(model: torch.nn.Module) -> Checkpoint:
    from portability.adapters.torch.state_dict import checkpoint_from_object

    return checkpoint_from_object(model.state_dict(), "model")


def _attach_record(model: ir.Model, ckpt: Checkpoint) -> list[str]:
    """Map every checkpoint tensor to the graph's values, keep those no node reads apart
    (``originals.py``), and write the record; returns the names kept apart."""
    initializers = {name: value.const_value.numpy() for name, value in model.graph.initializers.items()
                    if value.const_value is not None}
    canonical = {n: ckpt.tensors[n] for n in ckpt.canonical_names()}  # lazy ones are read one at a time
    mapping, extras = name_map.build_name_map(initializers, canonical)
    originals.attach_originals(model, {n: as_array(a) for n, a in extras.items()})  # few and small
    stored = [n for n, e in mapping.items() if e["initializer"].startswith(name_map.EXTRA_PREFIX)]
    model.metadata_props.update(name_map.record(mapping, canonical, ckpt.aliases, ckpt.metadata,
                                                stored, list(ckpt.tensors)))
    return stored


def external_data_name(model_path: Path) -> str:
    """The external-data file of a graph file: ``model.onnx.data`` beside ``model.onnx``."""
    return model_path.name + ".data"


def _wants_external(model: ir.Model, directory: bool, requested: bool | None, path: Path) -> bool:
    inline = originals.kept_bytes(model)
    total = inline + sum(int(v.const_value.nbytes) for v in model.graph.initializers.values()
                         if v.const_value is not None)
    if inline >= SINGLE_FILE_LIMIT:
        raise UsageError(f"{path}: the tensors the graph does not read take {inline / 2**30:.1f} GiB, past "
                         "protobuf's 2 GiB limit for the graph file that holds them")
    if not directory:
        _check_single_file(path, total, requested)
        return bool(requested) or (requested is None and total >= SINGLE_FILE_LIMIT)
    return requested is not False


def _check_single_file(path: Path, total: int, requested: bool | None) -> None:
    if requested is False and total >= SINGLE_FILE_LIMIT:
        raise UsageError(f"{path}: the weights take {total / 2**30:.1f} GiB, past protobuf's 2 GiB "
                         "limit for one .onnx file; write them as external data (a directory "
                         "destination, or a .onnx file with its .onnx.data beside it)")
