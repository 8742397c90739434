"""TF-native SavedModel -> ONNX through tf2onnx (optional), judged by onnxruntime.

tf2onnx can report success and still write a graph onnxruntime refuses (on
TF 2.21 / Keras 3 a GELU becomes ``Erfc``, which onnxruntime has no kernel
for). The converted file is therefore loaded with onnxruntime before it
counts: a file that does not load is deleted and reported, never kept.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

from portability.errors import MissingDependencyError, UnsupportedOpError
from portability.limits import ROUTE_TIMEOUT_S


def savedmodel_to_onnx(savedmodel: str | Path, output: str | Path, opset: int | None = None,
                       timeout_s: float = ROUTE_TIMEOUT_S) -> Path:
    """Convert a SavedModel with tf2onnx and check that onnxruntime loads the result.

    Args:
        savedmodel: the SavedModel directory (Keras ``model.export`` or ``tf.saved_model.save``).
        output: the ``.onnx`` file to write.
        opset: ONNX opset for tf2onnx; None takes its default.
        timeout_s: limit for the converter process.

    Returns:
        The output path.

    Raises:
        MissingDependencyError: tf2onnx is not installed.
        UnsupportedOpError: tf2onnx failed, or wrote a model onnxruntime cannot load
            (the message carries onnxruntime's reason; the file is removed).
    """
    if importlib.util.find_spec("tf2onnx") is None:
        raise MissingDependencyError("the TF-native -> ONNX route needs tf2onnx, which is not "
                                     "installed (pip install tf2onnx)")
    output = Path(output)
    command = [sys.executable, "-m", "tf2onnx.convert", "--saved-model", str(savedmodel),
               "--output", str(output)]
    if opset is not None:
        command += ["--opset", str(opset)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=timeout_s)
    if done.returncode != 0 or not output.is_file():
        tail = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise UnsupportedOpError(f"{savedmodel}: tf2onnx failed (exit {done.returncode}): {tail}")
    _check_loads(output, savedmodel)
    return output


def _check_loads(path: Path, source: str | Path) -> None:
    import onnxruntime as ort

    try:
        ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises several private exception types
        path.unlink(missing_ok=True)
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise UnsupportedOpError(f"{source}: tf2onnx reported success but onnxruntime cannot load "
                                 f"its model: {reason}") from None
