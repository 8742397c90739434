"""TF SavedModel / ``.keras`` -> ONNX through tf2onnx, judged by onnxruntime against TF.

tf2onnx can report success and still write a graph onnxruntime refuses (on
TF 2.21 / Keras 3 a GELU becomes ``Erfc``, which onnxruntime has no kernel
for), or one that computes something else. The converted file is therefore
written under a temporary sibling name, loaded with onnxruntime, and run
against the SavedModel's ``serving_default`` signature on the same inputs;
only a file that loads and agrees is renamed to the final name. Anything else
is deleted and reported with the reason.

Keras 3 notes (tf2onnx 1.17, Keras 3.15): ``tf2onnx.convert.from_keras``
fails on a subclassed model ("the input shapes have not been set"), while a
SavedModel written by ``model.export`` (or ``tf.saved_model.save``) converts
through ``--saved-model``; ``.keras`` files are therefore exported with
``model.export`` to a temporary SavedModel first. tf2onnx names the ONNX
inputs and outputs after the signature's keys (``image``, ``args_0``,
``output_0``), so they are compared by name, or by position when the names differ.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from portability.errors import FormatError, MissingDependencyError, UnsupportedOpError
from portability.limits import ROUTE_TIMEOUT_S

# tf2onnx rewrites ops into other ops, so agreement is within float32 rounding of a
# reordered computation, not bitwise.
DEFAULT_ATOL = 1e-4
DEFAULT_RTOL = 1e-4


def savedmodel_to_onnx(savedmodel: str | Path, output: str | Path, opset: int | None = None,
                       timeout_s: float = ROUTE_TIMEOUT_S, inputs: str | Path | None = None,
                       atol: float = DEFAULT_ATOL, rtol: float = DEFAULT_RTOL) -> Path:
    """Convert a SavedModel with tf2onnx; keep the result only if onnxruntime loads it and
    its outputs agree with TensorFlow's on the same inputs.

    Args:
        savedmodel: the SavedModel directory (Keras ``model.export`` or ``tf.saved_model.save``).
        output: the ``.onnx`` file to write.
        opset: ONNX opset for tf2onnx; None takes its default.
        timeout_s: limit for the converter process.
        inputs: an ``.npz`` of inputs for the agreement check (default: random
            inputs shaped like the signature, unknown dims 2).
        atol / rtol: the agreement check's tolerance (an element fails past both).

    Returns:
        The output path.

    Raises:
        MissingDependencyError: tf2onnx is not installed.
        UnsupportedOpError: tf2onnx failed, wrote a model onnxruntime cannot load, or one
            whose outputs differ from TensorFlow's (the message says which and by how much);
            nothing is left under ``output``.
    """
    if importlib.util.find_spec("tf2onnx") is None:
        raise MissingDependencyError("the TF-native -> ONNX route needs tf2onnx, which is not "
                                     "installed (pip install tf2onnx)")
    output = Path(output)
    partial = output.with_name(f".{output.name}.tf2onnx-partial")
    command = [sys.executable, "-m", "tf2onnx.convert", "--saved-model", str(savedmodel),
               "--output", str(partial)]
    if opset is not None:
        command += ["--opset", str(opset)]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout_s)
        if done.returncode != 0 or not partial.is_file():
            tail = (done.stderr.strip().splitlines() or ["no output"])[-1]
            raise UnsupportedOpError(f"{savedmodel}: tf2onnx failed (exit {done.returncode}): {tail}")
        session = _load_session(partial, savedmodel)
        _check_agreement(session, Path(savedmodel), inputs, atol, rtol)
        partial.replace(output)
    finally:
        partial.unlink(missing_ok=True)
    return output


def keras_file_to_onnx(keras_file: str | Path, output: str | Path, **kwargs) -> Path:
    """Convert a ``.keras`` file: loaded in Keras' safe mode (no lambdas run), exported with
    ``model.export`` to a temporary SavedModel, then ``savedmodel_to_onnx`` (same arguments).

    Raises:
        FormatError: Keras cannot load the file (e.g. a subclassed model whose class is
            not importable here).
        UnsupportedOpError, MissingDependencyError: as ``savedmodel_to_onnx``.
    """
    import keras

    try:
        model = keras.saving.load_model(str(keras_file), safe_mode=True)
    except Exception as exc:  # Keras raises ValueError, TypeError and its own errors
        raise FormatError(f"{keras_file}: Keras cannot load the model ({type(exc).__name__}: "
                          f"{(str(exc).splitlines() or [''])[0][:200]})") from exc
    with tempfile.TemporaryDirectory(prefix="portability-keras-") as tmp:
        exported = Path(tmp) / "savedmodel"
        model.export(str(exported), format="tf_saved_model", verbose=False)
        return savedmodel_to_onnx(exported, output, **kwargs)


def _load_session(path: Path, source: str | Path):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    try:
        return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises several private exception types
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise UnsupportedOpError(f"{source}: tf2onnx reported success but onnxruntime cannot load "
                                 f"its model: {reason}") from exc


def _example_feed(session, inputs: str | Path | None) -> dict[str, np.ndarray]:
    """Inputs by ONNX input name: from ``inputs`` (by name, else by position) or random."""
    names = [i.name for i in session.get_inputs()]
    if inputs is not None:
        with np.load(inputs, allow_pickle=False) as data:
            given = {k: data[k] for k in data.files}
        if all(n in given for n in names):
            return {n: given[n] for n in names}
        return dict(zip(names, given.values(), strict=False))
    rng = np.random.default_rng(0)
    feed = {}
    for spec in session.get_inputs():
        shape = [d if isinstance(d, int) and d > 0 else 2 for d in spec.shape]
        if spec.type == "tensor(float)":
            feed[spec.name] = rng.standard_normal(shape).astype(np.float32)
        else:
            dtype = {"tensor(int64)": np.int64, "tensor(int32)": np.int32, "tensor(double)": np.float64,
                     "tensor(bool)": np.bool_}.get(spec.type, np.float32)
            feed[spec.name] = np.zeros(shape, dtype=dtype)
    return feed


def _check_agreement(session, savedmodel: Path, inputs, atol: float, rtol: float) -> None:
    from portability.adapters.tf_savedmodel.serving import TFSavedModelRunner

    feed = _example_feed(session, inputs)
    got = dict(zip([o.name for o in session.get_outputs()], session.run(None, feed), strict=False))
    runner = TFSavedModelRunner(savedmodel)
    try:
        runner.activate()
        keys = runner.input_keys
        tf_feed = {k: feed.get(k, feed.get(f"{k}:0")) for k in keys}
        if any(v is None for v in tf_feed.values()):
            tf_feed = dict(zip(keys, feed.values(), strict=False))
        expected = runner.infer(tf_feed)
    finally:
        runner.deactivate()
    pairs = _pair_outputs(expected, got)
    for name, (want, have) in pairs.items():
        if want.shape != have.shape:
            raise UnsupportedOpError(f"{savedmodel}: the tf2onnx model's output {name!r} has shape "
                                     f"{list(have.shape)}, TensorFlow's {list(want.shape)}")
        excess = np.abs(have.astype(np.float64) - want) - (atol + rtol * np.abs(want.astype(np.float64)))
        if want.size and (not np.all(np.isfinite(have)) or float(excess.max()) > 0):
            worst = float(np.abs(have.astype(np.float64) - want).max())
            raise UnsupportedOpError(f"{savedmodel}: the tf2onnx model drifts from TensorFlow on output "
                                     f"{name!r}: max abs diff {worst:.3g} > atol {atol:g} + rtol {rtol:g}")


def _pair_outputs(expected: dict[str, np.ndarray], got: dict[str, np.ndarray]) -> dict[str, tuple]:
    """TF output -> (TF value, ONNX value), by name (ignoring ``:0``), else by position."""
    bare = {k.removesuffix(":0"): v for k, v in got.items()}
    if set(expected) <= set(bare):
        return {k: (np.asarray(v), np.asarray(bare[k])) for k, v in expected.items()}
    if len(expected) != len(got):
        raise UnsupportedOpError(f"the tf2onnx model has {len(got)} outputs, TensorFlow's signature "
                                 f"{len(expected)}")
    pairs = zip(sorted(expected.items()), got.values(), strict=False)
    return {k: (np.asarray(v), np.asarray(g)) for (k, v), g in pairs}
