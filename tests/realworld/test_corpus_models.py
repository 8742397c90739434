"""The corpus factories load the real checkpoints strictly and compute sane outputs.

Each torch-family entry of :mod:`corpus` is fetched (skipped without network),
read with ``torch.load(weights_only=True, map_location="cpu")`` (or safetensors),
loaded into its factory with ``strict=True`` and run on the factory's seeded
batch. Where a reference can be had with what the suite already installs, the
output is compared with it: transformers' BertModel for MiniLM, the package's
own TorchScript model for Silero VAD, and known answers (the pitch of a sine)
for CREPE.
"""

from __future__ import annotations

import collections
import importlib

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from . import corpus, graph_inputs

pytestmark = pytest.mark.realworld

TORCH_ENTRIES = [e for e in corpus.ENTRIES if e.is_torch]
_LARGE = 50_000_000


def _param(entry: corpus.Entry):
    marks = [pytest.mark.slow] if entry.size > _LARGE else []
    return pytest.param(entry, id=entry.name, marks=marks)


def _fetch(entry: corpus.Entry):
    try:
        return corpus.fetch(entry)
    except corpus.FetchError as exc:
        pytest.skip(str(exc))


def _factory(entry: corpus.Entry):
    """The factory module and function; imported relative to this package so that
    the test does not depend on the repository root being on ``sys.path``."""
    module_name, _, name = entry.factory.partition(":")
    relative = module_name.removeprefix("tests.realworld")
    module = importlib.import_module(relative, __package__)
    return module, name


def _load(entry: corpus.Entry, path):
    if entry.format == "safetensors":
        from safetensors.torch import load_file
        return load_file(str(path))
    return corpus.state_dict_of(entry, torch.load(path, map_location="cpu", weights_only=True))


def _build(entry: corpus.Entry):
    path = _fetch(entry)
    module, name = _factory(entry)
    model = getattr(module, name)()
    state = _load(entry, path)
    model.load_state_dict(state, strict=True)
    batch = {k: torch.from_numpy(v) for k, v in module.inputs(name).items()}
    with torch.no_grad():
        out = model(**batch)
    return model, state, batch, out if isinstance(out, tuple) else (out,)


@pytest.mark.parametrize("entry", [_param(e) for e in TORCH_ENTRIES])
def test_loads_strictly_and_runs(entry):
    model, state, batch, outs = _build(entry)
    assert not model.training
    assert len(state) == entry.tensors
    for out in outs:
        assert torch.isfinite(out).all(), f"{entry.name}: non-finite output"


@pytest.mark.parametrize("entry", [_param(e) for e in TORCH_ENTRIES])
def test_inputs_are_fixed_and_named_after_forward(entry, tmp_path):
    import inspect
    module, name = _factory(entry)
    first = module.write_inputs(tmp_path / "batch.npz", name)
    with np.load(first) as saved:
        again = module.inputs(name)
        assert sorted(saved.files) == sorted(again)
        for key in again:
            np.testing.assert_array_equal(saved[key], again[key])
    forward = inspect.signature(getattr(module, name)().forward).parameters
    assert set(again) <= set(forward)


def test_file_facts():
    """What makes the corpus worth having: a GPU pickle, optimizer state, legacy files."""
    entry = corpus.BY_NAME["resemblyzer-lstm"]
    path = _fetch(entry)
    with open(path, "rb") as f:
        assert f.read(2) != b"PK"  # the pre-1.6 (non-zip) serialization
    locations = collections.Counter()

    def where(storage, location):
        locations[location] += 1
        return storage

    ckpt = torch.load(path, map_location=where, weights_only=True)
    assert set(ckpt) == {"step", "model_state", "optimizer_state"}
    assert locations["cuda:0"] > 0
    opt = ckpt["optimizer_state"]
    assert len(opt["state"]) == 16
    assert set(next(iter(opt["state"].values()))) == {"exp_avg", "exp_avg_sq", "step"}
    # parameters are keyed by Python object ids, as torch < 0.4 saved them
    assert all(k > 1_000_000 for k in opt["state"])
    # cuDNN's flattened LSTM weights: the 12 LSTM tensors are views of one storage
    lstm = [v for k, v in ckpt["model_state"].items() if k.startswith("lstm.")]
    assert len(lstm) == 12 and len({v.untyped_storage().data_ptr() for v in lstm}) == 1
    assert len({v.storage_offset() for v in lstm}) == 12


def test_unsafe_pickle_is_refused_under_weights_only():
    entry = corpus.BY_NAME["pesto-mir1k-g7"]
    path = _fetch(entry)
    with pytest.raises(Exception, match="omegaconf"):
        torch.load(path, map_location="cpu", weights_only=True)


