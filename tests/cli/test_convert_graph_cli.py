"""`portability convert` to graph formats (ONNX) and `fixtures --export`, used the
way a careless user would: every mistake is one `error:` line naming the culprit,
exit 2, no traceback, nothing written, no temporary file left."""

from __future__ import annotations

import numpy as np
import pytest

from portability.fixtures.golden import GOLDEN_DIR

pytest.importorskip("onnx")

MLP_PT = GOLDEN_DIR / "mlp" / "checkpoint.pt"  # the mlp fixture, with training state


def _bad_npz(path):
    path.write_text("not a zip\n")


def _wrong_npz(path):
    np.savez(path, foo=np.zeros(3))  # float64, and not the model's input


def _hf_without_config(path):
    path.mkdir()


@pytest.mark.parametrize("option,value,make,words", [
    ("--model", "garbage", None, ["'garbage'", "fixture:NAME"]),
    ("--model", "hf:{tmp}/nodir", None, ["nodir", "not a directory"]),
    ("--model", "hf:{tmp}/hfdir", _hf_without_config, ["hfdir", "config.json"]),
    ("--model", "fixture:nope", None, ["'nope'", "known"]),
    ("--model", "nosuchmod.sub:build", None, ["nosuchmod"]),
    ("--model", "json:no_such_factory", None, ["'no_such_factory'"]),
    ("--model", "json:loads", None, ["json:loads", "loads()", "TypeError"]),
    ("--opset", "0", None, ["--opset 0"]),
    ("--opset", "999", None, ["--opset 999", "1 to"]),
    ("--opset", "many", None, ["'--opset'", "integer"]),
    ("--inputs", "{tmp}/missing.npz", None, ["missing.npz", "not found"]),
    ("--inputs", "{tmp}/bad.npz", _bad_npz, ["bad.npz", "not an .npz"]),
    ("--inputs", "{tmp}/wrong.npz", _wrong_npz, ["fixture:mlp", "does not run on the example inputs", "foo"]),
], ids=lambda v: v if isinstance(v, str) else None)
def test_bad_graph_export_options(tmp_path, cli, assert_clean_failure, option, value, make, words):
    value = value.format(tmp=tmp_path)
    if make is not None:
        make(tmp_path / value.split("/")[-1])
    model = [] if option == "--model" else ["--model", "fixture:mlp"]
    dst = tmp_path / "out.onnx"
    # --weights-only: the bad option, not the training state the destination cannot hold, is the error
    result = cli("convert", MLP_PT, dst, *model, option, value, "--weights-only")
    assert_clean_failure(result, names=tuple(words), dst=dst)


def test_onnx_without_model_says_how(tmp_path, cli, assert_clean_failure):
    dst = tmp_path / "out.onnx"
    result = cli("convert", MLP_PT, dst, "--weights-only")
    assert_clean_failure(result, names=("--model SPEC", "fixture:NAME"), dst=dst)


@pytest.mark.slow
def test_opset_the_exporter_cannot_reach_fails_instead_of_writing_opset_18(tmp_path, cli, assert_clean_failure):
    # torch exports opset 18 and converts; LayerNormalization has no opset-13 form.
    dst = tmp_path / "out.onnx"
    result = cli("convert", MLP_PT, dst, "--model", "fixture:mlp", "--opset", "13", "--weights-only")
    assert_clean_failure(result, names=("opset 13", "stayed at opset 18", "LayerNormalization"), dst=dst)


@pytest.mark.parametrize("dst_name,args,words", [
    ("out.safetensors", ["--model", "fixture:mlp"], ["--model", "safetensors"]),
    ("out.pt", ["--opset", "18"], ["--opset", "torch"]),
    ("out.safetensors", ["--inputs", "x.npz"], ["--inputs", "safetensors"]),
    ("out.onnx", ["--to", "safetensors"], ["out.onnx", "says onnx", "--to says safetensors"]),
    ("out.pt", ["--to", "onnx", "--model", "fixture:mlp"], ["out.pt", "says torch"]),
])
def test_options_that_do_not_fit_the_destination(tmp_path, cli, assert_clean_failure, dst_name, args, words):
    dst = tmp_path / dst_name
    assert_clean_failure(cli("convert", MLP_PT, dst, *args), names=tuple(words), dst=dst)


def test_source_onnx_that_is_not_protobuf(tmp_path, cli, assert_clean_failure):
    src = tmp_path / "junk.onnx"
    src.write_text("hello\n")
    dst = tmp_path / "out.safetensors"
    assert_clean_failure(cli("convert", src, dst), names=("junk.onnx", "not a readable ONNX model"), dst=dst)


def test_destination_folder_that_cannot_be_created(tmp_path, cli, assert_clean_failure):
    (tmp_path / "afile").write_text("x")
    dst = tmp_path / "afile" / "sub" / "out.safetensors"
    result = cli("convert", MLP_PT, dst)
    assert_clean_failure(result, names=("cannot create the folder", "sub", "nothing was written"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["afile"]


def test_onnx_output_of_a_training_checkpoint_is_refused_without_weights_only(tmp_path, cli, assert_clean_failure):
    dst = tmp_path / "mlp.onnx"
    result = cli("convert", MLP_PT, dst, "--model", "fixture:mlp")
    assert_clean_failure(result, names=("mlp.onnx: onnx does not store training state, and the source holds "
                                        "optimizer, scheduler, rng state", "--weights-only", "nothing was written"),
                         dst=dst)


@pytest.mark.slow
def test_weights_only_onnx_output_says_what_it_dropped(tmp_path, cli):
    result = cli("convert", MLP_PT, tmp_path / "mlp.onnx", "--model", "fixture:mlp", "--weights-only")
    assert result.code == 0, result.err
    assert ("note: --weights-only: training state not written (optimizer, scheduler, rng, step, epoch, loss, "
            "data position)") in result.out
    assert "with training state" not in result.out
    assert result.err == ""  # no warnings naming a temporary file, no exporter log lines
    back = cli("convert", tmp_path / "mlp.onnx", tmp_path / "back.safetensors")
    assert back.code == 0 and "training state" not in back.out  # the ONNX file has none to carry


def test_safetensors_output_says_the_training_state_travelled(tmp_path, cli):
    result = cli("convert", MLP_PT, tmp_path / "mlp.safetensors")
    assert result.code == 0, result.err
    assert "with training state" in result.out and "not stored" not in result.out


def test_fixtures_export_to_a_file(tmp_path, cli, assert_clean_failure):
    target = tmp_path / "taken.txt"
    target.write_text("x")
    assert_clean_failure(cli("fixtures", "mlp", "--export", target), names=("--export", "taken.txt", "not a directory"))
    assert target.read_text() == "x" and sorted(p.name for p in tmp_path.iterdir()) == ["taken.txt"]
