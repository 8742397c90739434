"""Integrity is part of every verdict: ``compare`` fails an artifact that fails its checksums,
on either side and in every format we write checksums for, as ``check`` does.

Each damaged file is one of our own conversions with one float of ``head.weight`` moved by
one ulp: the smallest damage there is, and one whose outputs alone would pass.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import toy_models

from portability.api import apply_strict, check, compare
from portability.cli import main
from portability.core.conversion import convert
from portability.errors import UnsafeCheckpointError

SPEC = "toy_models:mlp"
TARGET = "head.weight"


def nudge_one_float(src: Path, dst: Path, value: np.ndarray) -> Path:
    """Copy ``src`` (a file or a directory) to ``dst`` and add one ulp to the first float of
    ``value`` where its bytes are stored; returns the file that changed."""
    if src.is_dir():
        shutil.copytree(src, dst)
        files = sorted(p for p in dst.rglob("*") if p.is_file())
    else:
        shutil.copyfile(src, dst)
        files = [dst]
    raw = np.ascontiguousarray(value, dtype=np.float32).tobytes()
    for file in files:
        data = bytearray(file.read_bytes())
        at = data.find(raw)
        if at >= 0:
            assert data.find(raw, at + 1) < 0, f"{TARGET}'s bytes occur twice in {file}"
            bits = np.frombuffer(bytes(data[at:at + 4]), np.uint32) + np.uint32(1)
            data[at:at + 4] = bits.tobytes()
            file.write_bytes(bytes(data))
            return file
    raise AssertionError(f"{TARGET}'s bytes are not stored in {src}")


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    root = tmp_path_factory.mktemp("integrity")
    model = toy_models.mlp()
    torch.save(model.state_dict(), root / "toy.pt")
    np.savez(root / "x.npz", **toy_models.inputs())
    return root, model.state_dict()[TARGET].numpy()


@pytest.fixture(scope="module")
def ours(toy):
    """Our own conversions of the toy checkpoint: torch zip, safetensors file and shards."""
    root, _ = toy
    convert(root / "toy.pt", root / "ours.pt")
    convert(root / "toy.pt", root / "ours.safetensors")
    convert(root / "toy.pt", root / "shards", shard_size=300)
    return root


def _assert_fails_naming_the_checksum(report, damaged: Path) -> None:
    (route,) = report.routes
    assert route.status == "fail" and not report and report.exit_code() == 1
    assert "checksum" in route.reason and TARGET in route.reason and str(damaged) in route.reason
    assert route.outputs == []  # the damage decided the verdict before any output was judged


@pytest.mark.parametrize("name", ["ours.pt", "ours.safetensors", "shards"])
def test_a_damaged_weights_file_fails_compare(toy, ours, tmp_path, name):
    root, value = toy
    bad = tmp_path / f"bad-{name}"
    changed = nudge_one_float(ours / name, bad, value)
    report = compare(root / "toy.pt", bad, model=SPEC, inputs=root / "x.npz", workers=0)
    _assert_fails_naming_the_checksum(report, changed)


@pytest.fixture(scope="module")
def onnx_pair(toy):
    """Our ONNX export of the toy model, and a copy with ``head.weight`` nudged."""
    pytest.importorskip("onnxruntime")
    root, value = toy
    good = root / "ours.onnx"
    convert(root / "toy.pt", good, model=SPEC, inputs=root / "x.npz")
    bad = root / "bad.onnx"
    nudge_one_float(good, bad, value)
    return good, bad


def test_a_damaged_onnx_candidate_fails_compare_and_exits_1(toy, onnx_pair, capsys):
    root, _ = toy
    good, bad = onnx_pair
    report = compare(root / "toy.pt", bad, model=SPEC, inputs=root / "x.npz", workers=0)
    _assert_fails_naming_the_checksum(report, bad)
    assert report.routes[0].reason == (f"{bad}: checksum mismatch for tensor {TARGET!r} (initializer "
                                       f"{TARGET!r}): the data is corrupt")
    code = main(["compare", str(root / "toy.pt"), str(bad), "--model", SPEC, "--inputs", str(root / "x.npz"),
                 "--in-process", "-q"])
    assert code == 1
    assert "FAILED: 0 pass, 1 fail" in capsys.readouterr().out
    # The undamaged file passes the same comparison.
    assert compare(root / "toy.pt", good, model=SPEC, inputs=root / "x.npz", workers=0)


def test_onnx_against_onnx_fails_on_either_side(toy, onnx_pair):
    root, _ = toy
    good, bad = onnx_pair
    inputs = root / "x.npz"
    _assert_fails_naming_the_checksum(compare(good, bad, inputs=inputs, workers=0), bad)
    _assert_fails_naming_the_checksum(compare(bad, good, inputs=inputs, workers=0), bad)


def test_check_and_compare_give_the_same_reason(toy, onnx_pair):
    root, _ = toy
    _, bad = onnx_pair
    checked = check(bad, inputs=root / "x.npz", routes="onnx->torch", workers=0)
    compared = compare(root / "toy.pt", bad, model=SPEC, inputs=root / "x.npz", workers=0)
    assert checked.routes[0].status == compared.routes[0].status == "fail"
    assert checked.routes[0].reason == compared.routes[0].reason


def _rewrite_variable_behind_tf_checksums(src: Path, dst: Path, value: np.ndarray) -> None:
    """Copy a SavedModel and rewrite its variables bundle with TF itself, with one float of
    ``value`` nudged: TF's own CRCs then match, so only our recorded checksum can tell."""
    tf = pytest.importorskip("tensorflow")
    shutil.copytree(src, dst)
    prefix = str(dst / "variables" / "variables")
    reader = tf.train.load_checkpoint(prefix)
    names = sorted(reader.get_variable_to_dtype_map())
    values = {n: reader.get_tensor(n) for n in names}
    (hit,) = [n for n in names if isinstance(values[n], np.ndarray) and values[n].shape == value.shape
              and np.array_equal(values[n], value)]
    nudged = values[hit].copy()
    nudged.reshape(-1).view(np.uint32)[0] += 1
    values[hit] = nudged
    rewritten = dst / "rewritten"
    tf.raw_ops.SaveV2(prefix=str(rewritten / "variables"), tensor_names=names, shape_and_slices=[""] * len(names),
                      tensors=[tf.constant(values[n]) for n in names])
    for file in rewritten.iterdir():
        shutil.copyfile(file, dst / "variables" / file.name)
    shutil.rmtree(rewritten)


