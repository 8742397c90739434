"""Open ONNX files safely: external data must stay inside the model's directory.

An ONNX tensor may keep its bytes in another file named by its ``location``
field. A hostile file can point that at ``../../etc/passwd``, an absolute path
or a symlink. Every location is checked on the bare proto, before any external
byte is read; only then is the data loaded.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path, PurePosixPath, PureWindowsPath

import onnx
from onnx import TensorProto

from portability.errors import FormatError, UnsafeCheckpointError


def model_file(path: str | Path) -> Path:
    """The ``.onnx`` file for a path: the file itself, or the one file in a directory.

    Raises:
        FormatError: missing path, or a directory without exactly one ``.onnx`` file.
    """
    path = Path(path)
    if path.is_dir():
        found = sorted(p for p in path.iterdir() if p.suffix == ".onnx" and p.is_file())
        if len(found) != 1:
            raise FormatError(f"{path}: expected one .onnx file in the directory, found {len(found)}")
        return found[0]
    if not path.is_file():
        raise FormatError(f"{path}: no such file")
    return path


def load_proto(path: str | Path, *, load_external: bool = True) -> onnx.ModelProto:
    """Parse an ONNX file, check every external-data location, then load the data.

    Args:
        path: an ``.onnx`` file or a directory holding one.
        load_external: also read external tensor bytes into the proto.

    Returns:
        The model proto.

    Raises:
        FormatError: the file is not a parsable ONNX model, or external data
            is missing or shorter than recorded.
        UnsafeCheckpointError: an external-data location escapes the model's
            directory (``..``, absolute path, symlink); nothing was read from it.
    """
    file = model_file(path)
    try:
        proto = onnx.load(str(file), load_external_data=False)
    except Exception as exc:  # protobuf raises DecodeError, onnx raises its own kinds
        raise FormatError(f"{file}: not a readable ONNX model ({type(exc).__name__}: "
                          f"{str(exc).splitlines()[0] if str(exc) else 'parse failed'})") from exc
    check_names_decode(proto, file)
    check_external_locations(proto, file)
    if load_external and any(True for _ in external_tensors(proto)):
        try:
            onnx.load_external_data_for_model(proto, str(file.parent))
        except (OSError, ValueError, TypeError) as exc:
            raise FormatError(f"{file}: cannot read external data ({exc})") from exc
    return proto


def check_names_decode(proto: onnx.ModelProto, file: Path) -> None:
    """Refuse string fields that are not valid UTF-8 where the reader uses them.

    protobuf hands such a field back as ``bytes`` instead of ``str`` (with a
    warning), which onnx and pathlib then reject with a ``TypeError``.

    Raises:
        FormatError: a tensor, node, input or output name, external-data entry or
            metadata string that is not valid UTF-8.
    """
    tensors = list(proto.graph.initializer) + list(external_tensors(proto))
    fields = [f for t in tensors for f in [t.name] + [v for e in t.external_data for v in (e.key, e.value)]]
    fields += [f for node in proto.graph.node
               for f in [node.name, node.op_type, node.domain, *node.input, *node.output]]
    fields += [v.name for v in list(proto.graph.input) + list(proto.graph.output)]
    fields += [f for prop in proto.metadata_props for f in (prop.key, prop.value)]
    bad = next((f for f in fields if not isinstance(f, str)), None)
    if bad is not None:
        raise FormatError(f"{file}: damaged ONNX model: the name or string {bad!r} is not valid UTF-8")


def check_external_locations(proto: onnx.ModelProto, file: Path) -> None:
    """Refuse any external-data location outside ``file``'s directory.

    Raises:
        UnsafeCheckpointError: absolute, ``..``, symlinked or escaping locations.
        FormatError: a location that is missing, not a file, or too short.
    """
    base = file.parent.resolve()
    for tensor in external_tensors(proto):
        info = {entry.key: entry.value for entry in tensor.external_data}
        location = info.get("location", "")
        where = f"{file}: tensor {tensor.name!r} keeps its data at {location!r}"
        if not location:
            raise FormatError(f"{file}: tensor {tensor.name!r} is external but names no location")
        if "\x00" in location:  # no file name holds one; path functions raise ValueError on it
            raise FormatError(f"{where}: a location with a NUL byte: the model is damaged")
        if _is_absolute(location) or ".." in _parts(location):
            raise UnsafeCheckpointError(f"{where}, outside the model's directory; refusing to read it")
        candidate = file.parent / location
        if _has_symlink(file.parent, location):
            raise UnsafeCheckpointError(f"{where}, which is a symlink; refusing to follow it")
        if not candidate.resolve().is_relative_to(base):
            raise UnsafeCheckpointError(f"{where}, outside the model's directory; refusing to read it")
        if not candidate.is_file():
            raise FormatError(f"{where}, which does not exist next to the model")
        _check_extent(tensor, info, candidate, where)


def external_tensors(proto: onnx.ModelProto) -> Iterator[TensorProto]:
    """Every tensor with external data: initializers, sparse ones, attributes, subgraphs."""
    for tensor in _all_tensors(proto.graph):
        if tensor.data_location == TensorProto.EXTERNAL:
            yield tensor
    for function in proto.functions:
        for node in function.node:
            for tensor in _attribute_tensors(node):
                if tensor.data_location == TensorProto.EXTERNAL:
                    yield tensor


def _all_tensors(graph: onnx.GraphProto) -> Iterator[TensorProto]:
    yield from graph.initializer
    for sparse in graph.sparse_initializer:
        yield sparse.values
        yield sparse.indices
    for node in graph.node:
        yield from _attribute_tensors(node)


def _attribute_tensors(node: onnx.NodeProto) -> Iterator[TensorProto]:
    for attr in node.attribute:
        if attr.HasField("t"):
            yield attr.t
        yield from attr.tensors
        if attr.HasField("sparse_tensor"):
            yield attr.sparse_tensor.values
            yield attr.sparse_tensor.indices
        if attr.HasField("g"):
            yield from _all_tensors(attr.g)
        for sub in attr.graphs:
            yield from _all_tensors(sub)


def _parts(location: str) -> tuple[str, ...]:
    return PurePosixPath(location.replace("\\", "/")).parts


def _is_absolute(location: str) -> bool:
    return (os.path.isabs(location) or PurePosixPath(location).is_absolute()
            or PureWindowsPath(location).is_absolute() or bool(PureWindowsPath(location).drive))


def _has_symlink(base: Path, location: str) -> bool:
    current = base
    for part in _parts(location):
        current = current / part
        if current.is_symlink():
            return True
    return False


def _check_extent(tensor: TensorProto, info: dict[str, str], file: Path, where: str) -> None:
    try:
        offset = int(info.get("offset", "0"))
        length = int(info["length"]) if "length" in info else None
    except ValueError as exc:
        raise FormatError(f"{where}: offset/length are not integers") from exc
    size = file.stat().st_size
    if offset < 0 or (length is not None and (length < 0 or offset + length > size)):
        raise FormatError(f"{where}: offset {offset} length {length} runs past the file's {size} bytes")
