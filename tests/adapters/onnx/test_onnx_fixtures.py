"""Every PyTorch fixture exports; ORT matches torch (atol 1e-5, fp32) on its fixed batch;
import gives back every parameter bitwise under its state_dict name."""

import functools

import numpy as np
import onnx_cases
import pytest

from portability.adapters import onnx as onnx_adapter
from portability.adapters.torch.runner import TorchRunner
from portability.adapters.torch.state_dict import checkpoint_from_object
from portability.fixtures import all_fixtures, get_fixture

TORCH_FIXTURES = [f.name for f in all_fixtures() if f.framework == "torch"]


@functools.cache
def _exported(name):
    """Seeded build() weights, with BatchNorm statistics made non-trivial, exported once."""
    state = get_fixture(name).build().state_dict()
    rng = np.random.default_rng(0)
    for key, value in state.items():
        if key.endswith("running_mean"):
            value.copy_(value.new_tensor(rng.uniform(-0.3, 0.3, tuple(value.shape))))
        elif key.endswith("running_var"):
            value.copy_(value.new_tensor(rng.uniform(0.5, 2.0, tuple(value.shape))))
    ckpt = checkpoint_from_object(state)
    result = onnx_adapter.export_checkpoint(ckpt, f"fixture:{name}", onnx_cases.ROOT / f"fixture-{name}.onnx")
    return ckpt, result


def test_fixture_zoo_has_torch_fixtures():
    assert {"mlp", "cnn", "bert-tiny", "gpt2-tiny"} <= set(TORCH_FIXTURES)


@pytest.mark.slow
@pytest.mark.parametrize("name", TORCH_FIXTURES)
def test_fixture_exports_and_ort_matches_torch(name):
    fixture = get_fixture(name)
    ckpt, result = _exported(name)
    assert result.input_names == list(fixture.input_names)
    assert result.output_names == list(fixture.output_names)
    batch = fixture.eval_batch()
    with onnx_adapter.runner(result.model_path) as ort_runner, TorchRunner(f"fixture:{name}", ckpt) as eager:
        got, want = ort_runner.infer(batch), eager.infer(batch)
    assert list(got) == list(want) == list(fixture.output_names)
    for key in want:
        np.testing.assert_allclose(got[key], want[key], rtol=0, atol=1e-5, err_msg=f"{name}:{key}")


@pytest.mark.slow
@pytest.mark.parametrize("name", TORCH_FIXTURES)
def test_fixture_import_is_bitwise_under_state_dict_names(name):
    ckpt, result = _exported(name)
    back = onnx_adapter.read(result.model_path)
    assert list(back.tensors) == list(ckpt.tensors)
    assert back.aliases == ckpt.aliases
    for key, value in ckpt.tensors.items():
        assert onnx_cases.same_bits(back.tensors[key], value), f"{name}:{key}"
