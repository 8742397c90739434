"""Run a SavedModel's ``serving_default`` signature on named numpy inputs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import tensorflow as tf

from portability.adapters.tf_savedmodel.graph import safe_name
from portability.adapters.tf_savedmodel.ops.carriers import from_carrier_array, to_carrier_array
from portability.adapters.tf_savedmodel.savedmodel_io import read_sidecar
from portability.core.runner import BaseRunner
from portability.errors import FormatError, UsageError

SIGNATURE = "serving_default"


class TFSavedModelRunner(BaseRunner):
    """Loads the SavedModel with ``tf.saved_model.load`` and calls its serving signature.

    Feed names may be the ONNX/PyTorch names (``input_ids``) or the signature's
    keys; inputs are cast to the signature's dtypes. ml_dtypes arrays of types TF
    cannot compute with (float8 fnuz, int4...) are fed as the carriers the
    signature takes, and such outputs come back in the ONNX type our sidecar names.
    """

    name = "tensorflow"

    def __init__(self, path: str | Path) -> None:
        super().__init__()
        self.path = Path(path)

    def activate_impl(self) -> None:
        try:
            self._loaded = tf.saved_model.load(str(self.path))
        except (OSError, ValueError, tf.errors.OpError) as exc:
            raise FormatError(f"{self.path}: cannot load the SavedModel: "
                              f"{(str(exc).splitlines() or [''])[0]}") from exc
        if SIGNATURE not in self._loaded.signatures:
            raise FormatError(f"{self.path}: no {SIGNATURE!r} signature "
                              f"(has: {', '.join(self._loaded.signatures) or 'none'})")
        self._fn = self._loaded.signatures[SIGNATURE]
        self._specs = self._fn.structured_input_signature[1]
        self._carried_outputs = _carried_outputs(self.path)

    @property
    def input_keys(self) -> list[str]:
        """The serving signature's input keys (after ``activate``)."""
        return list(self._specs)

    @property
    def input_dims(self) -> dict[str, list[int | None]]:
        """The serving signature's input shapes by key, None for a dynamic axis (after ``activate``)."""
        return {key: (spec.shape.as_list() if spec.shape.rank is not None else [])
                for key, spec in self._specs.items()}

    @property
    def input_specs(self) -> dict:
        """The serving signature's ``tf.TensorSpec`` per input key (after ``activate``)."""
        return dict(self._specs)

    def infer_impl(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        by_key = {safe_name(name): value for name, value in feed.items()}
        missing = [key for key in self._specs if key not in by_key]
        if missing:
            raise UsageError(f"{self.path}: missing inputs {', '.join(missing)} "
                             f"(the signature takes {', '.join(self._specs)})")
        args = {key: _as_tensor(by_key[key], spec.dtype) for key, spec in self._specs.items()}
        outputs = {name: value.numpy() for name, value in self._fn(**args).items()}
        for name, elem_type in self._carried_outputs.items():
            if name in outputs:
                outputs[name] = from_carrier_array(outputs[name], elem_type)
        return outputs

    def deactivate_impl(self) -> None:
        self._fn = None
        self._loaded = None


def _as_tensor(value, dtype: tf.DType) -> tf.Tensor:
    """An input as the signature's dtype: converted without running an op when it already
    has it (a cast costs an eager op per input and call), else cast."""
    array = np.asarray(to_carrier_array(value))
    if array.dtype == dtype.as_numpy_dtype:
        return tf.constant(array)
    return tf.cast(array, dtype)


def _carried_outputs(path: Path) -> dict[str, int]:
    """Output key -> ONNX element type of the outputs our export left in carriers
    (none for a SavedModel without our sidecar).

    Raises:
        FormatError: the sidecar is damaged (as the reader says): its outputs would
            otherwise come back as raw carrier codes.
    """
    sidecar = read_sidecar(path)
    named = {} if sidecar is None else sidecar.get("carried_outputs", {})
    return {key: onnx.TensorProto.DataType.Value(name) for key, name in named.items()}
