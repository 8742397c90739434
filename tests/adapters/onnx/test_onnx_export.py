"""Export: dynamic axes, names, opset, destinations, the CLI and its errors."""

import numpy as np
import onnx
import onnx_cases
import onnx_toys
import pytest

from portability.adapters import onnx as onnx_adapter
from portability.adapters.onnx import export as export_module
from portability.adapters.onnx import name_map
from portability.adapters.torch.models import run_model
from portability.adapters.torch.state_dict import checkpoint_from_object
from portability.cli import main
from portability.core.formats import WriteOptions
from portability.errors import UsageError


def _graph(path):
    return onnx.load(str(path))


def _dims(value_info):
    return [d.dim_param or d.dim_value for d in value_info.type.tensor_type.shape.dim]


@pytest.mark.slow
def test_mlp_export_has_dynamic_batch_and_names():
    result, _ = onnx_cases.exported("mlp")
    graph = _graph(result.model_path).graph
    assert result.input_names == ["x"] and result.output_names == ["output"]
    assert [i.name for i in graph.input] == ["x"] and [o.name for o in graph.output] == ["output"]
    assert _dims(graph.input[0]) == ["batch", 5, 8]  # float input: batch axis only
    assert result.opset == 20 and result.external_data is None


@pytest.mark.slow
def test_ort_matches_torch_at_other_batch_sizes():
    for kind, make, inputs in (("mlp", onnx_toys.make_mlp, onnx_toys.mlp_inputs(batch=7, seed=5)),
                               ("cnn", onnx_toys.make_cnn, onnx_toys.cnn_inputs(batch=1, seed=5))):
        result, _ = onnx_cases.exported(kind)
        name = next(iter(inputs))
        with onnx_adapter.runner(result.model_path) as runner:
            got = runner.infer({result.input_names[0]: inputs[name]})["output"]
        want = run_model(make(), inputs)["output"]
        assert got.shape == want.shape
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-5)


@pytest.mark.slow
def test_linear_weights_are_found_transposed_and_folded_conv_stored_apart():
    mlp, _ = onnx_cases.exported("mlp")
    props = {p.key: p.value for p in _graph(mlp.model_path).metadata_props}
    mapping = __import__("json").loads(props[name_map.KEY_NAME_MAP])
    assert mapping["fc1.weight"]["transform"] == "transpose"
    assert mapping["fc1.weight"]["initializer"].startswith("val_")
    assert mapping["norm.weight"] == {"shape": [16], "dtype": "F32", "initializer": "norm.weight",
                                      "transform": "identity"}
    cnn, _ = onnx_cases.exported("cnn")
    # BatchNorm is folded into the Conv (under the Conv weight's own name), so the
    # original conv/bn tensors are kept as extra initializers.
    assert set(cnn.stored_unused) >= {"conv.weight", "bn.running_mean", "bn.running_var"}
    names = {i.name for i in _graph(cnn.model_path).graph.initializer}
    assert "portability/conv.weight" in names and "portability/bn.running_var" in names


@pytest.mark.slow
def test_unoptimized_export_keeps_parameter_names(tmp_path):
    result = onnx_adapter.export_model(onnx_toys.make_mlp(), onnx_toys.mlp_inputs(), tmp_path / "m.onnx",
                                       optimize=False)
    graph = _graph(result.model_path).graph
    assert [t.name for t in graph.initializer] == list(onnx_toys.make_mlp().state_dict())
    assert "Transpose" in {n.op_type for n in graph.node}
    assert result.stored_unused == []


