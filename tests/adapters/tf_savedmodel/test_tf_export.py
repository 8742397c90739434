"""PyTorch -> ONNX -> SavedModel export: outputs, bitwise import, trainability, errors.

Every SavedModel is loaded back with plain ``tf.saved_model.load`` and its
``serving_default`` signature is compared with PyTorch (atol 1e-5, fp32) on a
batch and sequence length other than the ones the graph was exported with.
"""

from __future__ import annotations

import json
import types

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")
torch = pytest.importorskip("torch")
pytest.importorskip("onnxscript")
transformers = pytest.importorskip("transformers")

from portability.adapters import tf_savedmodel
from portability.adapters.safetensors.format import write as write_safetensors
from portability.adapters.torch.state_dict import checkpoint_from_object
from portability.core.conversion import convert
from portability.core.formats import WriteOptions
from portability.errors import UnsupportedOpError, UsageError
from portability.fixtures import get_fixture

ATOL = 1e-5
# Fixtures exported through the ONNX adapter (``--model fixture:NAME``).
ADAPTER_FIXTURES = ["mlp", "cnn", "bert-tiny", "gpt2-tiny"]


class _LogitsOnly(torch.nn.Module):
    """A causal LM without its cache output, for a direct torch.onnx export."""

    def __init__(self, lm):
        super().__init__()
        self.lm = lm

    def forward(self, input_ids, attention_mask):
        return self.lm(input_ids=input_ids, attention_mask=attention_mask, use_cache=False).logits


def _export_causal_lm(lm, path, seq=8):
    ids = torch.randint(0, lm.config.vocab_size, (2, seq))
    batch, length = torch.export.Dim("batch"), torch.export.Dim("seq")
    # optimize=False: the optimizer merges equal initializers (a fresh model's LayerNorm
    # weights are all ones), which would leave some variables unread by the graph.
    torch.onnx.export(_LogitsOnly(lm).eval(), (ids, torch.ones_like(ids)), str(path), dynamo=True,
                      optimize=False,
                      input_names=["input_ids", "attention_mask"], output_names=["logits"],
                      dynamic_shapes={"input_ids": {0: batch, 1: length},
                                      "attention_mask": {0: batch, 1: length}})


def _text_feed(vocab, batch=3, seq=11, seed=0):
    rng = np.random.default_rng(seed)
    mask = np.ones((batch, seq), np.int64)
    mask[-1, seq - 4:] = 0
    return {"input_ids": rng.integers(0, vocab, (batch, seq)).astype(np.int64), "attention_mask": mask}


def _serve(path, feed):
    fn = tf.saved_model.load(str(path)).signatures["serving_default"]
    return {k: v.numpy() for k, v in fn(**{k: tf.constant(v) for k, v in feed.items()}).items()}


@pytest.fixture(scope="module")
def exports(tmp_path_factory):
    """name -> (torch model, checkpoint, SavedModel dir, feed, torch outputs); built once."""
    root = tmp_path_factory.mktemp("tf_export")
    cache = {}

    def get(name):
        if name not in cache:
            cache[name] = _build(name, root)
        return cache[name]
    return get


def _build(name, root):
    out = root / name
    if name in ADAPTER_FIXTURES:
        fixture = get_fixture(name)
        model = fixture.build().eval()
        full = fixture.eval_batch()
        feed = {k: v[:3] for k, v in full.items()}
        if name != "mlp" and name != "cnn":
            feed = {k: v[:, :10] for k, v in feed.items()}
        ckpt = checkpoint_from_object(model.state_dict())
        tf_savedmodel.write(ckpt, out, WriteOptions(model=f"fixture:{name}"))
        with torch.no_grad():
            expected = {k: v for k, v in fixture.predictor(model)(feed).items()}
        return model, ckpt, out, feed, expected
    torch.manual_seed(0)
    if name == "hf-bert":
        config = transformers.BertConfig(vocab_size=120, hidden_size=32, num_hidden_layers=2,
                                         num_attention_heads=4, intermediate_size=48,
                                         max_position_embeddings=64, num_labels=3)
        model = transformers.BertForSequenceClassification(config).eval()
        model.save_pretrained(root / "hf-bert-dir")
        ckpt = checkpoint_from_object(model.state_dict())
        tf_savedmodel.write(ckpt, out, WriteOptions(model=f"hf:{root / 'hf-bert-dir'}"))
    else:
        config = transformers.GPT2Config(vocab_size=120, n_embd=32, n_layer=2, n_head=4, n_positions=64)
        model = transformers.GPT2LMHeadModel(config).eval()
        ckpt = checkpoint_from_object(model.state_dict())
        _export_causal_lm(model, root / "hf-gpt2.onnx")
        tf_savedmodel.write(ckpt, out, WriteOptions(onnx_source=str(root / "hf-gpt2.onnx")))
    feed = _text_feed(config.vocab_size)
    if name == "hf-bert":
        feed["token_type_ids"] = np.zeros_like(feed["input_ids"])
    with torch.no_grad():
        logits = model(**{k: torch.from_numpy(v) for k, v in feed.items()}).logits.numpy()
    return model, ckpt, out, feed, {"logits": logits}


