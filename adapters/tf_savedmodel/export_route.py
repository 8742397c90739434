"""Where the ONNX graph of a write comes from: the ONNX adapter's export, or a given file."""

from __future__ import annotations

import tempfile
from pathlib import Path

import onnx

from portability.core.checkpoint import Checkpoint
from portability.core.options import WriteOptions
from portability.errors import FormatError, UsageError


def onnx_graph_for(ckpt: Checkpoint, options: WriteOptions) -> onnx.ModelProto:
    """The ONNX graph that computes the model ``ckpt`` belongs to.

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
    source = options.onnx_source
    if source is not None:
        return _load(Path(source))
    if not options.model:
        raise UsageError("writing a tf-savedmodel needs the model's code: pass --model SPEC "
                         "(fixture:NAME, hf:DIR or package.module:factory)")
    from portability.adapters.onnx.export import export_checkpoint

    with tempfile.TemporaryDirectory(prefix="portability-tf-") as tmp:
        # optimize=False keeps BatchNorm unfolded, so every weight stays a trainable variable.
        result = export_checkpoint(ckpt, options.model, Path(tmp) / "graph", opset=options.opset,
                                   inputs=options.inputs, optimize=False, dynamic=dict(options.dynamic))
        return _load(Path(result.model_path))


def _load(path: Path) -> onnx.ModelProto:
    try:
        return onnx.load(str(path))
    except Exception as exc:  # onnx raises DecodeError, OSError, ValueError...
        raise FormatError(f"{path}: cannot read the ONNX model ({type(exc).__name__}: {exc})") from exc


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
