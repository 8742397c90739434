"""fp16/bf16 checkpoints go through the whole route: CLI -> ONNX export -> SavedModel.

The example inputs are cast to the checkpoint's precision; before that, the export
fed fp32 inputs to a half-precision model and failed.
"""

from __future__ import annotations

from pathlib import Path

import ml_dtypes
import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")
torch = pytest.importorskip("torch")

from portability.adapters.safetensors import format as safetensors_format
from portability.cli import main
from portability.core.checkpoint import Checkpoint
from portability.core.tensors import as_array
from portability.fixtures import get_fixture


@pytest.mark.slow
@pytest.mark.parametrize("dtype,tf_dtype,atol", [(np.float16, "float16", 5e-3),
                                                 (ml_dtypes.bfloat16, "bfloat16", 5e-2)])
def test_half_precision_checkpoint_converts_and_serves(tmp_path: Path, dtype, tf_dtype, atol):
    fixture = get_fixture("mlp")
    ckpt = fixture.pretrained()
    half = {name: as_array(t).astype(dtype) if as_array(t).dtype == np.float32 else as_array(t)
            for name, t in ckpt.tensors.items()}
    safetensors_format.write(Checkpoint(tensors=half), tmp_path / "half.safetensors")

    code = main(["convert", str(tmp_path / "half.safetensors"), str(tmp_path / "saved"),
                 "--to", "tf-savedmodel", "--model", "fixture:mlp"])
    assert code == 0

    batch = fixture.eval_batch()
    model = fixture.load(ckpt)
    with torch.no_grad():
        reference = model(*[torch.from_numpy(v) for v in batch.values()]).numpy()
    serve = tf.saved_model.load(str(tmp_path / "saved")).signatures["serving_default"]
    (name, spec), = serve.structured_input_signature[1].items()
    assert spec.dtype.name == tf_dtype
    (out,) = serve(**{name: tf.cast(next(iter(batch.values())), spec.dtype)}).values()
    drift = np.max(np.abs(tf.cast(out, tf.float32).numpy() - reference))
    assert 0 < drift <= atol, f"{tf_dtype} drift {drift}"