ALL = ADAPTER_FIXTURES + ["hf-bert", "hf-gpt2"]


@pytest.mark.slow
@pytest.mark.parametrize("name", ALL)
def test_serving_signature_matches_pytorch(exports, name):
    _, _, path, feed, expected = exports(name)
    got = _serve(path, feed)
    assert set(got) == set(expected)
    for key, want in expected.items():
        assert got[key].shape == want.shape
        drift = float(np.abs(got[key] - want).max())
        assert drift <= ATOL, f"{name}/{key}: max abs drift {drift:.3g}"


@pytest.mark.slow
@pytest.mark.parametrize("name", ALL)
def test_import_round_trips_bitwise(exports, name):
    _, ckpt, path, _, _ = exports(name)
    back = tf_savedmodel.read(path)
    assert list(back.tensors) == list(ckpt.tensors)
    assert back.aliases == ckpt.aliases
    for key, value in ckpt.tensors.items():
        got = np.asarray(back.tensors[key])
        assert got.dtype == value.dtype and got.shape == value.shape, key
        assert got.tobytes() == np.asarray(value).tobytes(), key


@pytest.mark.slow
@pytest.mark.parametrize("name", ["mlp", "cnn", "bert-tiny", "gpt2-tiny", "hf-gpt2"])
def test_variables_are_trainable_and_gradients_flow(exports, name):
    _, ckpt, path, feed, _ = exports(name)
    loaded = tf.saved_model.load(str(path))
    trainable = {n: v for n, v in loaded.weights.items() if v.trainable}
    # Every floating-point tensor except BatchNorm statistics (updated by averaging, not gradients).
    floats = {n for n in ckpt.canonical_names() if np.asarray(ckpt.tensors[n]).dtype.kind == "f"
              and not n.endswith(("running_mean", "running_var"))}
    assert set(trainable) == floats
    record = json.loads((path / "assets.extra" / "portability.json").read_text())
    # serving_default holds the weights it reads as constants; training reads the
    # variables through from_variables, which computes the same outputs.
    compiled = set(record["compiled_weights"])
    read = {n for n in ckpt.canonical_names() if np.asarray(ckpt.tensors[n]).dtype.kind == "f"} - set(
        record["not_in_graph"])
    assert compiled == read and read
    fn = loaded.signatures["from_variables"]
    args = {k: tf.constant(v) for k, v in feed.items()}
    served, computed = loaded.signatures["serving_default"](**args), fn(**args)
    for key in served:
        np.testing.assert_allclose(served[key].numpy(), computed[key].numpy(), rtol=1e-6, atol=1e-6)
    with tf.GradientTape() as tape:
        outputs = fn(**{k: tf.constant(v) for k, v in feed.items()})
        loss = tf.reduce_sum(tf.square(next(iter(outputs.values()))))
    grads = tape.gradient(loss, list(trainable.values()))
    without = [n for n, g in zip(trainable, grads, strict=True) if g is None]
    assert without == []
    assert [n for n in record["not_in_graph"] if n in trainable] == []
    assert all(float(tf.reduce_max(tf.abs(g))) > 0 for g in grads if g is not None)


