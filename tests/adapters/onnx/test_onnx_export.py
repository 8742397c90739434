"""Export: dynamic axes, names, opset, destinations, the CLI and its errors."""

import json
import subprocess
import sys

import numpy as np
import onnx
import onnx_cases
import onnx_toys
import pytest

from portability.adapters import onnx as onnx_adapter
from portability.adapters.onnx import export as export_module
from portability.adapters.onnx import name_map, originals
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
def test_every_weight_is_one_initializer_under_its_name_and_unread_ones_are_kept_apart():
    mlp, state = onnx_cases.exported("mlp")
    props = {p.key: p.value for p in _graph(mlp.model_path).metadata_props}
    mapping = json.loads(props[name_map.KEY_NAME_MAP])
    assert mapping["fc1.weight"] == {"shape": [16, 8], "dtype": "F32", "initializer": "fc1.weight",
                                     "transform": "identity"}
    assert mlp.stored_unused == []
    cnn, state = onnx_cases.exported("cnn")
    graph = _graph(cnn.model_path)
    initializers = {i.name for i in graph.graph.initializer}
    # BatchNorm is not folded into the Conv: every tensor the graph reads is there, once.
    assert set(state) - initializers == {"bn.num_batches_tracked"}
    assert cnn.stored_unused == ["bn.num_batches_tracked"]
    assert not [n for n in initializers if n.startswith(name_map.EXTRA_PREFIX)]
    kept = originals.read_originals(graph)
    assert list(kept) == ["portability/bn.num_batches_tracked"]
    assert kept["portability/bn.num_batches_tracked"].tobytes() == state["bn.num_batches_tracked"].tobytes()


def _ort_log(path) -> str:
    """What onnxruntime logs at warning level while it opens ``path``, in a fresh process."""
    code = ("import sys, onnxruntime as ort; ort.set_default_logger_severity(2); "
            "ort.InferenceSession(sys.argv[1], providers=['CPUExecutionProvider'])")
    done = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stderr


def _graph_bytes(path) -> int:
    """The file's size without its tensors' data (initializers and the kept originals)."""
    bare = _graph(path)
    for tensor in bare.graph.initializer:
        tensor.ClearField("raw_data")
    for function in bare.functions:
        for node in function.node:
            for attribute in node.attribute:
                attribute.t.ClearField("raw_data")
    return len(bare.SerializeToString())


@pytest.mark.slow
@pytest.mark.parametrize("optimize", [False, True])
def test_onnxruntime_opens_the_export_silently_and_each_weight_is_stored_once(tmp_path, optimize):
    model, state = onnx_toys.make_cnn(), onnx_toys.make_cnn().state_dict()
    result = onnx_adapter.export_model(model, onnx_toys.cnn_inputs(), tmp_path / "m.onnx", optimize=optimize)
    assert _ort_log(result.model_path) == ""
    weights = sum(t.numel() * t.element_size() for t in state.values())
    size = result.model_path.stat().st_size
    if not optimize:  # within 5% of the weights plus the graph
        assert size <= 1.05 * (weights + _graph_bytes(result.model_path))
    else:  # the optimizer folds BatchNorm into the Conv: the originals are kept apart, still silently
        assert set(result.stored_unused) >= {"conv.weight", "bn.running_var"}
    back = onnx_adapter.read(result.model_path)
    assert list(back.tensors) == list(state)
    assert all(np.asarray(back.tensors[n]).tobytes() == t.numpy().tobytes() for n, t in state.items())


def test_a_file_written_before_the_originals_function_still_reads_bitwise(tmp_path):
    from onnx import helper, numpy_helper

    weight, kept = np.arange(6, dtype=np.float32).reshape(2, 3), np.array(7, np.int64)
    mapping, extras = name_map.build_name_map({"w": weight}, {"w": weight, "n": kept})
    graph = helper.make_graph([helper.make_node("MatMul", ["x", "w"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1, 2])],
                              [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1, 3])],
                              [numpy_helper.from_array(weight, "w"),
                               *(numpy_helper.from_array(a, n) for n, a in extras.items())])
    model = helper.make_model(graph)
    record = name_map.record(mapping, {"w": weight, "n": kept}, {}, {}, ["n"], ["w", "n"])
    helper.set_model_props(model, {**record, name_map.KEY_VERSION: "1"})
    onnx.save(model, tmp_path / "old.onnx")
    back = onnx_adapter.read(tmp_path / "old.onnx")
    assert back.tensors["n"].tobytes() == kept.tobytes() and np.array_equal(back.tensors["w"], weight)
    assert list(back.tensors) == ["w", "n"]


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
    assert "fc1.weight" in external
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


def test_releasing_the_exporters_matchers_ignores_dead_weak_proxies():
    import weakref

    from portability.adapters.onnx import exporter_state

    class Referent:
        pass

    target = Referent()
    proxy = weakref.proxy(target)
    del target  # the proxy is dead, and gc still lists it
    holder = [proxy]
    assert exporter_state.release() >= 0
    assert len(holder) == 1
