"""Conversions stream: a checkpoint larger than the memory the process may use converts.

The limit is real: ``RLIMIT_AS`` (address space) is set in the child before it
starts, at 400 MiB (the CLI peaks at about 310 MB of address space here: the
interpreter, numpy, typer, a 64 MiB hashing window and the thread stacks),
while the checkpoint is 600 MiB. Allocating the checkpoint's size under the same
limit fails, which shows the limit binds.
"""

from __future__ import annotations

import resource
import subprocess
import sys

import numpy as np
import pytest
import torch

from portability.core.conversion import read_checkpoint
from portability.core.tensors import as_array

LIMIT = 400 * 2**20
TENSORS = 40
ROWS = 3840  # 3840 x 1024 fp32 = 15 MiB per tensor, 600 MiB in all


def _limited(*args: str) -> subprocess.CompletedProcess:
    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (LIMIT, LIMIT))

    return subprocess.run([sys.executable, *args], preexec_fn=limit, capture_output=True, text=True,
                          env={"OPENBLAS_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"}, timeout=600)


@pytest.mark.slow
def test_a_checkpoint_larger_than_the_memory_limit_converts_both_ways(tmp_path):
    src, out, back = tmp_path / "big.pt", tmp_path / "big.safetensors", tmp_path / "back.pt"
    generator = torch.Generator().manual_seed(0)
    original = {f"layer{i}.weight": torch.randn(ROWS, 1024, generator=generator) for i in range(TENSORS)}
    torch.save(original, src)
    assert src.stat().st_size > LIMIT * 1.4
    try:
        refused = _limited("-c", f"bytearray({src.stat().st_size})")
        assert refused.returncode != 0 and "MemoryError" in refused.stderr

        for args in (["convert", str(src), str(out)], ["convert", str(out), str(back)], ["inspect", str(back)]):
            done = _limited("-m", "portability.cli", *args)
            assert done.returncode == 0, (args, done.stderr[-2000:])
        assert "integrity: ok (40 tensors match their checksums)" in done.stdout

        converted, _ = read_checkpoint(out)
        loaded = torch.load(back, weights_only=True, mmap=True)
        assert list(converted.tensors) == list(loaded) == list(original)
        for name, tensor in original.items():
            expected = tensor.numpy()
            assert np.array_equal(as_array(converted.tensors[name]).view(np.uint32), expected.view(np.uint32)), name
            assert np.array_equal(loaded[name].numpy().view(np.uint32), expected.view(np.uint32)), name
    finally:
        for path in (src, out, back):
            path.unlink(missing_ok=True)
