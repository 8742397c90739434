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
    (logits,) = route.outputs
    assert logits.shape[0] == 2 and 0 < logits.max_abs < 1e-5
