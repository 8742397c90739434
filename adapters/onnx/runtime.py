"""Evaluate ONNX files with onnxruntime (CPU), after ``onnx.checker`` passes.

A graph that the checker rejects, or that ORT cannot load (an op or dtype it
has no kernel for), raises a typed error carrying the checker's or ORT's own
message: it is never reported as a success.

Half precision on onnxruntime 1.32's CPU provider (checked by the tests):
float16 exports of Linear/GELU/LayerNorm and Conv/BatchNorm models load and run.
bfloat16 exports import bitwise but do not run: there is no bfloat16 MatMul
kernel (``UnsupportedOpError``: "Could not find an implementation for
MatMul"), and the ONNX schema of Conv does not admit bfloat16 at all, so the
checker rejects such a graph (``UnsupportedOpError``: "has unsupported type").
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort

from portability.adapters.onnx.safety import external_tensors, load_proto, model_file
from portability.core.runner import BaseRunner
from portability.errors import FormatError, UnsupportedOpError, UsageError

PROVIDERS = ("CPUExecutionProvider",)
# Past this many bytes of weights, MatMul weights are not pre-packed: onnxruntime memory-maps
# external data, and pre-packing copies each weight into its own layout, so a session held
# the mapped file and the packed copy at once (2x the weights, measured on a 1 GiB MatMul);
# unpacked, it holds the mapped pages alone, at the same speed on the small batches we run.
PREPACK_LIMIT_BYTES = 1 << 30
_UNSUPPORTED_MARKERS = ("No Op registered", "not a registered function/op", "Could not find an implementation",
                        "NOT_IMPLEMENTED", "No opset import for domain", "Type Error: Type 'tensor(",
                        "has unsupported type")


def check_model(path: str | Path) -> Path:
    """Run external-data safety checks and ``onnx.checker`` (full check) on a file.

    Returns:
        The ``.onnx`` file checked.

    Raises:
        UnsafeCheckpointError: escaping external data.
        UnsupportedOpError: an op (or op/dtype pair) the ONNX schema does not know.
        FormatError: any other checker failure (its message).
    """
    file = model_file(path)
    load_proto(file, load_external=False)
    try:
        onnx.checker.check_model(str(file), full_check=True)
    except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError) as exc:
        raise _classify(f"{file}: onnx.checker rejects the model", exc) from exc
    return file


def weight_bytes(file: Path) -> int:
    """The bytes of a model's weights: the ``.onnx`` file and the external data it names."""
    proto = load_proto(file, load_external=False)
    external = sum(int(e.value) for t in external_tensors(proto) for e in t.external_data if e.key == "length")
    return file.stat().st_size + external


def _classify(prefix: str, exc: Exception) -> FormatError | UnsupportedOpError:
    text = " ".join(str(exc).split())
    error = UnsupportedOpError if any(m in text for m in _UNSUPPORTED_MARKERS) else FormatError
    return error(f"{prefix}: {text[:500]}")


class OnnxRuntimeRunner(BaseRunner):
    """Runs an ``.onnx`` file (or a directory holding one) with onnxruntime.

    Args:
        path: the model.
        providers: ORT execution providers, CPU by default.
    """

    name = "onnxruntime"

    def __init__(self, path: str | Path, providers: tuple[str, ...] = PROVIDERS) -> None:
        super().__init__()
        self.path = Path(path)
        self.providers = providers
        self.session: ort.InferenceSession | None = None
        self.input_names: list[str] = []
        self.output_names: list[str] = []
        self.input_dims: dict[str, list[int | None]] = {}

    def activate_impl(self) -> None:
        """Check the model, then create the session.

        Raises:
            UnsafeCheckpointError, FormatError, UnsupportedOpError: see ``check_model``;
                session creation failures carry ORT's message.
        """
        file = check_model(self.path)
        options = ort.SessionOptions()
        options.log_severity_level = 3  # files other tools wrote may hold unused initializers; keep ORT quiet
        if weight_bytes(file) > PREPACK_LIMIT_BYTES:
            options.add_session_config_entry("session.disable_prepacking", "1")
        try:
            self.session = ort.InferenceSession(str(file), options, providers=list(self.providers))
        except Exception as exc:  # ORT's pybind errors share no public base class
            raise _classify(f"{file}: onnxruntime {ort.__version__} cannot load the model", exc) from exc
        self.input_names = [i.name for i in self.session.get_inputs()]
        self.output_names = [o.name for o in self.session.get_outputs()]
        # A symbolic or unknown dim comes back as a name or None: dynamic.
        self.input_dims = {i.name: [d if isinstance(d, int) and d > 0 else None for d in (i.shape or [])]
                           for i in self.session.get_inputs()}

    def infer_impl(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run on named inputs; every graph input must be given, no others.

        Raises:
            UsageError: missing or unknown input names.
            FormatError: ORT fails at run time (its message).
        """
        missing = [n for n in self.input_names if n not in feed]
        unknown = [n for n in feed if n not in self.input_names]
        if missing or unknown:
            raise UsageError(f"{self.path}: inputs do not match the graph's ({', '.join(self.input_names)}): "
                             f"missing {missing or 'none'}, unknown {unknown or 'none'}")
        try:
            values = self.session.run(None, {n: np.ascontiguousarray(feed[n]) for n in self.input_names})
        except Exception as exc:
            raise _classify(f"{self.path}: onnxruntime failed to run", exc) from exc
        return dict(zip(self.output_names, values, strict=False))

    def deactivate_impl(self) -> None:
        self.session = None
