"""A small transformers BERT and GPT-2 built from config convert both ways through the CLI."""

import json

import numpy as np
import onnx
import onnx_cases
import pytest

from portability.adapters import onnx as onnx_adapter
from portability.adapters.onnx import name_map, originals
from portability.adapters.safetensors.format import read as read_safetensors
from portability.adapters.torch.model_inputs import example_inputs
from portability.adapters.torch.models import build_model, run_model
from portability.cli import main
from portability.core.tensors import as_array


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["bert", "gpt2"])
def test_hf_model_converts_to_onnx_and_back_bitwise(kind, tmp_path):
    directory = onnx_cases.hf_dir(kind)
    onnx_path = onnx_cases.hf_converted(kind)
    back = tmp_path / "back.safetensors"
    assert main(["convert", str(onnx_path), str(back)]) == 0
    source = read_safetensors(directory / "model.safetensors")
    result = read_safetensors(back)
    assert list(result.tensors) == list(source.tensors)
    for name in source.tensors:
        assert onnx_cases.same_bits(as_array(result.tensors[name]), as_array(source.tensors[name])), name


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["bert", "gpt2"])
def test_hf_onnx_matches_torch_with_dynamic_batch_and_sequence(kind):
    directory = onnx_cases.hf_dir(kind)
    onnx_path = onnx_cases.hf_converted(kind)
    graph = onnx.load(str(onnx_path)).graph
    assert [o.name for o in graph.output] == ["logits"]
    expected_inputs = ["input_ids", "attention_mask"] + (["token_type_ids"] if kind == "bert" else [])
    assert [i.name for i in graph.input] == expected_inputs
    dims = [[d.dim_param for d in i.type.tensor_type.shape.dim] for i in graph.input]
    assert all(d == ["batch", "sequence"] for d in dims)
    model = build_model(f"hf:{directory}")
    feed = example_inputs(f"hf:{directory}", model)
    for batch, seq in ((2, 8), (3, 13)):
        rng = np.random.default_rng(batch)
        sized = {k: (rng.integers(0, model.config.vocab_size, (batch, seq)) if k == "input_ids"
                     else np.ones((batch, seq), np.int64) if k == "attention_mask"
                     else np.zeros((batch, seq), np.int64)) for k in feed}
        with onnx_adapter.runner(onnx_path) as runner:
            got = runner.infer(sized)["logits"]
        want = run_model(model, sized)["logits"]
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-5)


@pytest.mark.slow
def test_bert_weights_keep_their_names_in_the_export():
    # Unoptimized, the exporter leaves each Linear weight under its own name with a
    # Transpose node (the optimizer would fold it into a ``val_N`` copy).
    proto = onnx.load(str(onnx_cases.hf_converted("bert")))
    props = {p.key: p.value for p in proto.metadata_props}
    mapping = json.loads(props[name_map.KEY_NAME_MAP])
    names = {t.name for t in proto.graph.initializer}
    assert "bert.encoder.layer.0.attention.self.query.weight" in names
    assert all(entry["transform"] == "identity" for entry in mapping.values())
    assert {entry["initializer"] for entry in mapping.values()} <= names | set(originals.read_originals(proto))
