"""Save a translated module as a SavedModel, and read any SavedModel's variables back.

Reading never loads or runs the graph (a SavedModel is a program): the values
come from ``variables/variables.index`` + data through ``tf.train.load_checkpoint``,
and names from the checkpoint's object graph (each variable's ``full_name``).
Our exports add ``assets.extra/portability.json`` (order, aliases, metadata,
training state), a directory TF Serving and ``tf.saved_model.load`` ignore.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import onnx
import tensorflow as tf
from google.protobuf.message import DecodeError
from tensorflow.core.protobuf import trackable_object_graph_pb2

from portability.adapters.onnx.lazy_values import with_digest
from portability.adapters.tf_savedmodel.graph import TranslatedModule, variable_name
from portability.core import integrity
from portability.core.checkpoint import Checkpoint
from portability.core.tensors import LazyTensor, Tensor, as_array, iter_bytes
from portability.core.training_codec import TRAINING_PREFIX, pack_training, unpack_training
from portability.errors import FormatError, IntegrityError, UnsupportedOpError

SIDECAR = Path("assets.extra") / "portability.json"
SIDECAR_FORMAT = "portability.tf-savedmodel/1"
# The signature computing from the variables where ``serving_default`` holds compiled weights.
FROM_VARIABLES = "from_variables"
_OBJECT_GRAPH_KEY = "_CHECKPOINTABLE_OBJECT_GRAPH"
_VALUE_SUFFIX = "/.ATTRIBUTES/VARIABLE_VALUE"
_LIST_PREFIX = "variables/"


def save_module(module: TranslatedModule, ckpt: Checkpoint | None, path: Path) -> None:
    """Write the module as a SavedModel with a ``serving_default`` signature.

    The training state, if any, travels as non-trainable variables named
    ``__training__.*`` plus JSON in the sidecar. Where ``serving_default`` holds
    weights as constants (``compiled_weights`` in the sidecar), a second
    signature, ``from_variables``, computes from the variables, for training. Inputs and outputs of ONNX types
    TF cannot compute with take and return their carrier dtype in the signature;
    the sidecar's ``carried_outputs`` names the ONNX type of such outputs.

    Raises:
        UnsupportedOpError: a graph input no serving signature can take (a sequence
            or an optional); nothing is written.
    """
    if module.serving_refusal:
        raise UnsupportedOpError(f"{module.serving_refusal}; nothing was written")
    sidecar: dict = {"format": SIDECAR_FORMAT,
                     "variables": {variable_name(n): n for n in module.weights},
                     "frozen": module.plan.frozen,
                     "not_in_graph": module.unread_variables(),
                     "compiled_weights": module.compiled_weights,
                     "inputs": [s.name for s in module.serve.input_signature],
                     "outputs": module.output_names,
                     "carried_outputs": {key: onnx.TensorProto.DataType.Name(elem_type)
                                         for key, elem_type in module.carried_outputs.items()}}
    if ckpt is not None:
        sidecar.update(order=list(ckpt.tensors), aliases=dict(ckpt.aliases),
                       metadata=dict(ckpt.metadata), layout=ckpt.layout,
                       checksums={n: integrity.tensor_digest(ckpt.tensors[n])
                                  for n in ckpt.canonical_names()})
    # Only the variables and the signatures are saved: saving the module's tf.functions
    # themselves would trace them again and store every compiled weight twice.
    root = tf.Module(name="portability_onnx")
    root.weights = module.weights
    if ckpt is not None and ckpt.training is not None:
        text, arrays = pack_training(ckpt.training)
        sidecar["training"] = text
        root.training_arrays = {n: tf.Variable(as_array(a), name=variable_name(n), trainable=False)
                                for n, a in arrays.items()}
        sidecar["variables"].update({variable_name(n): n for n in arrays})
    signatures = {"serving_default": module.serve.get_concrete_function()}
    if module.compiled_weights:
        signatures[FROM_VARIABLES] = module.serve_from_variables.get_concrete_function()
    tf.saved_model.save(root, str(path), signatures=signatures)
    (path / SIDECAR).parent.mkdir(parents=True, exist_ok=True)
    (path / SIDECAR).write_text(json.dumps(sidecar, indent=1))


def variables_prefix(path: Path) -> str:
    """The checkpoint prefix of a SavedModel directory.

    Raises:
        FormatError: no ``saved_model.pb`` or no variables index.
    """
    if not (path / "saved_model.pb").is_file() and not (path / "saved_model.pbtxt").is_file():
        raise FormatError(f"{path}: not a SavedModel (no saved_model.pb)")
    index = path / "variables" / "variables.index"
    if not index.is_file():
        raise FormatError(f"{path}: SavedModel has no variables/variables.index")
    return str(index.with_suffix(""))


def read_variables(path: Path) -> dict[str, np.ndarray]:
    """Every variable of a SavedModel by name, in object-graph order, without running it.

    Names are the variables' ``full_name`` (``sequential/dense/kernel`` for
    Keras, the state_dict name for ours). A variable reachable by several
    paths appears once; distinct variables sharing a name (a Keras 3
    subclassed model's ``model/kernel``) are numbered, never merged.

    Raises:
        FormatError: an unreadable variables checkpoint.
    """
    prefix = variables_prefix(path)
    try:
        return _read_values(path, prefix)
    except _READ_ERRORS as exc:
        raise FormatError(f"{path}: cannot read the variables checkpoint: "
                          f"{str(exc).splitlines()[0] if str(exc) else type(exc).__name__}") from exc


# What TF's bundle reader and protobuf raise on a damaged variables checkpoint
# (a bad CRC is a DataLossError, an OpError; a short data file an IndexError).
_READ_ERRORS = (tf.errors.OpError, ValueError, IndexError, TypeError, KeyError, DecodeError)


def _read_values(path: Path, checkpoint_prefix: str, lazy: bool = False) -> dict[str, Tensor]:
    """The variables by name (see ``read_variables``); ``lazy``: numeric ones as lazy
    tensors, read from the variables data when used."""
    reader = tf.train.load_checkpoint(checkpoint_prefix)
    _check_declared_sizes(reader, checkpoint_prefix, path)
    dtypes = reader.get_variable_to_dtype_map()
    shapes = reader.get_variable_to_shape_map()
    graph = trackable_object_graph_pb2.TrackableObjectGraph()
    graph.ParseFromString(reader.get_tensor(_OBJECT_GRAPH_KEY))
    found: dict[str, str] = {}  # checkpoint key -> variable name, in object-graph order
    for node in graph.nodes:
        for attribute in node.attributes:
            key = attribute.checkpoint_key
            if key.endswith(_VALUE_SUFFIX) and key not in found:
                name = attribute.full_name or key[: -len(_VALUE_SUFFIX)]
                found[key] = name[:-2] if name.endswith(":0") else name
    # A Keras export lists each variable once under ``variables/N`` (and again under other
    # lists); when that list exists it is the one read, so no variable is counted twice.
    listed = [k for k in found if k.startswith(_LIST_PREFIX)]
    out: dict[str, Tensor] = {}
    repeats: dict[str, int] = {}
    for key in listed or list(found):
        name = found[key]
        numeric = dtypes[key].is_numeric or dtypes[key].is_bool
        value: Tensor = _variable_tensor(reader, key, dtypes[key], shapes[key], path) if lazy and numeric \
            else np.asarray(reader.get_tensor(key))
        if name in out:
            if not listed and _same_bits(as_array(out[name]), as_array(value)):
                continue  # one variable reached by another path
            # Keras 3 names a subclassed model's variables ``model/kernel`` whatever their
            # layer: the n-th repeat becomes ``model/n/kernel``, so none is dropped.
            repeats[name] = repeats.get(name, 0) + 1
            prefix, _, leaf = name.rpartition("/")
            name = f"{prefix}/{repeats[name]}/{leaf}" if prefix else f"{repeats[name]}/{leaf}"
        out[name] = value
    return out


def _variable_tensor(reader, key: str, dtype, shape: list[int], path: Path) -> LazyTensor:
    """A variable read from the checkpoint when used (one tensor in memory at a time)."""

    def load() -> np.ndarray:
        try:
            value = np.asarray(reader.get_tensor(key), order="C")  # ascontiguousarray makes a scalar 1-D
        except _READ_ERRORS as exc:
            raise FormatError(f"{path}: cannot read variable {key!r}: "
                              f"{str(exc).splitlines()[0] if str(exc) else type(exc).__name__}") from exc
        return value if value.flags.writeable else value.copy()

    def read_chunks(chunk: int) -> Iterator[bytes | memoryview]:
        yield from iter_bytes(load(), chunk)

    def read_into(buffer: memoryview) -> None:
        np.frombuffer(buffer, dtype=np.uint8)[:] = load().reshape(-1).view(np.uint8)

    return LazyTensor(np.dtype(dtype.as_numpy_dtype), tuple(int(d) for d in shape), read_chunks, read_into,
                      label=f"variable {key!r} in {path}", loader=load)


def _same_bits(a: np.ndarray, b: np.ndarray) -> bool:
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


def _check_declared_sizes(reader, prefix: str, path: Path) -> None:
    """Refuse variables whose index declares more bytes than the data files hold,
    before TF allocates a buffer of the declared size.

    Raises:
        FormatError: naming the variable.
    """
    data_bytes = sum(p.stat().st_size for p in Path(prefix).parent.glob(Path(prefix).name + ".data-*"))
    dtypes = reader.get_variable_to_dtype_map()
    for key, shape in reader.get_variable_to_shape_map().items():
        dtype = dtypes.get(key)
        if dtype is None or dtype == tf.string:
            continue
        if any(d < 0 for d in shape):
            raise FormatError(f"{path}: variable {key!r} has a negative dimension {shape}: damaged index")
        declared = int(np.prod(shape, dtype=np.float64)) * dtype.size
        if declared > data_bytes:
            raise FormatError(f"{path}: variable {key!r} declares {declared} bytes but the variables "
                              f"data holds {data_bytes}: damaged or truncated checkpoint")


def read_sidecar(path: Path) -> dict | None:
    """Our record beside a SavedModel's graph (``SIDECAR``), checked; None when there is none
    (a SavedModel another tool wrote). The reader and the runner both go through here, so a
    damaged record is the same error whichever opens it.

    Raises:
        FormatError: the record is not JSON, or its ``variables`` or ``carried_outputs`` are
            malformed (names the file).
    """
    sidecar_path = path / SIDECAR
    if not sidecar_path.is_file():
        return None
    try:
        sidecar = json.loads(sidecar_path.read_text())
        if not isinstance(sidecar, dict):
            raise TypeError("the record is not an object")
        if not isinstance(sidecar["variables"], dict):
            raise TypeError("'variables' is not an object")
        carried = sidecar.get("carried_outputs", {})
        if not isinstance(carried, dict):
            raise TypeError("'carried_outputs' is not an object")
        for name in carried.values():
            onnx.TensorProto.DataType.Value(name)  # ValueError for a type ONNX does not have
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise FormatError(f"{sidecar_path}: damaged portability record ({exc})") from exc
    return sidecar


def read_savedmodel(path: Path, verify: bool = True) -> Checkpoint:
    """A SavedModel's variables as a Checkpoint (ours come back under state_dict names).

    Args:
        path: the SavedModel directory.
        verify: check each tensor against the checksum our export recorded.

    Raises:
        FormatError: not a SavedModel, unreadable variables, or a damaged sidecar.
        IntegrityError: a variable's bytes differ from its recorded checksum.
    """
    try:  # numeric variables stay in the variables data until used
        values = _read_values(path, variables_prefix(path), lazy=True)
    except _READ_ERRORS as exc:
        raise FormatError(f"{path}: cannot read the variables checkpoint: "
                          f"{str(exc).splitlines()[0] if str(exc) else type(exc).__name__}") from exc
    sidecar = read_sidecar(path)
    if sidecar is None:
        return Checkpoint(tensors=values, layout="tf-savedmodel",
                          metadata={"portability.source": "tf-savedmodel"})
    names = sidecar["variables"]
    by_name = {names.get(tf_name, tf_name): value for tf_name, value in values.items()}
    training = None
    if "training" in sidecar:
        arrays = {n: as_array(v) for n, v in by_name.items() if n.startswith(TRAINING_PREFIX)}
        training = unpack_training(sidecar["training"], arrays)
    tensors = {n: v for n, v in by_name.items() if not n.startswith(TRAINING_PREFIX)}
    aliases = sidecar.get("aliases", {})
    missing = [n for n in sidecar.get("order", []) if n not in tensors and aliases.get(n) not in tensors]
    if missing:
        raise FormatError(f"{path}: variables missing from the SavedModel: {', '.join(missing[:5])}")
    checksums = sidecar.get("checksums", {})
    if verify:
        for name, expected in checksums.items():  # streamed, one variable at a time
            if name in tensors and integrity.tensor_digest(tensors[name]) != expected:
                raise IntegrityError(f"{path}: variable {name!r} does not match its recorded "
                                     "checksum; the SavedModel's variables were modified or damaged")
            if name in tensors:
                tensors[name] = with_digest(tensors[name], expected)
    order = sidecar.get("order") or list(tensors)
    ordered = {n: tensors[aliases.get(n, n)] for n in order}
    ordered.update({n: v for n, v in tensors.items() if n not in ordered})
    return Checkpoint(tensors=ordered, aliases=aliases, metadata=sidecar.get("metadata", {}),
                      training=training, layout=sidecar.get("layout", "state_dict"),
                      checksummed=verify and bool(checksums))
