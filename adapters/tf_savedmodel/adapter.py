"""The TF SavedModel format: a directory with ``saved_model.pb`` and its variables."""

from __future__ import annotations

from pathlib import Path

from portability.adapters.base import FormatAdapter, register_format
from portability.core.checkpoint import Checkpoint
from portability.core.options import ReadOptions, RunOptions, WriteOptions
from portability.core.runner import BaseRunner
from portability.errors import UnsupportedOpError


@register_format
class TFSavedModelAdapter(FormatAdapter):
    """Export: PyTorch -> ONNX -> a ``tf.Module`` translated op by op; import: the
    variables, read without loading or running the graph; run: ``serving_default``."""

    name = "tf-savedmodel"
    route_order = 3
    requires = ("tensorflow",)
    extra = "tf"
    is_directory = True
    stores_graph = True
    needs_model_spec = True

    def detect(self, path: Path) -> bool:
        path = Path(path)
        return path.is_dir() and ((path / "saved_model.pb").is_file() or (path / "saved_model.pbtxt").is_file())

    def read(self, path: str | Path, options: ReadOptions = ReadOptions()) -> Checkpoint:
        """Read a SavedModel's variables (never its graph).

        Raises:
            FormatError: not a SavedModel, or its variables cannot be read.
            IntegrityError: a variable differs from the checksum our export recorded.
        """
        from portability.adapters.tf_savedmodel.savedmodel_io import read_savedmodel

        return read_savedmodel(Path(path), verify=options.verify)

    def write(self, ckpt: Checkpoint, path: str | Path, options: WriteOptions = WriteOptions()) -> None:
        """Export ``ckpt`` as a SavedModel computing its model's forward pass: the ONNX
        graph comes from ``options.onnx_source`` or is exported from ``options.model``
        (traced on ``options.inputs``). A given ONNX file below opset 13 is upgraded
        first, and its ``Constant``-node weights become variables under the names the
        ONNX reader gave them. Nothing is written unless the whole graph translated.

        Raises:
            UsageError: no model spec and no ONNX source.
            UnsupportedOpError: an ONNX op (named, with its node) has no translation.
        """
        from portability.adapters.tf_savedmodel.export_route import onnx_graph, prepare_onnx_source
        from portability.adapters.tf_savedmodel.graph import translate
        from portability.adapters.tf_savedmodel.savedmodel_io import save_module

        # The graph's weights stay in their external-data file and go into variables one at a time.
        with onnx_graph(ckpt, options) as (graph, folder):
            if options.onnx_source is None:
                module = translate(graph, ckpt, compile_kernels=True, base=folder)
            else:
                graph, names, upgrade = prepare_onnx_source(graph, ckpt, str(options.onnx_source))
                try:
                    module = translate(graph, ckpt, names, compile_kernels=True, base=folder)
                except UnsupportedOpError as exc:
                    if not upgrade.failure:
                        raise
                    raise UnsupportedOpError(f"{exc} ({upgrade.describe()})") from exc
        save_module(module, ckpt, Path(path))

    def runner(self, path: str | Path, options: RunOptions = RunOptions()) -> BaseRunner:
        """A runner calling the SavedModel's ``serving_default`` signature."""
        from portability.adapters.tf_savedmodel.serving import TFSavedModelRunner

        return TFSavedModelRunner(path)