def test_mtcnn_probabilities():
    for name in ("mtcnn-pnet", "mtcnn-rnet", "mtcnn-onet"):
        _, _, _, outs = _build(corpus.BY_NAME[name])
        prob = outs[-1]
        torch.testing.assert_close(prob.sum(dim=1), torch.ones_like(prob.sum(dim=1)))


@pytest.mark.parametrize("entry", [_param(corpus.BY_NAME[n]) for n in ("crepe-tiny", "crepe-full")])
def test_crepe_finds_the_pitch_of_a_sine(entry):
    module, _ = _factory(entry)
    _, _, _, (activation,) = _build(entry)
    found = module.bin_to_hz(activation.argmax(dim=1))
    for hz, expected in zip(found.tolist(), module.TEST_HZ, strict=True):
        assert abs(1200 * np.log2(hz / expected)) < 25  # within about one 20-cent bin


def test_pesto_activations_are_a_distribution():
    _, state, _, (activation,) = _build(corpus.BY_NAME["pesto-mir1k"])
    assert activation.shape[-1] == 384
    torch.testing.assert_close(activation.sum(dim=-1), torch.ones(activation.shape[0]))
    assert state["shift"].ndim == 0


def test_resemblyzer_embeddings_are_non_negative_unit_vectors():
    _, _, _, (embed,) = _build(corpus.BY_NAME["resemblyzer-lstm"])
    assert (embed >= 0).all()
    torch.testing.assert_close(embed.norm(dim=1), torch.ones(embed.shape[0]))


def test_silero_architecture_matches_the_packages_torchscript_model():
    """The factory, given the TorchScript model's own weights, reproduces its output.

    The safetensors file in the same wheel holds different weights (only the STFT
    basis is equal), so the comparison uses the TorchScript weights.
    """
    entry = corpus.BY_NAME["silero-vad-safetensors"]
    _fetch(entry)
    jit = torch.jit.load(str(_fetch(corpus.BY_NAME["silero-vad-jit"])), map_location="cpu")
    own = jit.state_dict()
    names = {"stft_conv.weight": "_model.stft.forward_basis_buffer",
             "final_conv.weight": "_model.decoder.decoder.2.weight",
             "final_conv.bias": "_model.decoder.decoder.2.bias"}
    for i in range(4):
        for kind in ("weight", "bias"):
            names[f"conv{i + 1}.{kind}"] = f"_model.encoder.{i}.reparam_conv.{kind}"
    for kind in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
        names[f"lstm_cell.{kind}"] = f"_model.decoder.rnn.{kind}"
    module, name = _factory(entry)
    model = getattr(module, name)()
    model.load_state_dict({k: own[v] for k, v in names.items()}, strict=True)
    batch = module.inputs(name)
    with torch.no_grad():
        prob, _ = model(torch.from_numpy(batch["input"]), torch.from_numpy(batch["state"]))
        for row in range(batch["input"].shape[0]):
            jit.reset_states()
            # the TorchScript wrapper keeps the 64-sample context itself: give it the chunk
            expected = jit(torch.from_numpy(batch["input"][row:row + 1, module.CONTEXT:]), 16000)
            torch.testing.assert_close(prob[row:row + 1], expected, rtol=1e-4, atol=1e-5)


@pytest.mark.slow
def test_minilm_matches_transformers():
    transformers = pytest.importorskip("transformers")
    entry = corpus.BY_NAME["minilm-l6"]
    _, _, batch, (hidden, pooled) = _build(entry)
    reference = transformers.BertModel.from_pretrained(str(_fetch(entry).parent),
                                                       attn_implementation="eager").eval()
    with torch.no_grad():
        expected = reference(**batch)
    mask = batch["attention_mask"].bool()
    torch.testing.assert_close(hidden[mask], expected.last_hidden_state[mask], rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(pooled, expected.pooler_output, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("name", graph_inputs.NAMES)
def test_onnx_graphs_run_on_their_batch(name):
    ort = pytest.importorskip("onnxruntime")
    session = ort.InferenceSession(str(_fetch(corpus.BY_NAME[name])), providers=["CPUExecutionProvider"])
    batch = graph_inputs.inputs(name)
    assert sorted(batch) == sorted(i.name for i in session.get_inputs())
    for out in session.run(None, batch):
        assert np.isfinite(out).all()


def test_silero_onnx_exports_agree():
    """The spox graph and the torch 2.3.1 export (opset 15) are the same model."""
    ort = pytest.importorskip("onnxruntime")
    results = []
    for name in ("silero-vad-onnx", "silero-vad-onnx-op15"):
        session = ort.InferenceSession(str(_fetch(corpus.BY_NAME[name])), providers=["CPUExecutionProvider"])
        results.append(session.run(None, graph_inputs.inputs(name)))
    for a, b in zip(*results, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
