"""The reference a worker caches follows the content of its files: a checkpoint rewritten in
place between two checks in one process gives the second check the new reference."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import toy_models

from portability.api import check
from portability.harness import route_run
from portability.harness.evaluate import Subject
from portability.harness.reference_cache import BoundedCache, content_identity
from portability.harness.route_run import RouteJob, run_bundle

SPEC = "toy_models:mlp"


def mean_output(predict) -> float:
    """A task metric that moves with every weight: the mean of the outputs on a fixed batch."""
    return float(predict(toy_models.inputs())["output"].mean())


def _scaled_state(scale: float) -> dict[str, torch.Tensor]:
    return {k: v * scale for k, v in toy_models.mlp().state_dict().items()}


def _mean_with(scale: float):
    """``mean_output`` of the toy model with its weights scaled (to float32 rounding)."""
    model = toy_models.mlp()
    model.load_state_dict(_scaled_state(scale))
    with torch.no_grad():
        return pytest.approx(float(model(torch.from_numpy(toy_models.inputs()["x"])).numpy().mean()), rel=1e-6)


def _save(path, scale: float) -> None:
    with open(path, "wb") as f:  # through a file object, as the rewrite below
        torch.save(_scaled_state(scale), f)


def _rewrite_in_place(path, scale: float) -> None:
    before = path.stat()
    with open(path, "r+b") as f:  # same inode, same size: only the bytes and the times change
        torch.save(_scaled_state(scale), f)
        f.truncate()
    after = path.stat()
    assert (after.st_ino, after.st_size) == (before.st_ino, before.st_size)


def test_a_second_library_call_sees_the_checkpoint_rewritten_in_place(tmp_path):
    ckpt = tmp_path / "model.pt"
    _save(ckpt, 1.0)
    np.savez(tmp_path / "x.npz", **toy_models.inputs())
    options = dict(model=SPEC, inputs=tmp_path / "x.npz", routes="torch->safetensors", workers=0,
                   workdir=tmp_path / "work", metric=mean_output)
    first = check(ckpt, **options).routes[0]
    assert first.recoverability.reference == _mean_with(1.0)
    _rewrite_in_place(ckpt, 0.5)
    second = check(ckpt, **options).routes[0]
    assert second.status == "pass"
    assert second.recoverability.reference == _mean_with(0.5)
    assert abs(second.recoverability.reference - first.recoverability.reference) > 1e-3


def test_the_worker_cache_alone_keys_by_content(tmp_path):
    """Without the per-check clearing: two bundles in one worker, the file rewritten between."""
    ckpt = tmp_path / "model.pt"
    _save(ckpt, 1.0)
    np.savez(tmp_path / "x.npz", **toy_models.inputs())
    subject = Subject(label=str(ckpt), model=SPEC, checkpoint=str(ckpt), inputs=str(tmp_path / "x.npz"),
                      metric=mean_output)
    job = RouteJob(subject, ("torch", "safetensors"), workdir=str(tmp_path))
    route_run.clear_caches()
    (first,) = run_bundle([job])
    _rewrite_in_place(ckpt, 2.0)
    (second,) = run_bundle([job])
    assert first.recoverability.reference == _mean_with(1.0)
    assert second.recoverability.reference == _mean_with(2.0)


def test_the_cache_is_bounded_and_drops_the_least_recently_used():
    cache: BoundedCache[str] = BoundedCache(2)
    cache.put(("a",), "A")
    cache.put(("b",), "B")
    assert cache.get(("a",)) == "A"  # now the most recently used
    cache.put(("c",), "C")
    assert (cache.get(("a",)), cache.get(("b",)), cache.get(("c",)), len(cache)) == ("A", None, "C", 2)
    cache.clear()
    assert len(cache) == 0


def test_content_identity_of_a_directory_covers_each_file(tmp_path):
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "a.bin").write_bytes(b"1")
    before = content_identity(str(tmp_path / "d"))
    (tmp_path / "d" / "b.bin").write_bytes(b"2")
    assert content_identity(str(tmp_path / "d")) != before
    assert content_identity(None) == ()
    assert content_identity(str(tmp_path / "missing")) == ((str(tmp_path / "missing"), None),)
