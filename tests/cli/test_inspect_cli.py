"""`portability inspect`: the table, --json, and a non-zero exit when integrity fails."""

from __future__ import annotations

import json

import ml_dtypes
import numpy as np
import pytest

from portability.adapters.safetensors import format as safetensors_format
from portability.core.checkpoint import Checkpoint, OptimizerState, TrainingState


def training_checkpoint() -> Checkpoint:
    w = np.arange(12, dtype=np.float32).reshape(3, 4)
    tensors = {"embed.weight": w, "norm.bias": np.zeros(4, dtype=ml_dtypes.bfloat16), "head.weight": w}
    optimizer = OptimizerState(
        param_groups=[{"lr": 0.001, "betas": (0.9, 0.999), "params": [0, 1]}],
        state={0: {"step": np.array(5.0, np.float32), "exp_avg": np.ones((3, 4), np.float32),
                   "exp_avg_sq": np.ones((3, 4), np.float32)}},
        kind="Adam")
    training = TrainingState(optimizer=optimizer, epoch=2, global_step=5, loss=0.75,
                             rng={"python": (3, (1, 2), None)})
    return Checkpoint(tensors=tensors, aliases={"head.weight": "embed.weight"}, training=training, layout="classic")


def test_json_lists_everything(tmp_path, cli):
    safetensors_format.write(training_checkpoint(), tmp_path / "t.safetensors")
    result = cli("inspect", tmp_path / "t.safetensors", "--json")
    assert result.code == 0, result.err
    info = json.loads(result.out)
    assert info["format"] == "safetensors" and info["layout"] == "classic"
    assert info["tensors"] == [
        {"name": "embed.weight", "dtype": "F32", "shape": [3, 4], "bytes": 48, "alias_of": None},
        {"name": "norm.bias", "dtype": "BF16", "shape": [4], "bytes": 8, "alias_of": None},
        {"name": "head.weight", "dtype": "F32", "shape": [3, 4], "bytes": 48, "alias_of": "embed.weight"},
    ]
    assert info["parameters"] == 16  # the tied head is counted once
    assert info["total_bytes"] == 56
    ts = info["training_state"]
    assert ts["present"] and ts["optimizer"] == {"kind": "Adam", "param_groups": 1, "parameters_with_state": 1}
    assert (ts["epoch"], ts["global_step"], ts["loss"], ts["rng"]) == (2, 5, 0.75, ["python"])
    assert info["integrity"]["status"] == "ok"


def test_table_shows_the_same_facts(tmp_path, cli):
    safetensors_format.write(training_checkpoint(), tmp_path / "t.safetensors")
    result = cli("inspect", tmp_path / "t.safetensors")
    assert result.code == 0, result.err
    out = result.out
    for word in ("safetensors", "embed.weight", "BF16", "(3, 4)", "parameters: 16", "optimizer Adam",
                 "epoch 2", "step 5", "integrity: ok"):
        assert word in out, word
    head_row = next(line for line in out.splitlines() if "head.weight" in line)
    assert "embed.weight" in head_row


def test_weights_only_file_from_another_tool(tmp_path, cli):
    from safetensors.numpy import save_file

    save_file({"a": np.ones((2, 2), np.float16)}, str(tmp_path / "o.safetensors"))
    info = json.loads(cli("inspect", tmp_path / "o.safetensors", "--json").out)
    assert info["training_state"] == {"present": False}
    assert info["integrity"]["status"] == "no-checksums"
    table = cli("inspect", tmp_path / "o.safetensors")
    assert table.code == 0 and "training state: none" in table.out and "no-checksums" in table.out


def test_integrity_failure_exits_1_and_names_the_tensor(tmp_path, cli):
    safetensors_format.write(training_checkpoint(), tmp_path / "t.safetensors")
    raw = bytearray((tmp_path / "t.safetensors").read_bytes())
    n = int.from_bytes(raw[:8], "little")
    begin = json.loads(raw[8 : 8 + n])["norm.bias"]["data_offsets"][0]
    raw[8 + n + begin] ^= 0x01
    (tmp_path / "t.safetensors").write_bytes(bytes(raw))
    table = cli("inspect", tmp_path / "t.safetensors")
    assert table.code == 1
    assert "FAILED" in table.out and "'norm.bias'" in table.out
    info = json.loads(cli("inspect", tmp_path / "t.safetensors", "--json").out)
    assert info["integrity"]["status"] == "failed" and "'norm.bias'" in info["integrity"]["message"]


def test_torch_file_integrity(tmp_path, cli):
    torch = pytest.importorskip("torch")
    import zipfile

    torch.save({"a.weight": torch.arange(256, dtype=torch.float32), "b": torch.ones(4)}, tmp_path / "plain.pt")
    assert json.loads(cli("inspect", tmp_path / "plain.pt", "--json").out)["integrity"]["status"] == "no-checksums"
    assert cli("convert", tmp_path / "plain.pt", tmp_path / "ours.pt").code == 0
    assert json.loads(cli("inspect", tmp_path / "ours.pt", "--json").out)["integrity"]["status"] == "ok"

    raw = bytearray((tmp_path / "ours.pt").read_bytes())
    with zipfile.ZipFile(tmp_path / "ours.pt") as z:
        info = next(i for i in z.infolist() if i.filename.endswith("/data/0"))
    name_len, extra_len = int.from_bytes(raw[info.header_offset + 26 : info.header_offset + 28], "little"), \
        int.from_bytes(raw[info.header_offset + 28 : info.header_offset + 30], "little")
    raw[info.header_offset + 30 + name_len + extra_len + 40] ^= 0x10
    (tmp_path / "bad.pt").write_bytes(bytes(raw))
    result = cli("inspect", tmp_path / "bad.pt")
    assert result.code == 1 and "FAILED" in result.out and "'a.weight'" in result.out
    converted = cli("convert", tmp_path / "bad.pt", tmp_path / "never.safetensors")
    assert converted.code == 2 and "'a.weight'" in converted.err
    assert not (tmp_path / "never.safetensors").exists()


def test_unreadable_file_is_a_one_line_error(tmp_path, cli, assert_clean_failure):
    (tmp_path / "x.safetensors").write_bytes(b"\xff" * 7)
    assert_clean_failure(cli("inspect", tmp_path / "x.safetensors"), names=("x.safetensors",))
