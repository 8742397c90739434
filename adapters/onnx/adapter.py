"""The ONNX format: a ``.onnx`` file, or a directory holding one plus external data."""

from __future__ import annotations

from pathlib import Path

from portability.adapters.base import FormatAdapter, register_format
from portability.core.checkpoint import Checkpoint
from portability.core.options import ReadOptions, RunOptions, WriteOptions
from portability.core.runner import BaseRunner
from portability.errors import UsageError


@register_format
class OnnxAdapter(FormatAdapter):
    """Export with the torch.export-based exporter; import weights bitwise under their
    state_dict names; run in onnxruntime (CPU) after ``onnx.checker`` passes."""

    name = "onnx"
    route_order = 2
    extensions = (".onnx",)
    requires = ("onnx",)
    extra = "onnx"
    stores_graph = True
    needs_model_spec = True
    keeps_training_state = False

    def detect(self, path: Path) -> bool:
        path = Path(path)
        if path.is_dir():
            return any(p.suffix == ".onnx" for p in path.iterdir())
        return path.suffix.lower() == ".onnx"

    def read(self, path: str | Path, options: ReadOptions = ReadOptions()) -> Checkpoint:
        from portability.adapters.onnx import reader

        return reader.read(path, options)

    def write(self, ckpt: Checkpoint, path: str | Path, options: WriteOptions = WriteOptions()) -> None:
        """Export ``ckpt`` as the graph of the model ``options.model`` names, traced on
        ``options.inputs`` when given. Without a model spec, ``options.savedmodel_source``
        (the SavedModel ``ckpt`` was read from) is converted with tf2onnx and kept only
        if onnxruntime agrees with TensorFlow on ``options.inputs`` (or random inputs).
        Training state is not stored.

        Raises:
            UsageError: no model spec and no SavedModel source, or a bad destination.
            FormatError, UnsupportedOpError: the model cannot be built or exported, or
                tf2onnx's model is refused by onnxruntime or drifts (the reason is named).
        """
        if not options.model and options.savedmodel_source:
            from portability.adapters.tf_savedmodel.tf2onnx_route import savedmodel_to_onnx

            path = Path(path)
            target = path / "model.onnx" if path.is_dir() or not path.suffix else path
            target.parent.mkdir(parents=True, exist_ok=True)
            savedmodel_to_onnx(options.savedmodel_source, target, opset=options.opset, inputs=options.inputs)
            return
        if not options.model:
            raise UsageError("writing ONNX needs the model's code: pass --model SPEC "
                             "(fixture:NAME, hf:DIR or package.module:factory)")
        from portability.adapters.onnx.export import export_checkpoint

        export_checkpoint(ckpt, options.model, path, opset=options.opset, inputs=options.inputs,
                          external_data=options.external_data, max_ir=options.max_ir,
                          dynamic=dict(options.dynamic))

    def runner(self, path: str | Path, options: RunOptions = RunOptions()) -> BaseRunner:
        """An onnxruntime CPU runner for an ``.onnx`` file or a directory holding one."""
        from portability.adapters.onnx.runtime import OnnxRuntimeRunner

        return OnnxRuntimeRunner(path)
