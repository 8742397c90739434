"""Where the ONNX graph of a write comes from: the ONNX adapter's export, or a given file."""

from __future__ import annotations

import inspect
import tempfile
from pathlib import Path

import onnx

from portability.checkpoint import Checkpoint
from portability.errors import FormatError, UsageError
from portability.formats import WriteOptions

# options.extra key: translate this ONNX file instead of exporting from --model.
ONNX_SOURCE_KEY = "onnx"


def onnx_graph_for(ckpt: Checkpoint, options: WriteOptions) -> onnx.ModelProto:
    """The ONNX graph that computes the model ``ckpt`` belongs to.

    Args:
        ckpt: the weights.
        options: ``options.model`` (a model spec) to export through the ONNX
            adapter (with ``options.extra["inputs"]``, an ``.npz``, as its
            example inputs when given), or ``options.extra["onnx"]``, a path to
            an ONNX file.

    Returns:
        The model with its external data loaded.

    Raises:
        UsageError: neither a model spec nor an ONNX file was given.
        FormatError: the given ONNX file cannot be read.
    """
    source = options.extra.get(ONNX_SOURCE_KEY)
    if source is not None:
        return _load(Path(source))
    if not options.model:
        raise UsageError("writing a tf-savedmodel needs the model's code: pass --model SPEC "
                         "(fixture:NAME, hf:DIR or package.module:factory)")
    from portability.adapters.onnx.export import export_checkpoint

    with tempfile.TemporaryDirectory(prefix="portability-tf-") as tmp:
        # The user's example inputs (--inputs), as the ONNX route gets them.
        kwargs = {"opset": options.opset, "inputs": options.extra.get("inputs")}
        if "optimize" in inspect.signature(export_checkpoint).parameters:
            kwargs["optimize"] = False  # keep BatchNorm unfolded, so every weight stays trainable
        result = export_checkpoint(ckpt, options.model, Path(tmp) / "graph", **kwargs)
        return _load(Path(result.model_path))


def _load(path: Path) -> onnx.ModelProto:
    try:
        return onnx.load(str(path))
    except Exception as exc:  # onnx raises DecodeError, OSError, ValueError...
        raise FormatError(f"{path}: cannot read the ONNX model ({type(exc).__name__}: {exc})") from None
