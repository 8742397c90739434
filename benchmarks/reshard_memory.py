"""Peak memory of re-sharding a safetensors file, against the CLI's own start-up in the same run.

Streaming means the conversion holds far less than one shard: each tensor's bytes go file
to file. This writes a checkpoint of ``--megabytes`` MB (12 tensors), re-shards it into
shards of ``--shard-mb`` MB with ``portability convert``, and reports the peak RSS of that
process against the peak RSS of the same CLI converting a tiny checkpoint (interpreter,
imports and buffers: the baseline), as a fraction of the largest shard.

Usage: python benchmarks/reshard_memory.py [--megabytes 300] [--shard-mb 160]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

MB = 2**20
# Linux carries the parent's peak RSS into a child across fork and exec, so the CLI runs
# under a small intermediate interpreter that reports its child's peak alone.
MEASURE = """
import resource, subprocess, sys
subprocess.run([sys.executable, "-m", "portability.cli", *sys.argv[1:]], check=True, stdout=subprocess.DEVNULL)
print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024)
"""


def peak_rss(args: list[str]) -> int:
    """Run ``portability ARGS``; its own peak RSS in bytes."""
    done = subprocess.run([sys.executable, "-c", MEASURE, *args], capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"failed: portability {' '.join(args)}: {done.stderr[-500:]}")
    return int(done.stdout.split()[-1])


def main(argv: list[str] | None = None) -> int:
    """Print both peaks, and the re-shard's memory beyond start-up per largest shard."""
    from portability.adapters.safetensors import format as safetensors_format
    from portability.core.checkpoint import Checkpoint

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--megabytes", type=int, default=300)
    parser.add_argument("--shard-mb", type=int, default=160)
    opts = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="portability-reshard-") as tmp:
        work = Path(tmp)
        per = opts.megabytes * MB // 12 // 4
        big = {f"block.{i}.weight": np.full(per, i, dtype=np.float32) for i in range(12)}
        safetensors_format.write(Checkpoint(tensors=big), work / "big.safetensors")
        safetensors_format.write(Checkpoint(tensors={"w": np.ones(16, np.float32)}), work / "tiny.safetensors")
        del big
        baseline = peak_rss(["convert", str(work / "tiny.safetensors"), str(work / "tiny-shards"),
                             "--shard-size", "1KB"])
        peak = peak_rss(["convert", str(work / "big.safetensors"), str(work / "shards"),
                         "--shard-size", str(opts.shard_mb * 10**6)])
        largest = max(p.stat().st_size for p in (work / "shards").glob("*.safetensors"))
    held = peak - baseline
    print(f"re-shard {opts.megabytes} MB into {opts.shard_mb} MB shards: peak RSS {peak / MB:.0f} MB; "
          f"CLI baseline (tiny convert) {baseline / MB:.0f} MB; largest shard {largest / MB:.0f} MB")
    print(f"held beyond start-up: {held / MB:.0f} MB = {held / largest:.2f}x the largest shard "
          f"({'met' if held < largest else 'NOT met'}: under one shard)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
