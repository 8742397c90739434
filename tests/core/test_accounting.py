"""The no-data-lost invariant: a conversion that drops tensors fails, names them, and leaves no file."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from portability.adapters.safetensors.adapter import SafetensorsAdapter
from portability.core.accounting import check_nothing_lost, tensor_inventory
from portability.core.checkpoint import Checkpoint, TrainingState
from portability.core.conversion import convert
from portability.errors import WriteError

torch = pytest.importorskip("torch")


def source(tmp_path):
    torch.manual_seed(0)
    state = {"a.weight": torch.randn(3, 4), "a.bias": torch.zeros(3)}
    torch.save({"model_state": state, "step": 4, "best": torch.tensor([0.5])}, tmp_path / "src.pt")
    return tmp_path / "src.pt"


def writer_that(monkeypatch, change):
    original = SafetensorsAdapter.write

    def write(self, ckpt, path, options=None):
        return original(self, change(ckpt), path, *(o for o in [options] if o is not None))

    monkeypatch.setattr(SafetensorsAdapter, "write", write)


def test_an_output_with_no_tensors_is_an_error_and_no_file(tmp_path, monkeypatch):
    writer_that(monkeypatch, lambda ckpt: Checkpoint())
    with pytest.raises(WriteError, match=r"out\.safetensors: the output holds no tensors but the source holds 3 "
                                         r"\(64 bytes: a\.weight, a\.bias, __training__\.extra\.best\); "
                                         r"nothing was written"):
        convert(source(tmp_path), tmp_path / "out.safetensors")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["src.pt"]


def test_a_lost_tensor_is_named(tmp_path, monkeypatch):
    writer_that(monkeypatch, lambda ckpt: dataclasses.replace(
        ckpt, tensors={k: v for k, v in ckpt.tensors.items() if k != "a.bias"}))
    with pytest.raises(WriteError, match=r"the output lost 1 of the source's 3 tensors \(12 bytes: a\.bias\)"):
        convert(source(tmp_path), tmp_path / "out.safetensors")
    assert not (tmp_path / "out.safetensors").exists()


def test_lost_training_state_is_named(tmp_path, monkeypatch):
    writer_that(monkeypatch, lambda ckpt: dataclasses.replace(ckpt, training=None))
    with pytest.raises(WriteError, match=r"lost 1 of the source's 3 tensors \(4 bytes: __training__\.extra\.best\)"):
        convert(source(tmp_path), tmp_path / "out.safetensors")


def test_ties_count_and_formats_without_training_state_are_excused():
    w = np.ones((2, 2), np.float32)
    src = Checkpoint(tensors={"emb": w, "head": w}, aliases={"head": "emb"},
                     training=TrainingState(extra={"lr": np.array([0.1], np.float32)}))
    assert tensor_inventory(src) == {"emb": 16, "head": 16, "__training__.extra.lr": 4}
    with pytest.raises(WriteError, match=r"lost 1 of the source's 2 tensors \(16 bytes: head\)"):
        check_nothing_lost(src, Checkpoint(tensors={"emb": w}), keeps_training=False, where="x.onnx")
    check_nothing_lost(src, Checkpoint(tensors={"emb": w, "head": w}), keeps_training=False, where="x.onnx")
    with pytest.raises(WriteError, match="lost 1 of the source's 3 tensors"):
        check_nothing_lost(src, Checkpoint(tensors={"emb": w, "head": w}), keeps_training=True, where="x")


def test_the_issue_case_training_checkpoint_keeps_its_weights(tmp_path):
    """The weights of ``{'step', 'model_state', 'optimizer_state'}`` are the output's tensors."""
    from safetensors.numpy import load_file

    result = convert(source(tmp_path), tmp_path / "out.safetensors")
    assert result.tensors == 2
    names = list(load_file(tmp_path / "out.safetensors"))
    assert {"a.weight", "a.bias"} <= set(names)
