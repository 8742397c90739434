"""Damage to inflict on checkpoints, and the training worker the campaign kills.

The damage functions work on files as bytes and know just enough of each
layout to aim: the middle of a tensor's data, the JSON header of a safetensors
file, the pickle of a torch zip archive. The worker (``python -m
portability.faults.injection ...``) trains a recipe with checkpoints and can
pause inside a step or inside a checkpoint write, so the campaign can SIGKILL
it exactly there.
"""

from __future__ import annotations

import argparse
import random
import shutil
import struct
import sys
import time
import zipfile
from pathlib import Path

from portability.core.atomic import TMP_MARKER
from portability.errors import FormatError

HOLD_MARKER = "HOLDING"


def truncate_file(path: Path, keep_fraction: float = 0.5) -> int:
    """Cut a file to a fraction of its size, as a torn write would; returns the new size."""
    size = path.stat().st_size
    new = int(size * keep_fraction)
    with open(path, "r+b") as f:
        f.truncate(new)
    return new


def flip_bit(path: Path, offset: int, bit: int = 0) -> None:
    """Invert one bit of a file in place."""
    with open(path, "r+b") as f:
        f.seek(offset)
        byte = f.read(1)[0]
        f.seek(offset)
        f.write(bytes([byte ^ (1 << bit)]))


def _zip_entry_span(path: Path, choose) -> tuple[int, int]:
    """``(start, length)`` of the stored bytes of the zip member picked by ``choose(infos)``."""
    with zipfile.ZipFile(path) as z:
        info = choose(z.infolist())
    with open(path, "rb") as f:
        f.seek(info.header_offset)
        local = f.read(30)
    name_len, extra_len = struct.unpack("<HH", local[26:30])
    return info.header_offset + 30 + name_len + extra_len, info.compress_size


def tensor_data_span(path: Path) -> tuple[int, int]:
    """``(start, length)`` of the largest tensor's bytes in a torch or safetensors file."""
    if zipfile.is_zipfile(path):
        return _zip_entry_span(path, lambda infos: max((i for i in infos if "/data/" in i.filename),
                                                       key=lambda i: i.compress_size))
    from portability.adapters.safetensors.header import parse_header

    header = parse_header(path)
    entry = max(header.entries, key=lambda e: e.end - e.begin)
    return header.data_start + entry.begin, entry.end - entry.begin


def header_span(path: Path) -> tuple[int, int]:
    """``(start, length)`` of the metadata: a safetensors JSON header or a torch pickle."""
    if zipfile.is_zipfile(path):
        start, length = _zip_entry_span(path, lambda infos: next(i for i in infos
                                                                 if i.filename.endswith("/data.pkl")))
        return start + 2, length - 2  # past the PROTO opcode
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
    return 8, n


def flip_in_span(path: Path, span: tuple[int, int], seed: int) -> int:
    """Flip one seeded bit inside ``span``; returns the file offset."""
    rng = random.Random(seed)
    start, length = span
    offset = start + rng.randrange(length)
    flip_bit(path, offset, rng.randrange(8))
    return offset


def largest_file(path: Path) -> Path:
    """The checkpoint file itself, or the largest file of a checkpoint directory."""
    if path.is_file():
        return path
    return max((p for p in path.iterdir() if p.is_file()), key=lambda p: p.stat().st_size)


def remove_shard(directory: Path) -> Path:
    """Delete the second shard of a sharded safetensors checkpoint; returns its path.

    Raises:
        FormatError: the checkpoint has fewer than two shards.
    """
    shards = sorted(p for p in directory.glob("model-*-of-*.safetensors"))
    if len(shards) < 2:
        raise FormatError(f"{directory}: not a sharded checkpoint (found {len(shards)} shard(s))")
    shards[1].unlink()
    return shards[1]


def plant_stale_temporary(directory: Path, source: Path, step: int) -> Path:
    """Leave what a crash mid-write leaves: a torn hidden temporary for a later step."""
    stale = directory / f".step-{step:06d}{TMP_MARKER}4242-deadbeef{source.suffix}"
    data = source.read_bytes()
    stale.write_bytes(data[: len(data) // 2])
    return stale


def strip_optimizer(path: Path, fmt: str) -> None:
    """Rewrite a checkpoint, intact and checksummed, but without its optimizer state."""
    from portability.training.driver import load_checkpoint, save_checkpoint

    ckpt = load_checkpoint(path)
    ckpt.training.optimizer = None
    save_checkpoint(ckpt, path, fmt)


def _hold(what: str, step: int) -> None:
    print(f"{HOLD_MARKER} {what} {step}", flush=True)
    time.sleep(600)


def worker(argv: list[str]) -> int:
    """Train one recipe with checkpoints, optionally pausing where the campaign kills it."""
    p = argparse.ArgumentParser(prog="python -m portability.faults.injection")
    p.add_argument("--recipe", required=True, help="a task name or a recipe reference MODULE:FUNCTION")
    p.add_argument("--dir", type=Path, required=True)
    p.add_argument("--steps", type=int, required=True)
    p.add_argument("--every", type=int, default=5)
    p.add_argument("--fmt", default="torch")
    p.add_argument("--shard-size", type=int, default=4096)
    p.add_argument("--hold-mid-step", type=int, help="pause inside this step, after backward, before the update")
    p.add_argument("--hold-in-write", type=int, help="pause inside this step's checkpoint write, before publishing")
    args = p.parse_args(argv)

    from portability.training.driver import TrainConfig, train
    from portability.training.tasks import get_task

    def mid_step(step: int) -> None:
        if step == args.hold_mid_step:
            _hold("mid-step", step)

    def before_publish(step: int, tmp: Path) -> None:
        if step == args.hold_in_write:
            _hold("in-write", step)

    trainable = get_task(args.recipe).make(mid_step=mid_step)
    train(trainable, TrainConfig(args.steps, args.every, args.dir, args.fmt, args.shard_size),
          before_publish=before_publish)
    return 0


def copy_run(src: Path, dst: Path) -> None:
    """Copy a run's checkpoint directory, so several faults can share one training run."""
    shutil.copytree(src, dst)


if __name__ == "__main__":
    sys.exit(worker(sys.argv[1:]))
