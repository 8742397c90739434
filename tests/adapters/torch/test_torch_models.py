"""Building models from specs, loading checkpoints, and finding their inputs."""

import numpy as np
import onnx_toys
import pytest
import torch

from portability.adapters.torch.model_inputs import example_inputs
from portability.adapters.torch.models import (
    bind_inputs,
    build_model,
    load_weights,
    model_state,
    named_outputs,
    run_model,
)
from portability.adapters.torch.runner import TorchRunner
from portability.adapters.torch.state_dict import checkpoint_from_object
from portability.core import fallbacks
from portability.core.tensors import as_array
from portability.errors import FormatError, UsageError


def test_factory_spec_builds_the_module_with_checkpoint_weights():
    source = onnx_toys.make_mlp()
    with torch.no_grad():
        source.fc1.weight.add_(1.0)
    ckpt = checkpoint_from_object(source.state_dict())
    model = build_model("onnx_toys:make_mlp", ckpt)
    assert not model.training
    for name, value in model_state(model).items():
        assert value.tobytes() == ckpt.tensors[name].tobytes(), name


def test_factory_errors_name_the_problem():
    with pytest.raises(UsageError, match="cannot import no_such_module"):
        build_model("no_such_module:make")
    with pytest.raises(UsageError, match="has no function 'missing'"):
        build_model("onnx_toys:missing")
    with pytest.raises(UsageError, match="not a torch.nn.Module"):
        build_model("onnx_toys:make_not_a_module")


def test_load_weights_lists_unexpected_missing_and_wrong_shapes():
    state = {k: v.clone() for k, v in onnx_toys.make_mlp().state_dict().items()}
    extra = checkpoint_from_object({**state, "stray.weight": torch.zeros(2)})
    with pytest.raises(FormatError, match="unexpected names: stray.weight"):
        load_weights(onnx_toys.make_mlp(), extra, "toy")
    state.pop("fc2.bias")
    with pytest.raises(FormatError, match=r"missing 1 tensors \(fc2.bias\)"):
        load_weights(onnx_toys.make_mlp(), checkpoint_from_object(state), "toy")
    state["fc2.bias"] = torch.zeros(7)
    with pytest.raises(FormatError, match=r"shape mismatch: fc2.bias \(7,\) vs model \(4,\)"):
        load_weights(onnx_toys.make_mlp(), checkpoint_from_object(state), "toy")


def test_fp16_checkpoint_gives_fp16_model():
    half = checkpoint_from_object(onnx_toys.make_mlp().half().state_dict())
    model = build_model("onnx_toys:make_mlp", half)
    assert {p.dtype for p in model.parameters()} == {torch.float16}


def test_tied_weights_may_be_absent_from_the_checkpoint(tmp_path):
    directory = onnx_toys.save_tiny_gpt2(tmp_path / "gpt2")
    from portability.adapters.safetensors.format import read

    ckpt = read(directory / "model.safetensors")
    assert "lm_head.weight" not in ckpt.tensors
    model = build_model(f"hf:{directory}", ckpt)
    assert model.lm_head.weight.data_ptr() == model.transformer.wte.weight.data_ptr()
    wte = as_array(ckpt.tensors["transformer.wte.weight"])
    assert model.lm_head.weight.detach().numpy().tobytes() == wte.tobytes()


def test_inputs_synthesized_from_hf_config(tmp_path):
    directory = onnx_toys.save_tiny_bert(tmp_path / "bert")
    model = build_model(f"hf:{directory}")
    with fallbacks.collect() as found:
        feed = example_inputs(f"hf:{directory}", model)
    # A directory without a tokenizer is a legitimate fallback, and it is recorded.
    assert found == [f"model hf:{directory}: {directory} has no tokenizer (none of tokenizer.json, vocab.txt, "
                     "vocab.json, tokenizer_config.json): the example inputs are token ids synthesized from its "
                     "config, not text (pass --inputs FILE.npz)"]
    assert list(feed) == ["input_ids", "attention_mask", "token_type_ids"]
    ids = feed["input_ids"]
    assert ids.dtype == np.int64 and ids.shape == (2, 8)
    assert ids.min() >= 0 and ids.max() < model.config.vocab_size
    assert feed["attention_mask"][1, -2:].tolist() == [0, 0] and feed["attention_mask"][0].all()
    assert not feed["token_type_ids"].any()
    logits = run_model(model, feed)["logits"]
    assert logits.shape == (2, 3)


