"""`portability convert --overwrite` replaces checkpoints, never other directories."""

from __future__ import annotations

import numpy as np

from portability.adapters.safetensors import format as safetensors_format
from portability.core.checkpoint import Checkpoint


def _source(path):
    safetensors_format.write(Checkpoint(tensors={"w": np.arange(6, dtype=np.float32)}), path)
    return path


def test_overwrite_refuses_a_directory_without_a_checkpoint(tmp_path, cli, assert_clean_failure):
    src = _source(tmp_path / "src.safetensors")
    folder = tmp_path / "notes"
    folder.mkdir()
    (folder / "precious.txt").write_text("keep me")
    result = cli("convert", src, folder, "--to", "safetensors", "--overwrite")
    assert_clean_failure(result, names=("notes", "holds no checkpoint", "--overwrite"))
    assert [p.name for p in folder.iterdir()] == ["precious.txt"]


def test_overwrite_refuses_the_directory_holding_the_source(tmp_path, cli, assert_clean_failure):
    folder = tmp_path / "ckpt"
    folder.mkdir()
    src = _source(folder / "model.safetensors")
    result = cli("convert", src, folder, "--to", "safetensors", "--shard-size", "1KB", "--overwrite")
    assert_clean_failure(result, names=("ckpt", "holds the source", "model.safetensors"))
    assert [p.name for p in folder.iterdir()] == ["model.safetensors"]


def test_overwrite_replaces_a_checkpoint_directory(tmp_path, cli):
    src = _source(tmp_path / "src.safetensors")
    assert cli("convert", src, tmp_path / "out", "--shard-size", "1KB").code == 0
    result = cli("convert", src, tmp_path / "out", "--shard-size", "1KB", "--overwrite")
    assert result.code == 0, result.err
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["model.safetensors"]
