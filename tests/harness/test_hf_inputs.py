"""`compare` on an ``hf:DIR`` model needs no --inputs: it uses the export's example inputs."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
pytest.importorskip("onnxruntime")

from portability import api
from portability.core.conversion import convert


@pytest.mark.slow
def test_compare_hf_model_without_inputs_runs_synthesized_ids(tmp_path):
    torch.manual_seed(0)
    config = transformers.BertConfig(vocab_size=64, hidden_size=16, num_hidden_layers=1,
                                     num_attention_heads=2, intermediate_size=32, max_position_embeddings=32)
    transformers.BertForSequenceClassification(config).save_pretrained(tmp_path / "bert")
    spec = f"hf:{tmp_path / 'bert'}"
    convert(tmp_path / "bert" / "model.safetensors", tmp_path / "bert.onnx", model=spec)

    report = api.compare(tmp_path / "bert" / "model.safetensors", tmp_path / "bert.onnx", model=spec, workers=0)

    (route,) = report.routes
    assert route.status == "pass", route.reason
    assert len(route.fallbacks) == 1 and "has no tokenizer" in route.fallbacks[0]  # said, not silent
    (logits,) = route.outputs
    assert logits.shape[0] == 2 and 0 < logits.max_abs < 1e-5


def test_a_directory_without_a_tokenizer_is_a_recorded_fallback_and_strict_fails_it(tmp_path):
    import onnx_toys

    from portability.reports.schema import validate

    directory = onnx_toys.save_tiny_bert(tmp_path / "bert")
    report = api.check(directory, routes="safetensors->torch", workers=0)
    (route,) = report.routes
    assert route.status == "pass", route.reason
    assert route.fallbacks == [f"model hf:{directory}: {directory} has no tokenizer (none of tokenizer.json, "
                               "vocab.txt, vocab.json, tokenizer_config.json): the example inputs are token ids "
                               "synthesized from its config, not text (pass --inputs FILE.npz)"]
    assert f"fallback: {route.fallbacks[0]}" in route.notes
    data = report.to_dict()
    validate(data)
    assert data["routes"][0]["fallbacks"] == route.fallbacks

    strict = api.check(directory, routes="safetensors->torch", workers=0, strict=True)
    (route,) = strict.routes
    assert route.status == "fail" and not strict
    assert route.reason == f"strict: fell back ({route.fallbacks[0]})"
