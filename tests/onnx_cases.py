"""Exports shared by the ONNX test modules: each runs once per test session.

Exports take seconds each, so they are cached here (in-process, in one temp
directory removed at exit) rather than in per-module fixtures.
"""

from __future__ import annotations

import atexit
import functools
import shutil
import tempfile
from pathlib import Path

import numpy as np
import onnx_toys

from portability.adapters.onnx import ExportResult, export_model
from portability.adapters.torch.models import model_state

ROOT = Path(tempfile.mkdtemp(prefix="portability-onnx-tests-"))
atexit.register(shutil.rmtree, ROOT, ignore_errors=True)


@functools.cache
def exported(kind: str, optimize: bool = False) -> tuple[ExportResult, dict[str, np.ndarray]]:
    """Export a toy model once; return the result and the model's state_dict as numpy.

    Kinds: ``mlp``, ``cnn``, and either with ``-fp16`` or ``-bf16``. ``optimize`` runs the
    exporter's optimizer, as torch's own export does by default (folded weights renamed
    ``val_N``, BatchNorm folded into the Conv): the graph other tools' torch exports hold.
    """
    import torch

    base, _, precision = kind.partition("-")
    model = onnx_toys.make_mlp() if base == "mlp" else onnx_toys.make_cnn()
    inputs = onnx_toys.mlp_inputs() if base == "mlp" else onnx_toys.cnn_inputs()
    if precision:
        dtype = {"fp16": torch.float16, "bf16": torch.bfloat16}[precision]
        model = model.to(dtype)
        inputs = {k: cast(v, precision) for k, v in inputs.items()}
    result = export_model(model, inputs, ROOT / f"{kind}{'-optimized' if optimize else ''}.onnx", optimize=optimize)
    return result, model_state(model)


def cast(array: np.ndarray, precision: str) -> np.ndarray:
    import ml_dtypes

    return array.astype({"fp16": np.float16, "bf16": ml_dtypes.bfloat16, "fp32": np.float32}[precision])


@functools.cache
def hf_dir(kind: str) -> Path:
    """A saved tiny transformers model directory: ``bert`` or ``gpt2``."""
    directory = ROOT / f"hf-{kind}"
    return onnx_toys.save_tiny_bert(directory) if kind == "bert" else onnx_toys.save_tiny_gpt2(directory)


def same_bits(a: np.ndarray, b: np.ndarray) -> bool:
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


@functools.cache
def hf_converted(kind: str) -> Path:
    """``portability convert DIR/model.safetensors OUT.onnx --model hf:DIR``, once per kind."""
    from portability.cli import main

    directory = hf_dir(kind)
    out = ROOT / f"hf-{kind}.onnx"
    code = main(["convert", str(directory / "model.safetensors"), str(out), "--model", f"hf:{directory}"])
    assert code == 0 and out.is_file()
    return out
