"""A conversion imports only what its checkpoint needs: a float32 torch -> safetensors
convert loads neither ml_dtypes (half a second) nor any framework; a bfloat16 one loads
ml_dtypes, and only then."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

from portability.core.checkpoint import Checkpoint
from portability.core.dtypes import numpy_dtype
from portability.core.formats import load_adapter

HEAVY = ("ml_dtypes", "torch", "tensorflow", "onnx", "onnxruntime", "safetensors", "transformers")


def _imported_by_convert(src, dst) -> set[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    done = subprocess.run([sys.executable, "-X", "importtime", "-m", "portability.cli", "convert", str(src), str(dst)],
                          capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr
    modules = {line.rsplit("|", 1)[1].strip() for line in done.stderr.splitlines() if line.startswith("import time:")}
    return {m.split(".")[0] for m in modules}


@pytest.mark.parametrize("name,heavy_expected", [("F32", set()), ("BF16", {"ml_dtypes"})])
def test_convert_imports_only_what_the_dtypes_need(tmp_path, name, heavy_expected):
    pytest.importorskip("torch")
    src = tmp_path / "model.pt"
    raw = np.arange(64, dtype=np.uint8).view(numpy_dtype(name))
    load_adapter("torch").write(Checkpoint(tensors={"w": raw.reshape(2, -1)}), src)
    imported = _imported_by_convert(src, tmp_path / "model.safetensors")
    assert imported & set(HEAVY) == heavy_expected