@pytest.mark.slow
def test_batchnorm_stays_unfolded_so_every_weight_is_read(exports):
    # The route exports with the ONNX optimizer off: BatchNorm is not folded into
    # the Conv, so the graph reads every checkpoint tensor except the BN step counter.
    _, ckpt, path, _, _ = exports("cnn")
    record = json.loads((path / "assets.extra" / "portability.json").read_text())
    assert record["frozen"] == []
    assert record["not_in_graph"] and all(n.endswith("num_batches_tracked") for n in record["not_in_graph"])


@pytest.mark.slow
def test_runner_feeds_by_name(exports):
    _, _, path, feed, expected = exports("mlp")
    with tf_savedmodel.runner(path) as runner:
        got = runner.infer(feed)
    np.testing.assert_allclose(got["logits"], expected["logits"], atol=ATOL)


class _DetModel(torch.nn.Module):
    """Token ids -> 3x3 matrices -> determinant: its ONNX graph holds Det, which has no TF translation."""

    def __init__(self):
        super().__init__()
        self.config = types.SimpleNamespace(vocab_size=10)  # lets the exporter synthesize input_ids
        self.embed = torch.nn.Embedding(10, 9)

    def forward(self, input_ids):
        matrices = self.embed(input_ids).reshape(input_ids.shape[0], input_ids.shape[1], 3, 3)
        return torch.linalg.det(matrices)


def det_model():
    """Model factory for the spec ``test_tf_export:det_model``."""
    torch.manual_seed(0)
    return _DetModel().eval()


@pytest.mark.slow
def test_unsupported_op_fails_and_writes_nothing(tmp_path):
    model = det_model()
    ckpt = checkpoint_from_object(model.state_dict())
    src = tmp_path / "det.safetensors"
    write_safetensors(ckpt, src)
    dst = tmp_path / "det_savedmodel"
    with pytest.raises(UnsupportedOpError, match=r"ONNX op Det \(node '[^']+'\) has no TensorFlow translation"):
        convert(src, dst, to="tf-savedmodel", model="test_tf_export:det_model")
    assert not dst.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["det.safetensors"]


def test_write_without_model_spec_is_a_usage_error(tmp_path):
    ckpt = checkpoint_from_object(det_model().state_dict())
    with pytest.raises(UsageError, match="needs the model's code: pass --model SPEC"):
        tf_savedmodel.write(ckpt, tmp_path / "out", WriteOptions())
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
@pytest.mark.parametrize("dtype,atol", [(torch.float16, 2e-3), (torch.bfloat16, 2e-2)])
def test_half_precision_mlp_runs_in_tf_cpu(tmp_path, dtype, atol):
    # TF 2.21's CPU kernels cover fp16 and bf16 for every op of this graph; the
    # ONNX graph is exported directly in that dtype (about 1 ulp of drift expected).
    fixture = get_fixture("mlp")
    model = fixture.build().eval().to(dtype)
    ckpt = checkpoint_from_object(model.state_dict())
    x = torch.from_numpy(fixture.eval_batch()["input"]).to(dtype)
    torch.onnx.export(model, (x,), str(tmp_path / "half.onnx"), dynamo=True, optimize=False,
                      input_names=["input"], output_names=["logits"],
                      dynamic_shapes=({0: torch.export.Dim("batch")},))
    tf_savedmodel.write(ckpt, tmp_path / "saved", WriteOptions(onnx_source=str(tmp_path / "half.onnx")))
    fn = tf.saved_model.load(str(tmp_path / "saved")).signatures["serving_default"]
    spec = fn.structured_input_signature[1]["input"]
    assert spec.dtype == {torch.float16: tf.float16, torch.bfloat16: tf.bfloat16}[dtype]
    got = tf.cast(fn(input=tf.cast(x.float().numpy(), spec.dtype))["logits"], tf.float32).numpy()
    with torch.no_grad():
        want = model(x).float().numpy()
    assert float(np.abs(got - want).max()) <= atol
    back = tf_savedmodel.read(tmp_path / "saved")
    assert all(np.asarray(back.tensors[n]).tobytes() == np.asarray(v).tobytes() for n, v in ckpt.tensors.items())
