"""Protobuf's wire format, just enough to write an ONNX probe model and read the headers
of ONNX files and SavedModels, without onnx, protobuf or TensorFlow.

Like ``runner.py``, this file is copied into deployment environments and imports
nothing but the standard library.
"""

from __future__ import annotations

import os


def _varint(value: int) -> bytes:
    out = bytearray()
    value &= (1 << 64) - 1
    while True:
        byte = value & 0x7F
        value >>= 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def _int(num: int, value: int) -> bytes:
    return _varint(num << 3) + _varint(value)


def _bytes(num: int, data: bytes | str) -> bytes:
    data = data.encode() if isinstance(data, str) else data
    return _varint((num << 3) | 2) + _varint(len(data)) + data


def probe_model(ir_version: int, opset: int) -> bytes:
    """A serialized ONNX model ``y = Identity(x)`` on float[1] at this IR version and opset."""
    tensor_type = _bytes(1, _int(1, 1) + _bytes(2, _bytes(1, _int(1, 1))))  # float, shape [1]

    def value(name: str) -> bytes:
        return _bytes(1, name) + _bytes(2, tensor_type)

    node = _bytes(1, "x") + _bytes(2, "y") + _bytes(3, "probe") + _bytes(4, "Identity")
    graph = _bytes(1, node) + _bytes(2, "probe") + _bytes(11, value("x")) + _bytes(12, value("y"))
    return _int(1, ir_version) + _bytes(2, "portability-probe") + _bytes(7, graph) + \
        _bytes(8, _bytes(1, "") + _int(2, opset))


def read_fields(data: bytes) -> list[tuple[int, int, object]]:
    """Top-level fields of a protobuf message: (number, wire type, int or bytes)."""
    fields, i = [], 0
    while i < len(data):
        key, i = _read_varint(data, i)
        num, wire = key >> 3, key & 7
        if wire == 0:
            value, i = _read_varint(data, i)
        elif wire == 2:
            size, i = _read_varint(data, i)
            if i + size > len(data):
                raise ValueError("truncated protobuf field")
            value, i = data[i:i + size], i + size
        elif wire == 1:
            value, i = data[i:i + 8], i + 8
        elif wire == 5:
            value, i = data[i:i + 4], i + 4
        else:
            raise ValueError(f"unsupported protobuf wire type {wire}")
        fields.append((num, wire, value))
    return fields


def _read_varint(data: bytes, i: int) -> tuple[int, int]:
    shift = result = 0
    while True:
        if i >= len(data):
            raise ValueError("truncated protobuf varint")
        byte = data[i]
        i += 1
        result |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return result, i


def onnx_header(data: bytes) -> dict:
    """``{"ir_version", "opsets": {domain: version}}`` of a serialized ONNX model."""
    ir_version, opsets = None, {}
    for num, _, value in read_fields(data):
        if num == 1:
            ir_version = value
        elif num == 8:
            sub = read_fields(value)  # type: ignore[arg-type]
            domain = next((d.decode() for k, _, d in sub if k == 1), "")  # type: ignore[union-attr]
            opsets[domain or "ai.onnx"] = next((v for k, _, v in sub if k == 2), 1)
    return {"ir_version": ir_version, "opsets": opsets}


def savedmodel_header(path: str) -> dict:
    """``{"tensorflow_version", "ops"}`` of a SavedModel's first meta graph (``saved_model.pb``).

    Raises:
        OSError, ValueError: no readable ``saved_model.pb``.
    """
    with open(os.path.join(path, "saved_model.pb"), "rb") as f:
        data = f.read()
    for num, _, meta_graph in read_fields(data):
        if num != 2:
            continue
        for n, _, info in read_fields(meta_graph):  # type: ignore[arg-type]
            if n != 1:
                continue
            fields = read_fields(info)  # type: ignore[arg-type]
            version = next((v.decode() for k, _, v in fields if k == 5), "")  # type: ignore[union-attr]
            ops = []
            for k, _, op_list in fields:
                if k == 2:
                    ops += [next(v.decode() for kk, _, v in read_fields(op) if kk == 1)  # type: ignore
                            for kk2, _, op in read_fields(op_list) if kk2 == 1]  # type: ignore[arg-type]
            return {"tensorflow_version": version, "ops": sorted(set(ops))}
    return {"tensorflow_version": "", "ops": []}
