"""``check DIR`` on a Hugging Face directory implies ``--model hf:DIR``, and a legacy
``position_ids`` buffer in its weights is a note, not a failure."""

from __future__ import annotations

import pytest

from portability import api

transformers = pytest.importorskip("transformers")
torch = pytest.importorskip("torch")


def tiny_bert(directory, safe: bool = True) -> None:
    """A tiny BERT directory; ``safe=False`` keeps the weights as ``pytorch_model.bin``."""
    config = transformers.BertConfig(vocab_size=64, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                                     intermediate_size=32, max_position_embeddings=32)
    torch.manual_seed(0)
    model = transformers.BertModel(config)
    model.save_pretrained(directory)
    if not safe:
        (directory / "model.safetensors").unlink()
        torch.save(model.state_dict(), directory / "pytorch_model.bin")


@pytest.mark.parametrize("safe, weights", [(True, "model.safetensors"), (False, "pytorch_model.bin")])
def test_directory_implies_its_model(tmp_path, safe, weights):
    tiny_bert(tmp_path / "bert", safe)
    assert (tmp_path / "bert" / weights).is_file()
    plan = api.plan(tmp_path / "bert")
    assert {job.subject.model for job in plan.jobs} == {f"hf:{tmp_path / 'bert'}"}
    assert api.plan(tmp_path / "bert", model="hf:" + str(tmp_path / "bert")).jobs[0].subject.model.startswith("hf:")


def test_a_directory_without_config_implies_nothing(tmp_path):
    tiny_bert(tmp_path / "bert")
    (tmp_path / "bert" / "config.json").unlink()
    assert api.plan(tmp_path / "bert").jobs[0].subject.model is None


@pytest.mark.slow
def test_legacy_position_ids_pass_with_a_note(tmp_path):
    from safetensors.torch import load_file, save_file

    tiny_bert(tmp_path / "bert")
    path = tmp_path / "bert" / "model.safetensors"
    state = load_file(path)
    state["embeddings.position_ids"] = torch.arange(32).unsqueeze(0)  # as transformers < 4.31 saved it
    save_file(state, path, metadata={"format": "pt"})
    report = api.check(tmp_path / "bert", routes="safetensors->torch,safetensors->torch->safetensors", workers=0)
    for route in report.routes:
        assert route.status == "pass", route.reason
        assert route.weights.bitwise_equal == len(state)
        assert any("position_ids" in note and note.startswith("reference: ignored 1") for note in route.notes)
