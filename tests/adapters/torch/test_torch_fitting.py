"""Checkpoints fitted to models the way transformers does, with notes; the rest fails by name."""

from __future__ import annotations

import fitting_models
import numpy as np
import pytest
import torch

from portability import api
from portability.adapters.torch import models as torch_models
from portability.adapters.torch import state_dict as torch_state_dict
from portability.core.checkpoint import Checkpoint
from portability.errors import FormatError


def ckpt_of(state: dict) -> Checkpoint:
    return torch_state_dict.checkpoint_from_object(state)


def outputs(model, **feed):
    with torch.no_grad():
        return model(**{k: torch.from_numpy(v) for k, v in feed.items()})


def test_legacy_position_ids_buffer_is_ignored_with_a_note():
    state = dict(fitting_models.positional().state_dict())
    assert "position_ids" not in state  # the model does not save it ...
    state["position_ids"] = torch.arange(16).unsqueeze(0)  # ... older versions did
    model, fit = torch_models.build_fitted_model("fitting_models:positional", ckpt_of(state))
    assert fit.notes == ["ignored 1 checkpoint tensors the model declares ignorable (legacy or "
                         "non-persistent buffers it computes itself): position_ids"]
    feed = fitting_models.seq_inputs()
    torch.testing.assert_close(outputs(model, **feed), outputs(fitting_models.positional(), **feed))


def test_transformers_bert_checkpoint_with_position_ids(tmp_path):
    transformers = pytest.importorskip("transformers")
    config = transformers.BertConfig(vocab_size=64, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                                     intermediate_size=32, max_position_embeddings=32)
    torch.manual_seed(0)
    transformers.BertModel(config).save_pretrained(tmp_path / "bert")
    from safetensors.torch import load_file, save_file

    state = load_file(tmp_path / "bert" / "model.safetensors")
    assert "embeddings.position_ids" not in state
    state["embeddings.position_ids"] = torch.arange(32).unsqueeze(0)
    save_file(state, tmp_path / "bert" / "model.safetensors", metadata={"format": "pt"})
    from portability.adapters.safetensors import format as safetensors_format

    ckpt = safetensors_format.read(tmp_path / "bert" / "model.safetensors")
    model, fit = torch_models.build_fitted_model(f"hf:{tmp_path / 'bert'}", ckpt)
    assert any("embeddings.position_ids" in note for note in fit.notes)
    assert "embeddings.position_ids" in ckpt.tensors  # the stored names stay as they were


def test_tied_lm_head_is_re_tied(tmp_path):
    transformers = pytest.importorskip("transformers")
    config = transformers.GPT2Config(vocab_size=50, n_positions=16, n_embd=16, n_layer=1, n_head=2)
    torch.manual_seed(0)
    transformers.GPT2LMHeadModel(config).save_pretrained(tmp_path / "gpt2")
    reference = transformers.GPT2LMHeadModel.from_pretrained(tmp_path / "gpt2").eval()
    state = {k: v for k, v in reference.state_dict().items() if k != "lm_head.weight"}
    model, fit = torch_models.build_fitted_model(f"hf:{tmp_path / 'gpt2'}", ckpt_of(state))
    assert "re-tied lm_head.weight to transformer.wte.weight" in fit.notes
    ids = torch.arange(6).unsqueeze(0)
    with torch.no_grad():
        torch.testing.assert_close(model(input_ids=ids).logits, reference(input_ids=ids).logits)


@pytest.mark.parametrize("prefix, wrapper", [("module.", "DistributedDataParallel"),
                                             ("_orig_mod.", "torch.compile"),
                                             ("_orig_mod.module.", None)])
def test_wrapper_prefixes_are_stripped_with_a_note(prefix, wrapper):
    own = fitting_models.generator().state_dict()
    ckpt = ckpt_of({prefix + k: v for k, v in own.items()})
    model, fit = torch_models.build_fitted_model("fitting_models:generator", ckpt)
    if wrapper:
        assert fit.notes == [f"stripped the {wrapper} prefix {prefix!r} from every checkpoint name "
                             "(the file keeps its names)"]
    else:
        assert [n.split("'")[1] for n in fit.notes] == ["_orig_mod.", "module."]
    assert all(name.startswith(prefix) for name in ckpt.tensors)
    for name, value in model.state_dict().items():
        assert torch.equal(value, own[name])


def test_torch_compile_model_state_dict_really_has_the_prefix():
    compiled = torch.compile(fitting_models.generator())
    assert all(k.startswith("_orig_mod.") for k in compiled.state_dict())


def test_declared_ignorable_names_pass():
    state = dict(fitting_models.declares().state_dict())
    state["teacher.fc.weight"] = torch.ones(3, 4)
    _, fit = torch_models.build_fitted_model("fitting_models:declares", ckpt_of(state))
    assert "teacher.fc.weight" in fit.notes[0]


def test_everything_else_fails_naming_the_tensors():
    state = dict(fitting_models.generator().state_dict())
    state["extra.weight"] = torch.ones(2)
    with pytest.raises(FormatError, match=r"does not fit model fitting_models:generator: unexpected names: "
                                          r"extra\.weight$"):
        torch_models.build_model("fitting_models:generator", ckpt_of(state))
    del state["extra.weight"], state["2.bias"]
    with pytest.raises(FormatError, match=r"missing 1 tensors \(2\.bias\)"):
        torch_models.build_model("fitting_models:generator", ckpt_of(state))
    state["2.bias"] = torch.ones(5)
    with pytest.raises(FormatError, match=r"shape mismatch: 2\.bias \(5,\) vs model \(4,\)"):
        torch_models.build_model("fitting_models:generator", ckpt_of(state))
    # stripping a prefix makes nothing else pass
    with pytest.raises(FormatError, match=r"missing 3 tensors \(0\.weight, 2\.weight, 2\.bias\)"):
        torch_models.build_model("fitting_models:generator", ckpt_of({"module.0.bias": torch.ones(6)}))


def test_check_picks_the_candidate_the_model_fits(tmp_path):
    """A GAN checkpoint: the discriminator is larger (the default), the spec builds the generator."""
    gen, disc = fitting_models.generator(), fitting_models.discriminator()
    torch.save({"generator": gen.state_dict(), "discriminator": disc.state_dict(), "epoch": 5}, tmp_path / "gan.pt")
    assert torch_state_dict.read(tmp_path / "gan.pt").layout == 'nested {"weights":["discriminator"]}'
    np.savez(tmp_path / "x.npz", **fitting_models.vec_inputs())
    report = api.check(tmp_path / "gan.pt", model="fitting_models:generator", inputs=tmp_path / "x.npz",
                       routes="torch->safetensors,torch->safetensors->torch", workers=0)
    for route in report.routes:
        assert route.status == "pass", route.reason
        assert route.weights.compared == 4 and route.weights.bitwise_equal == 4
        assert route.notes[0] == ("reference: weights taken from 'generator', the candidate that fits the "
                                  "model (the checkpoint's default 'discriminator' does not)")
