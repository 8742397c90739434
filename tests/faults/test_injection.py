"""Damage aimed at each part of a checkpoint is never loaded silently."""

from __future__ import annotations

import copy
import shutil

import pytest

pytest.importorskip("torch")
from portability.errors import FormatError, IntegrityError, UnsafeCheckpointError
from portability.faults import injection as fi
from portability.training.driver import (
    TrainConfig,
    checkpoint_path,
    content_digest,
    load_checkpoint,
    save_checkpoint,
    train,
)
from portability.training.tasks import get_task


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    trainable = get_task("mlp").make()
    train(trainable, TrainConfig(2))
    state = trainable.capture()
    root = tmp_path_factory.mktemp("saved")
    paths = {fmt: save_checkpoint(copy.deepcopy(state), checkpoint_path(root / fmt, 2, fmt), fmt)
             for fmt in ("torch", "safetensors")}
    return paths, content_digest(load_checkpoint(paths["torch"]))


@pytest.mark.parametrize("fmt", ["torch", "safetensors"])
def test_header_bit_flips_raise_or_change_nothing(tmp_path, saved, fmt):
    """Forty seeded flips in the metadata: each is refused, or the loaded state is bit-identical."""
    paths, _ = saved
    refused = 0
    for seed in range(40):
        victim = tmp_path / f"{seed}{paths[fmt].suffix}"
        shutil.copy(paths[fmt], victim)
        fi.flip_in_span(victim, fi.header_span(victim), seed)
        try:
            ckpt = load_checkpoint(victim)
        except (FormatError, IntegrityError, UnsafeCheckpointError):  # a mangled global name is refused
            refused += 1
            continue
        original = load_checkpoint(paths[fmt])
        assert content_digest(ckpt) == content_digest(original), f"seed {seed} loaded changed state"
    assert refused >= 36, f"only {refused}/40 header flips were refused"


@pytest.mark.parametrize("fmt", ["torch", "safetensors"])
def test_tensor_data_bit_flips_are_integrity_errors(tmp_path, saved, fmt):
    paths, _ = saved
    for seed in range(5):
        victim = tmp_path / f"{seed}{paths[fmt].suffix}"
        shutil.copy(paths[fmt], victim)
        fi.flip_in_span(victim, fi.tensor_data_span(victim), seed)
        with pytest.raises(IntegrityError, match="checksum mismatch"):
            load_checkpoint(victim)


@pytest.mark.parametrize("fmt", ["torch", "safetensors"])
@pytest.mark.parametrize("keep", [0.0, 0.01, 0.5, 0.99])
def test_truncated_files_are_refused(tmp_path, saved, fmt, keep):
    paths, _ = saved
    victim = tmp_path / f"cut{paths[fmt].suffix}"
    shutil.copy(paths[fmt], victim)
    fi.truncate_file(victim, keep)
    with pytest.raises((FormatError, IntegrityError)):
        load_checkpoint(victim)


def test_remove_shard_needs_a_sharded_checkpoint(tmp_path):
    with pytest.raises(FormatError, match="not a sharded checkpoint"):
        fi.remove_shard(tmp_path)
