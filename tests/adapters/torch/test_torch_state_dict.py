"""torch -> safetensors -> torch keeps every bit, every dtype, key order and ties."""

from __future__ import annotations

import json
import struct

import pytest

torch = pytest.importorskip("torch")

from portability.adapters.torch import state_dict as torch_state_dict
from portability.adapters.torch.numpy_bridge import numpy_to_tensor, tensor_to_numpy
from portability.core.conversion import convert

DTYPES = [torch.float32, torch.float16, torch.bfloat16, torch.float64, torch.int8, torch.int16,
          torch.int32, torch.int64, torch.uint8, torch.bool, torch.float8_e4m3fn, torch.float8_e5m2]
# Same-width integer views: comparing them compares raw bits (NaN payloads, -0.0 included).
BITS = {1: torch.uint8, 2: torch.int16, 4: torch.int32, 8: torch.int64}


def sample(dtype: torch.dtype, shape=(4, 6), seed: int = 0) -> torch.Tensor:
    """A tensor of ``dtype`` with varied bits, including specials for floats."""
    g = torch.Generator().manual_seed(seed)
    if dtype == torch.bool:
        return torch.randint(0, 2, shape, generator=g).bool()
    if not dtype.is_floating_point:
        info = torch.iinfo(dtype)
        return torch.randint(info.min, info.max, shape, generator=g, dtype=torch.int64).to(dtype)
    t = (torch.randn(shape, generator=g, dtype=torch.float64) * 50).to(dtype)
    flat = t.view(-1)
    flat[0] = -0.0
    flat[1] = float("nan")
    if dtype != torch.float8_e4m3fn:  # e4m3fn has no infinity
        flat[2] = float("inf")
    return t


def raw_bits(t: torch.Tensor) -> torch.Tensor:
    t = t.contiguous()
    return t.view(BITS[t.element_size()]) if t.dtype != torch.bool else t.view(torch.uint8)


def assert_bitwise(a: torch.Tensor, b: torch.Tensor, name: str) -> None:
    assert b.dtype == a.dtype, name
    assert b.shape == a.shape, name
    assert torch.equal(raw_bits(a), raw_bits(b)), name


def round_trip(tmp_path, state, *, via="safetensors"):
    src = tmp_path / "src.pt"
    torch.save(state, src)
    mid = tmp_path / ("mid.safetensors" if via == "safetensors" else "mid.pt")
    convert(src, mid)
    out = tmp_path / "out.pt"
    convert(mid, out)
    return torch.load(out, weights_only=True)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_numpy_bridge_is_bitwise(dtype):
    t = sample(dtype)
    back = numpy_to_tensor(tensor_to_numpy(t, "t"))
    assert_bitwise(t, back, str(dtype))


def test_every_dtype_round_trips_bitwise_in_order(tmp_path):
    state = {f"layer{i}.{str(dt)[6:]}": sample(dt, seed=i) for i, dt in enumerate(DTYPES)}
    out = round_trip(tmp_path, state)
    assert list(out) == list(state)
    for name, tensor in state.items():
        assert_bitwise(tensor, out[name], name)


def test_key_order_is_kept_even_when_not_sorted(tmp_path):
    names = ["z.weight", "a.bias", "m.0.weight", "b", "y.running_mean"]
    state = {n: torch.full((2,), float(i)) for i, n in enumerate(names)}
    out = round_trip(tmp_path, state)
    assert list(out) == names


def test_non_contiguous_zero_dim_and_empty_tensors(tmp_path):
    base = torch.arange(48, dtype=torch.float32).reshape(6, 8)
    state = {
        "base": base,
        "transposed": base.t(),
        "sliced": base[2:5, 3:7],
        "strided": base[::2, 1::3],
        "expanded": torch.arange(3.0).unsqueeze(0).expand(4, 3),
        "scalar": torch.tensor(3.25, dtype=torch.float64),
        "scalar_int": torch.tensor(7),
        "empty": torch.empty(0, 5, dtype=torch.bfloat16),
        "empty_1d": torch.empty(0, dtype=torch.int32),
    }
    assert not state["transposed"].is_contiguous() and state["sliced"].storage_offset() > 0
    out = round_trip(tmp_path, state)
    assert list(out) == list(state)
    for name, tensor in state.items():
        assert out[name].shape == tensor.shape, name
        assert out[name].dtype == tensor.dtype, name
        assert torch.equal(out[name], tensor), name


def test_torch_to_torch_direct_is_bitwise(tmp_path):
    state = {str(dt): sample(dt) for dt in DTYPES}
    out = round_trip(tmp_path, state, via="torch")
    for name, tensor in state.items():
        assert_bitwise(tensor, out[name], name)


def gpt2_like_state() -> dict:
    wte = torch.randn(50, 8)
    return {"transformer.wte.weight": wte, "transformer.wpe.weight": torch.randn(16, 8),
            "transformer.ln_f.weight": torch.ones(8), "lm_head.weight": wte}


def safetensors_header(path) -> dict:
    raw = path.read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    return json.loads(raw[8 : 8 + n])