@pytest.mark.slow
def test_directory_destination_writes_external_data(tmp_path):
    import torch

    src, inputs, out = tmp_path / "mlp.pt", tmp_path / "inputs.npz", tmp_path / "mlp_dir"
    torch.save(onnx_toys.make_mlp().state_dict(), src)
    np.savez(inputs, **onnx_toys.mlp_inputs())
    assert main(["convert", str(src), str(out), "--to", "onnx", "--model", "onnx_toys:make_mlp",
                 "--inputs", str(inputs)]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["inputs.npz", "mlp.pt", "mlp_dir"]  # no temp left
    assert sorted(p.name for p in out.iterdir()) == ["model.onnx", "model.onnx.data"]
    bare = onnx.load(str(out / "model.onnx"), load_external_data=False)
    external = [t.name for t in bare.graph.initializer if t.data_location == onnx.TensorProto.EXTERNAL]
    assert "fc1.bias" in external or any(n.startswith("val_") for n in external)
    # the directory moves as one unit: read and run it after a rename
    moved = tmp_path / "moved"
    out.rename(moved)
    state = onnx_toys.make_mlp().state_dict()
    back = onnx_adapter.read(moved)
    assert all(np.asarray(back.tensors[n]).tobytes() == state[n].numpy().tobytes() for n in state)
    with onnx_adapter.runner(moved) as runner:
        got = runner.infer(onnx_toys.mlp_inputs())["output"]
    np.testing.assert_allclose(got, run_model(onnx_toys.make_mlp(), onnx_toys.mlp_inputs())["output"], atol=1e-5)


def test_file_destination_past_the_protobuf_limit_writes_external_data_beside_it(tmp_path, monkeypatch):
    monkeypatch.setattr(export_module, "SINGLE_FILE_LIMIT", 100)
    ckpt = checkpoint_from_object(onnx_toys.make_mlp().state_dict())
    inputs = tmp_path / "inputs.npz"
    np.savez(inputs, **onnx_toys.mlp_inputs())
    options = WriteOptions(model="onnx_toys:make_mlp", inputs=str(inputs))
    onnx_adapter.write(ckpt, tmp_path / "big.onnx", options)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["big.onnx", "big.onnx.data", "inputs.npz"]
    back = onnx_adapter.read(tmp_path / "big.onnx")
    assert all(np.asarray(back.tensors[n]).tobytes() == np.asarray(ckpt.tensors[n]).tobytes() for n in ckpt.tensors)
    with pytest.raises(UsageError, match="past protobuf's 2 GiB limit.*external data"):
        onnx_adapter.write(ckpt, tmp_path / "small.onnx", WriteOptions(
            model="onnx_toys:make_mlp", inputs=str(inputs), external_data=False))
    assert not (tmp_path / "small.onnx").exists()


def test_convert_to_a_file_past_the_limit_publishes_the_graph_and_its_data_together(tmp_path, monkeypatch):
    import torch

    monkeypatch.setattr(export_module, "SINGLE_FILE_LIMIT", 100)
    src = tmp_path / "mlp.pt"
    torch.save(onnx_toys.make_mlp().state_dict(), src)
    inputs = tmp_path / "inputs.npz"
    np.savez(inputs, **onnx_toys.mlp_inputs())
    out = tmp_path / "mlp.onnx"
    assert main(["convert", str(src), str(out), "--model", "onnx_toys:make_mlp", "--inputs", str(inputs)]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["inputs.npz", "mlp.onnx", "mlp.onnx.data", "mlp.pt"]
    bare = onnx.load(str(out), load_external_data=False)
    locations = {e.value for t in bare.graph.initializer for e in t.external_data if e.key == "location"}
    assert locations == {"mlp.onnx.data"}
    with onnx_adapter.runner(out) as runner:
        got = runner.infer(onnx_toys.mlp_inputs())["output"]
    np.testing.assert_allclose(got, run_model(onnx_toys.make_mlp(), onnx_toys.mlp_inputs())["output"], atol=1e-5)


def test_write_without_model_names_the_option(tmp_path):
    ckpt = checkpoint_from_object(onnx_toys.make_mlp().state_dict())
    with pytest.raises(UsageError, match="pass --model SPEC"):
        onnx_adapter.write(ckpt, tmp_path / "m.onnx", WriteOptions())


def test_cli_convert_without_model_fails_and_leaves_nothing(tmp_path, capsys):
    import torch

    src = tmp_path / "mlp.pt"
    torch.save(onnx_toys.make_mlp().state_dict(), src)
    out = tmp_path / "mlp.onnx"
    assert main(["convert", str(src), str(out)]) == 2
    assert "--model" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == [src]


@pytest.mark.slow
def test_cli_convert_with_factory_spec_inputs_and_opset(tmp_path, capsys):
    import torch

    src = tmp_path / "mlp.pt"
    torch.save(onnx_toys.make_mlp().state_dict(), src)
    out = tmp_path / "mlp.onnx"
    code = main(["convert", str(src), str(out), "--model", "onnx_toys:make_mlp"])
    err = capsys.readouterr().err
    assert code == 2 and "cannot make example inputs" in err and "--inputs" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mlp.pt"]
    inputs = tmp_path / "inputs.npz"
    np.savez(inputs, x=onnx_toys.mlp_inputs(batch=3)["x"])
    assert main(["convert", str(src), str(out), "--model", "onnx_toys:make_mlp",
                 "--inputs", str(inputs), "--opset", "18"]) == 0
    assert {o.domain: o.version for o in _graph(out).opset_import}[""] == 18
    back = tmp_path / "back.safetensors"
    assert main(["convert", str(out), str(back)]) == 0
    from portability.adapters.safetensors.format import read as read_safetensors
    from portability.core.tensors import as_array

    restored = read_safetensors(back)
    state = onnx_toys.make_mlp().state_dict()
    assert list(restored.tensors) == list(state)
    assert all(as_array(restored.tensors[n]).tobytes() == v.numpy().tobytes() for n, v in state.items())
