"""The training driver: atomic checksummed checkpoints, the resume loader and its refusals."""

from __future__ import annotations

import numpy as np
import pytest

from portability.core.formats import WriteOptions, load_adapter
from portability.errors import FormatError, IntegrityError
from portability.training.driver import (
    DIGEST_KEY,
    TrainConfig,
    checkpoint_path,
    find_latest_valid,
    load_checkpoint,
    save_checkpoint,
    train,
)

torch = pytest.importorskip("torch")
from portability.training.tasks import get_task


@pytest.fixture(scope="module")
def toy_state():
    trainable = get_task("toy-mlp").make()
    train(trainable, TrainConfig(3))
    return trainable.capture()


@pytest.mark.parametrize("fmt", ["torch", "safetensors", "safetensors-sharded"])
def test_train_writes_a_checkpoint_every_k_steps_that_loads_intact(tmp_path, fmt):
    result = train(get_task("toy-mlp").make(), TrainConfig(7, 3, tmp_path, fmt, shard_size=2048))
    assert [p.name for p in result.checkpoints] == [checkpoint_path(tmp_path, s, fmt).name for s in (3, 6)]
    assert sorted(result.losses) == list(range(1, 8))
    ckpt = load_checkpoint(result.checkpoints[-1])
    # 512 training rows in batches of 32: 16 batches an epoch, so step 6 stands in epoch 0
    assert ckpt.training.global_step == 6 and ckpt.training.data_position == {"epoch": 0, "batch": 6}
    assert {"python", "numpy", "torch"} <= set(ckpt.training.rng)
    assert ckpt.training.optimizer.state and ckpt.metadata[DIGEST_KEY]
    if fmt == "safetensors-sharded":
        assert len(list(result.checkpoints[-1].glob("model-*-of-*.safetensors"))) > 1
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_loader_refuses_a_checkpoint_without_optimizer_state(tmp_path, toy_state):
    import copy

    state = copy.deepcopy(toy_state)
    state.training.optimizer = None
    path = save_checkpoint(state, checkpoint_path(tmp_path, 3, "torch"), "torch")
    with pytest.raises(FormatError, match="no optimizer state.*cannot resume"):
        load_checkpoint(path)
    assert load_checkpoint(path, require_optimizer=False).training.global_step == 3


def test_loader_refuses_a_checkpoint_it_cannot_prove_intact(tmp_path, toy_state):
    path = tmp_path / "plain.safetensors"
    load_adapter("safetensors").write(toy_state, path, WriteOptions())  # no content digest
    with pytest.raises(IntegrityError, match="no checksums or content digest"):
        load_checkpoint(path)


def test_content_digest_catches_a_changed_value_the_format_checksums_miss(tmp_path, toy_state):
    import copy

    good = save_checkpoint(copy.deepcopy(toy_state), tmp_path / "good.safetensors", "safetensors")
    ckpt = load_checkpoint(good)
    ckpt.training.optimizer.param_groups[0]["lr"] *= 10  # a JSON value: no per-tensor checksum covers it
    bad = tmp_path / "bad.safetensors"
    load_adapter("safetensors").write(ckpt, bad, WriteOptions())  # keeps the old digest in the metadata
    load_adapter("safetensors").read(bad)  # the format alone accepts it
    with pytest.raises(IntegrityError, match="content digest mismatch"):
        load_checkpoint(bad)


def test_scan_skips_damaged_checkpoints_and_stale_temporaries(tmp_path):
    train(get_task("toy-mlp").make(), TrainConfig(6, 2, tmp_path, "torch"))
    newest = checkpoint_path(tmp_path, 6, "torch")
    newest.write_bytes(newest.read_bytes()[:100])
    stale = tmp_path / ".step-000008.portability-tmp-1-abcd.pt"
    stale.write_bytes(b"partial")
    scan = find_latest_valid(tmp_path)
    assert scan.latest_step == 4 and scan.latest is not None
    assert [(r.step, r.error_type) for r in scan.rejected] == [(6, "FormatError")]
    assert scan.stale_temporaries == [stale] and stale.exists()
    find_latest_valid(tmp_path, remove_stale=True)
    assert not stale.exists()


def test_scan_of_an_empty_or_missing_directory_finds_nothing(tmp_path):
    assert find_latest_valid(tmp_path).latest is None
    assert find_latest_valid(tmp_path / "absent").latest_step == 0


def test_unknown_checkpoint_format_is_a_usage_error(tmp_path):
    from portability.errors import UsageError

    with pytest.raises(UsageError, match="unknown checkpoint format 'onnx'"):
        checkpoint_path(tmp_path, 1, "onnx")


def test_restore_puts_back_weights_optimizer_rng_and_position(toy_state):
    trainable = get_task("toy-mlp").make()
    trainable.restore(toy_state)
    again = trainable.capture()
    assert trainable.step == 3 and (trainable.epoch, trainable.batch) == (0, 3)
    for name, value in toy_state.tensors.items():
        assert np.array_equal(value, again.tensors[name])
    assert np.array_equal(toy_state.training.rng["torch"], again.training.rng["torch"])
