"""Tensors handed out by ``portability.load`` are understood by numpy: ``np.asarray`` and
``.numpy()`` read the data (verified) with its dtype and shape, bitwise."""

from __future__ import annotations

import numpy as np
import pytest

import portability
from portability.core.checkpoint import Checkpoint
from portability.core.dtypes import all_dtype_names, numpy_dtype
from portability.core.formats import load_adapter
from portability.core.tensors import LazyTensor
from portability.errors import IntegrityError


def _sample(name: str) -> np.ndarray:
    """Every byte pattern a dtype's first elements can hold (NaNs included), shaped 2-D."""
    dtype = numpy_dtype(name)
    if dtype == np.bool_:
        return np.array([[True, False, True], [False, False, True]])
    raw = np.random.default_rng(len(name)).integers(0, 256, size=6 * dtype.itemsize, dtype=np.uint8)
    return raw.view(dtype).reshape(2, 3)


def _write(fmt: str, tensors: dict[str, np.ndarray], path) -> None:
    load_adapter(fmt).write(Checkpoint(tensors=tensors), path)


# What the readers stream from the file instead of loading (the torch reader hands the
# storages it has no streaming rule for, float8 and unsigned 16-64 bit, to torch.load).
STREAMED = {"safetensors": set(all_dtype_names()),
            "torch": {"F64", "F32", "F16", "BF16", "I64", "I32", "I16", "I8", "U8", "BOOL", "C64"}}


@pytest.mark.parametrize("name", all_dtype_names())
@pytest.mark.parametrize("fmt,suffix", [("safetensors", "model.safetensors"), ("torch", "model.pt")])
def test_asarray_on_a_loaded_tensor_is_the_data_bitwise_for_every_dtype(tmp_path, fmt, suffix, name):
    if fmt == "torch":
        pytest.importorskip("torch")
    want = _sample(name)
    _write(fmt, {"x": want}, tmp_path / suffix)
    tensor = portability.load(tmp_path / suffix).tensors["x"]
    assert isinstance(tensor, LazyTensor) == (name in STREAMED[fmt])
    for got in (np.asarray(tensor), np.array(tensor), tensor.numpy() if isinstance(tensor, LazyTensor) else tensor):
        assert got.dtype == want.dtype and got.shape == want.shape
        assert got.tobytes() == want.tobytes()


def test_asarray_with_a_dtype_casts_and_numpy_gives_a_writable_copy(tmp_path):
    _write("safetensors", {"w": np.arange(6, dtype=np.float32).reshape(2, 3)}, tmp_path / "m.safetensors")
    tensor = portability.load(tmp_path / "m.safetensors").tensors["w"]
    assert isinstance(tensor, LazyTensor) and tensor.ndim == 2
    as_f64 = np.asarray(tensor, dtype=np.float64)
    assert as_f64.dtype == np.float64 and as_f64.tolist() == [[0, 1, 2], [3, 4, 5]]
    first = tensor.numpy()
    first[0, 0] = 99
    assert tensor.numpy()[0, 0] == 0
    assert (np.asarray(tensor) + 1).tolist() == [[1, 2, 3], [4, 5, 6]]


def test_asarray_verifies_the_checksum(tmp_path):
    path = tmp_path / "m.safetensors"
    _write("safetensors", {"w": np.arange(64, dtype=np.float32)}, path)
    tensor = portability.load(path).tensors["w"]
    raw = bytearray(path.read_bytes())
    raw[-4] ^= 0x01  # the last element's low byte
    path.write_bytes(bytes(raw))
    with pytest.raises(IntegrityError, match="'w'"):
        np.asarray(tensor)