@pytest.mark.slow
def test_savedmodel_variables_damaged_behind_their_recorded_checksums_fail_compare(toy, tmp_path):
    pytest.importorskip("tensorflow")
    root, value = toy
    good = tmp_path / "sm"
    convert(root / "toy.pt", good, to="tf-savedmodel", model=SPEC, inputs=root / "x.npz")
    bad = tmp_path / "bad-sm"
    _rewrite_variable_behind_tf_checksums(good, bad, value)
    report = compare(root / "toy.pt", bad, model=SPEC, inputs=root / "x.npz", workers=0)
    (route,) = report.routes
    assert route.status == "fail" and report.exit_code() == 1
    assert route.reason == (f"{bad}: variable {TARGET!r} does not match its recorded checksum; the "
                            "SavedModel's variables were modified or damaged")
    assert compare(root / "toy.pt", good, model=SPEC, inputs=root / "x.npz", workers=0)


def test_weights_unreadable_for_another_reason_are_judged_on_outputs_with_a_note(toy, ours, monkeypatch):
    """Not damage (here: a refusal to unpickle): the outputs decide, the note says what was
    not judged, and --strict fails the route."""
    from portability.adapters.safetensors.adapter import SafetensorsAdapter

    root, _ = toy
    runs_on = SafetensorsAdapter.read

    def refuse_once(self, path, options=None):
        monkeypatch.setattr(SafetensorsAdapter, "read", runs_on)  # the runner reads it again
        raise UnsafeCheckpointError(f"{path}: refused for this test")

    monkeypatch.setattr(SafetensorsAdapter, "read", refuse_once)
    report = compare(root / "toy.pt", ours / "ours.safetensors", model=SPEC, inputs=root / "x.npz", workers=0)
    (route,) = report.routes
    assert route.status == "pass" and route.weights is None and route.outputs[0].max_abs == 0.0
    expected = f"weights not compared: {ours / 'ours.safetensors'}: refused for this test"
    assert route.fallbacks == [expected] and f"fallback: {expected}" in route.notes
    apply_strict(report.routes)
    assert route.status == "fail" and route.reason == f"strict: fell back ({expected})"


@pytest.mark.slow
def test_a_tf2onnx_candidate_is_judged_on_its_outputs_with_a_note(tmp_path):
    """tf2onnx folds and transposes variables into constants: its weights cannot be matched
    to the SavedModel's, which is not damage. The outputs decide."""
    pytest.importorskip("tf2onnx")
    from foreign_graphs import keras_functional

    keras_functional(tmp_path / "sm")
    np.savez(tmp_path / "x.npz", image=np.random.default_rng(0).standard_normal((2, 8, 8, 3)).astype(np.float32))
    convert(tmp_path / "sm", tmp_path / "tf2onnx.onnx", inputs=tmp_path / "x.npz")
    report = compare(tmp_path / "sm", tmp_path / "tf2onnx.onnx", inputs=tmp_path / "x.npz", workers=0)
    (route,) = report.routes
    assert route.status == "pass", route.reason
    assert route.outputs[0].max_abs <= 1e-5
    assert any(n.startswith("weights not judged") and "tf2onnx folds" in n for n in route.notes)
