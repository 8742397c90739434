"""Where the ONNX graph of a write comes from: the ONNX adapter's export, or a given file."""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Iterator
from pathlib import Path

import onnx

from portability.core.checkpoint import Checkpoint
from portability.core.options import WriteOptions
from portability.errors import FormatError, UsageError


def onnx_graph_for(ckpt: Checkpoint, options: WriteOptions) -> onnx.ModelProto:
    """The ONNX graph that computes the model ``ckpt`` belongs to, its weights loaded
    into the proto (``onnx_graph`` leaves them in their file).

    Args:
        ckpt: the weights.
        options: ``options.model`` (a model spec) to export through the ONNX
            adapter, or ``options.onnx_source``, a path to an ONNX file;
            ``options.inputs`` (an ``.npz``) are the example inputs of the export, and
            ``options.dynamic`` the axes it keeps symbolic besides the defaults.

    Returns:
        The model with its external data loaded.

    Raises:
        UsageError: neither a model spec nor an ONNX file was given.
        FormatError: the given ONNX file cannot be read.
    """
    with onnx_graph(ckpt, options) as (model, folder):
        try:
            onnx.load_external_data_for_model(model, str(folder))
        except (OSError, ValueError, TypeError) as exc:
            raise FormatError(f"{folder}: cannot read the ONNX model's external data ({exc})") from exc
        return model


@contextlib.contextmanager
def onnx_graph(ckpt: Checkpoint, options: WriteOptions) -> Iterator[tuple[onnx.ModelProto, Path]]:
    """Yield the ONNX graph that computes the model ``ckpt`` belongs to, with its weights
    left in their external-data file, and the folder that file is in (valid inside the block).

    The graph comes from ``options.onnx_source`` (its locations checked first) or is
    exported from ``options.model`` into a temporary folder, removed after the block,
    with every weight as external data: a model past 2 GiB fits, and its weights are
    read one at a time by whoever needs them (``graph.translate``).

    Raises:
        UsageError: neither a model spec nor an ONNX file was given.
        FormatError, UnsafeCheckpointError: the given ONNX file cannot be read safely.
    """
    from portability.adapters.onnx.safety import load_proto, model_file

    source = options.onnx_source
    if source is not None:
        file = model_file(source)
        yield load_proto(file, load_external=False), file.parent
        return
    if not options.model:
        raise UsageError("writing a tf-savedmodel needs the model's code: pass --model SPEC "
                         "(fixture:NAME, hf:DIR or package.module:factory)")
    from portability.adapters.onnx.export import export_checkpoint

    with tempfile.TemporaryDirectory(prefix="portability-tf-") as tmp:
        # optimize=False keeps BatchNorm unfolded, so every weight stays a trainable variable.
        result = export_checkpoint(ckpt, options.model, Path(tmp) / "graph", opset=options.opset,
                                   inputs=options.inputs, optimize=False, external_data=True,
                                   dynamic=dict(options.dynamic))
        file = Path(result.model_path)
        yield load_proto(file, load_external=False), file.parent


def prepare_onnx_source(model: onnx.ModelProto, ckpt: Checkpoint, source: str):
    """Ready a given ONNX file for translation: opset 13 or later, and the weights that
    the checkpoint names after their readers (``Constant`` nodes) as initializers.

    Args:
        model: the ONNX model as loaded.
        ckpt: the checkpoint read from it (its metadata holds the constant-weight names).
        source: the file, for messages.

    Returns:
        (model to translate, initializer name -> checkpoint name, the ``Upgrade``).
    """
    from portability.adapters.onnx.constant_weights import lift_constants, value_names
    from portability.adapters.onnx.opset_upgrade import upgrade_opset

    upgrade = upgrade_opset(model, source)
    names = value_names(ckpt.metadata)
    graph = lift_constants(upgrade.model, set(names)) if names else upgrade.model
    return graph, names, upgrade
