"""Read an ONNX file's weights into a ``Checkpoint``.

Three cases, in order:
1. our export: the ``metadata_props`` record maps every state_dict name to its
   initializer (or to the value kept in the ``portability.originals`` function,
   ``originals.py``) and layout; checksums are verified (``name_map.py``);
2. a torch export without the record: names are recovered by following the
   graph (``recover.py``); what cannot be mapped is listed in the metadata
   under ``portability.onnx.unmapped`` / ``portability.onnx.missing`` and in a
   warning, not guessed;
3. any other producer: every initializer under its own name, plus weights
   stored as ``Constant`` nodes, named after the node that reads them
   (``constant_weights.py``); the names and readers are recorded in the
   metadata under ``portability.onnx.constant_names``.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np

from portability.adapters.onnx import constant_weights, lazy_values, name_map, originals, recover
from portability.adapters.onnx.safety import load_proto, model_file
from portability.adapters.onnx.tensors import tensor_to_numpy
from portability.core.checkpoint import Checkpoint
from portability.core.options import ReadOptions

KEY_SOURCE = "portability.onnx.names"
KEY_UNMAPPED = "portability.onnx.unmapped"
KEY_MISSING = "portability.onnx.missing"
KEY_IDENTITY_READERS = "portability.onnx.identity_readers"
KEY_PRODUCER = "portability.onnx.producer"


class UnmappedWeightsWarning(UserWarning):
    """Some initializers of an ONNX file could not be tied to state_dict names."""


def read(path: str | Path, options: ReadOptions = ReadOptions()) -> Checkpoint:
    """Read the weights of an ``.onnx`` file (or a directory holding one).

    Raises:
        FormatError: not an ONNX model, or a malformed record.
        UnsafeCheckpointError: external data outside the model's directory.
        IntegrityError: a tensor does not match its recorded checksum.
    """
    file = model_file(path)
    proto = load_proto(file, load_external=False)
    props = {p.key: p.value for p in proto.metadata_props}
    if name_map.has_record(props):
        # External data stays in its file: each tensor is read (and its checksum checked) when used.
        values = lazy_values.initializer_values(proto, file)
        values.update(originals.read_originals(proto))
        tensors, aliases, metadata = name_map.apply_name_map(props, values, str(file), options.verify)
        metadata = {**metadata, KEY_SOURCE: "record"}
        return Checkpoint(tensors=tensors, aliases=aliases, metadata=metadata,
                          checksummed=name_map.KEY_CHECKSUMS in props)
    proto = load_proto(file)
    arrays = {t.name: tensor_to_numpy(t) for t in proto.graph.initializer}
    if recover.is_torch_export(proto):
        return _from_torch_export(proto, arrays, file)
    return _from_other_producer(proto, arrays)


def _from_other_producer(proto, arrays: dict[str, np.ndarray]) -> Checkpoint:
    """Initializers under their names, then ``Constant``-node weights under their readers' names."""
    found, records = constant_weights.find_constant_weights(proto, set(arrays))
    metadata = {KEY_SOURCE: "initializers"}
    if proto.producer_name:
        metadata[KEY_PRODUCER] = proto.producer_name
    if records:
        metadata[KEY_SOURCE] = "initializers+constants" if arrays else "constants"
        metadata[constant_weights.KEY_CONSTANT_NAMES] = json.dumps(
            {r.name: {"value": r.value_name, "read_by": r.consumers} for r in records})
    behind = constant_weights.identity_readers(proto)
    if behind:
        metadata[KEY_IDENTITY_READERS] = json.dumps(behind)
    return Checkpoint(tensors={**arrays, **found}, metadata=metadata)


def _from_torch_export(proto, arrays: dict[str, np.ndarray], file: Path) -> Checkpoint:
    found = recover.recover_torch_names(proto, arrays)
    metadata = {KEY_SOURCE: "graph"}
    if found.unmapped or found.missing:
        metadata[KEY_UNMAPPED] = json.dumps(found.unmapped)
        metadata[KEY_MISSING] = json.dumps(found.missing)
        warnings.warn(
            f"{file}: torch export without a portability record; {len(found.tensors)} tensors "
            f"recovered by name, {len(found.unmapped)} initializers tied to no parameter "
            f"({', '.join(list(found.unmapped)[:5])}), {len(found.missing)} parameters read by the "
            f"graph but not found ({', '.join(found.missing[:5])}); see metadata {KEY_UNMAPPED!r}",
            UnmappedWeightsWarning, stacklevel=2)
    return Checkpoint(tensors=found.tensors, metadata=metadata)