def test_tied_weights_stored_once_and_retied(tmp_path):
    state = gpt2_like_state()
    torch.save(state, tmp_path / "gpt2.pt")
    convert(tmp_path / "gpt2.pt", tmp_path / "gpt2.safetensors")
    header = safetensors_header(tmp_path / "gpt2.safetensors")
    tensor_names = [k for k in header if k != "__metadata__"]
    assert "transformer.wte.weight" in tensor_names
    assert "lm_head.weight" not in tensor_names
    aliases = json.loads(header["__metadata__"]["portability.aliases"])
    assert aliases == {"lm_head.weight": "transformer.wte.weight"}

    convert(tmp_path / "gpt2.safetensors", tmp_path / "back.pt")
    out = torch.load(tmp_path / "back.pt", weights_only=True)
    assert list(out) == list(state)
    assert out["lm_head.weight"].data_ptr() == out["transformer.wte.weight"].data_ptr()
    assert torch.equal(out["lm_head.weight"], state["transformer.wte.weight"])


class TiedLM(torch.nn.Module):
    """A tiny GPT-2-shaped model whose output head shares the embedding."""

    def __init__(self):
        super().__init__()
        self.transformer = torch.nn.Module()
        self.transformer.wte = torch.nn.Embedding(50, 8)
        self.transformer.ln_f = torch.nn.LayerNorm(8)
        self.lm_head = torch.nn.Linear(8, 50, bias=False)
        self.lm_head.weight = self.transformer.wte.weight

    def forward(self, ids):
        return self.lm_head(self.transformer.ln_f(self.transformer.wte(ids)))


def test_tied_state_dict_loads_into_a_tied_model(tmp_path):
    torch.manual_seed(0)
    model = TiedLM()
    torch.save(model.state_dict(), tmp_path / "m.pt")
    convert(tmp_path / "m.pt", tmp_path / "m.safetensors")
    convert(tmp_path / "m.safetensors", tmp_path / "m2.pt")
    fresh = TiedLM()
    fresh.load_state_dict(torch.load(tmp_path / "m2.pt", weights_only=True))
    assert fresh.lm_head.weight is fresh.transformer.wte.weight
    ids = torch.tensor([[1, 2, 3]])
    assert torch.equal(fresh(ids), model(ids))


def test_views_of_one_storage_that_differ_are_not_tied(tmp_path):
    base = torch.arange(12.0).reshape(3, 4)
    state = {"w": base, "w_t": base.t(), "row": base[1]}
    ckpt = torch_state_dict.checkpoint_from_object(state)
    assert ckpt.aliases == {}
    out = round_trip(tmp_path, state)
    for name, tensor in state.items():
        assert torch.equal(out[name], tensor), name


def test_written_torch_file_loads_with_plain_torch_and_records_checksums(tmp_path):
    state = gpt2_like_state()
    torch.save(state, tmp_path / "a.pt")
    convert(tmp_path / "a.pt", tmp_path / "b.pt")
    plain = torch.load(tmp_path / "b.pt", weights_only=True)
    assert list(plain) == list(state)
    ckpt = torch_state_dict.read(tmp_path / "b.pt")
    assert ckpt.checksummed
    assert ckpt.aliases == {"lm_head.weight": "transformer.wte.weight"}
    assert not torch_state_dict.read(tmp_path / "a.pt").checksummed


def hf_torch_shards(folder) -> dict:
    """Write a state_dict the way transformers shards ``pytorch_model.bin``."""
    folder.mkdir()
    state = {f"h.{i}.weight": torch.full((4, 4), float(i)) for i in range(4)}
    names = list(state)
    shards = {"pytorch_model-00001-of-00002.bin": names[:2], "pytorch_model-00002-of-00002.bin": names[2:]}
    for shard, keys in shards.items():
        torch.save({k: state[k] for k in keys}, folder / shard)
    weight_map = {k: shard for shard, keys in shards.items() for k in keys}
    (folder / "pytorch_model.bin.index.json").write_text(json.dumps({"metadata": {}, "weight_map": weight_map}))
    return state


@pytest.mark.parametrize("target", ["dir", "index"])
def test_hugging_face_sharded_torch_checkpoint(tmp_path, target):
    state = hf_torch_shards(tmp_path / "hf")
    src = tmp_path / "hf" if target == "dir" else tmp_path / "hf" / "pytorch_model.bin.index.json"
    convert(src, tmp_path / "merged.safetensors")
    convert(tmp_path / "merged.safetensors", tmp_path / "merged.pt")
    out = torch.load(tmp_path / "merged.pt", weights_only=True)
    assert list(out) == list(state)
    for name, tensor in state.items():
        assert torch.equal(out[name], tensor), name


def test_torch_directory_errors_name_the_problem(tmp_path):
    from portability.errors import FormatError

    hf_torch_shards(tmp_path / "hf")
    (tmp_path / "hf" / "pytorch_model-00002-of-00002.bin").unlink()
    with pytest.raises(FormatError, match=r"'pytorch_model-00002-of-00002.bin', which is missing"):
        torch_state_dict.read(tmp_path / "hf")
    (tmp_path / "two").mkdir()
    for name in ("a.pt", "b.pt"):
        torch.save({"w": torch.ones(1)}, tmp_path / "two" / name)
    with pytest.raises(FormatError, match=r"expected one torch checkpoint file \(found: a.pt, b.pt\)"):
        torch_state_dict.read(tmp_path / "two")
    (tmp_path / "two" / "b.pt").unlink()
    assert list(torch_state_dict.read(tmp_path / "two").tensors) == ["w"]