def test_tokenizer_in_directory_is_used(tmp_path):
    directory = onnx_toys.save_tiny_bert(tmp_path / "bert")
    words = onnx_toys.write_bert_vocab(directory)
    from transformers import BertTokenizer

    BertTokenizer(str(directory / "vocab.txt")).save_pretrained(directory)
    model = build_model(f"hf:{directory}")
    feed = example_inputs(f"hf:{directory}", model)
    ids = feed["input_ids"]
    assert ids[0, 0] == words.index("[CLS]") and words.index("survive") in ids[0].tolist()
    assert feed["attention_mask"].sum() == (ids != words.index("[PAD]")).sum()


@pytest.mark.parametrize("damage", ["not json", "truncated"])
def test_a_tokenizer_that_cannot_load_is_an_error_not_random_ids(tmp_path, damage):
    directory = onnx_toys.save_tiny_bert(tmp_path / "bert")
    onnx_toys.write_bert_vocab(directory)
    from transformers import BertTokenizerFast

    BertTokenizerFast(str(directory / "vocab.txt")).save_pretrained(directory)
    tokenizer_json = directory / "tokenizer.json"
    text = tokenizer_json.read_text()
    tokenizer_json.write_text("{not json" if damage == "not json" else text[: len(text) // 2])
    model = build_model(f"hf:{directory}")
    with fallbacks.collect() as found, pytest.raises(FormatError) as info:
        example_inputs(f"hf:{directory}", model)
    assert str(info.value).startswith(f"{directory}: its tokenizer (tokenizer.json, vocab.txt, "
                                      "tokenizer_config.json) cannot be loaded (")
    assert str(info.value).endswith("repair it or pass --inputs FILE.npz")
    assert info.value.__cause__ is not None and found == []


def test_npz_inputs_and_their_errors(tmp_path):
    model = onnx_toys.make_mlp()
    path = tmp_path / "inputs.npz"
    np.savez(path, **onnx_toys.mlp_inputs(batch=3))
    feed = example_inputs("onnx_toys:make_mlp", model, path)
    assert feed["x"].shape == (3, 5, 8)
    with pytest.raises(UsageError, match="cannot make example inputs.*--inputs FILE.npz with arrays named x"):
        example_inputs("onnx_toys:make_mlp", model)
    with pytest.raises(UsageError, match="cannot read inputs"):
        example_inputs("onnx_toys:make_mlp", model, tmp_path / "missing.npz")


def test_bind_inputs_by_name_then_position():
    model = onnx_toys.make_mlp()
    assert bind_inputs(model, {"x": None}) == {"x": "x"}
    assert bind_inputs(model, {"input": None}) == {"x": "input"}
    with pytest.raises(UsageError, match="inputs y are not parameters.*\\(x\\)"):
        bind_inputs(model, {"x": None, "y": None})


def test_named_outputs():
    t = torch.zeros(1)
    assert list(named_outputs(t)) == ["output"]
    assert list(named_outputs((t, t))) == ["output_0", "output_1"]
    assert list(named_outputs({"logits": t, "loss": None})) == ["logits"]
    assert list(named_outputs((t,), ["probs"])) == ["probs"]
    with pytest.raises(FormatError, match="past_key_values are not tensors"):
        named_outputs({"logits": t, "past_key_values": [(t, t)]})


def test_torch_runner_matches_direct_call():
    ckpt = checkpoint_from_object(onnx_toys.make_cnn().state_dict())
    feed = onnx_toys.cnn_inputs()
    with TorchRunner("onnx_toys:make_cnn", ckpt) as runner:
        out = runner.infer(feed)
    expected = onnx_toys.make_cnn()(torch.from_numpy(feed["image"])).detach().numpy()
    assert out["output"].tobytes() == expected.tobytes()
