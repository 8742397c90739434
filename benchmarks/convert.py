"""Throughput and peak memory of `portability convert`, against baselines in the same run.

Generates a ~1 GB torch checkpoint (override with --gb), then times, each in its own
process so peak RSS is that process's alone:

- plain copy of the same bytes (the floor for any conversion), and the same copy
  followed by fsync (the floor for a durable one: convert fsyncs before renaming),
- the naive route: torch.load -> safetensors.torch.save_file,
- portability convert torch -> safetensors,
- portability convert safetensors -> safetensors re-sharded (streaming),
- reading the safetensors file with and without checksum verification.

Prints absolute figures and ratios; the machines are shared and noisy, so only the
ratios within one run mean much. Usage: python benchmarks/convert.py [--gb 1.0] [--keep DIR]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

GENERATE = """
import sys, torch
n_bytes = int(float(sys.argv[2]) * 2**30)
tensor_bytes = 16 * 2**20
g = torch.Generator().manual_seed(0)
sd = {}
for i in range(max(1, n_bytes // tensor_bytes)):
    sd[f"layer{i}.weight"] = torch.randn(tensor_bytes // 4 // 1024, 1024, generator=g)
torch.save(sd, sys.argv[1])
"""
NAIVE = """
import sys, torch
from safetensors.torch import save_file
save_file(torch.load(sys.argv[1], weights_only=True), sys.argv[2])
"""
COPY = "import shutil, sys; shutil.copyfile(sys.argv[1], sys.argv[2])"
COPY_FSYNC = """
import os, shutil, sys
shutil.copyfile(sys.argv[1], sys.argv[2])
with open(sys.argv[2], "rb") as f:
    os.fsync(f.fileno())
"""
READ = """
import sys
from portability.core.formats import ReadOptions
from portability.adapters.safetensors import format as safetensors_format
from portability.core.tensors import as_array
ckpt = safetensors_format.read(sys.argv[1], ReadOptions(verify=sys.argv[2] == "1"))
for name in ckpt.canonical_names():
    as_array(ckpt.tensors[name])  # a read materialises each tensor as a numpy array
"""


def run(args: list[str]) -> tuple[float, float]:
    """Run a command; return (seconds, peak RSS in MB) of that process alone."""
    start = time.perf_counter()
    proc = subprocess.Popen(args)
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"benchmark step failed: {' '.join(args)}")
    return seconds, usage.ru_maxrss / 1024


def drop(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path)
    elif path.exists():
        path.unlink()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gb", type=float, default=1.0, help="checkpoint size in GiB")
    parser.add_argument("--keep", type=Path, help="work directory to use and keep")
    opts = parser.parse_args()
    work = opts.keep or Path(tempfile.mkdtemp(prefix="portability-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    py = sys.executable
    cli = [py, "-c", "import sys; from portability.cli import main; main()"]
    src = work / "model.pt"
    print(f"generating {opts.gb} GiB checkpoint in {work} ...", flush=True)
    run([py, "-c", GENERATE, str(src), str(opts.gb)])
    size_mb = src.stat().st_size / 2**20

    results: dict[str, tuple[float, float]] = {}
    steps = [
        ("plain copy", [py, "-c", COPY, str(src), str(work / "copy.pt")], work / "copy.pt"),
        ("plain copy + fsync (durable floor)", [py, "-c", COPY_FSYNC, str(src), str(work / "copy.pt")],
         work / "copy.pt"),
        ("naive torch.load -> save_file", [py, "-c", NAIVE, str(src), str(work / "naive.safetensors")],
         work / "naive.safetensors"),
        ("portability convert torch -> safetensors",
         cli + ["convert", str(src), str(work / "ours.safetensors")], None),
        ("portability convert safetensors -> sharded (256MB)",
         cli + ["convert", str(work / "ours.safetensors"), str(work / "sharded"), "--to", "safetensors", "--shard-size", "256MiB"],
         work / "sharded"),
    ]
    for label, cmd, cleanup in steps:
        results[label] = run(cmd)
        if cleanup is not None:
            drop(cleanup)
        print(f"  {label}: {results[label][0]:.2f} s, peak RSS {results[label][1]:.0f} MB", flush=True)

    # Reads are short and noisy: alternate the two variants and keep each one's best of 5.
    for label, flag in (("read safetensors, no verification", "0"), ("read safetensors, checksums verified", "1")):
        results[label] = (float("inf"), 0.0)
    for _ in range(5):
        for label, flag in (("read safetensors, no verification", "0"), ("read safetensors, checksums verified", "1")):
            secs, rss = run([py, "-c", READ, str(work / "ours.safetensors"), flag])
            results[label] = (min(results[label][0], secs), max(results[label][1], rss))
    for label in ("read safetensors, no verification", "read safetensors, checksums verified"):
        print(f"  {label} (best of 5): {results[label][0]:.2f} s, peak RSS {results[label][1]:.0f} MB", flush=True)

    copy_s, copy_rss = results["plain copy"]
    naive_s, naive_rss = results["naive torch.load -> save_file"]
    print(f"\ncheckpoint: {size_mb:.0f} MB")
    print(f"{'step':52} {'MB/s':>8} {'x copy time':>12} {'x naive time':>13} {'peak RSS MB':>12} {'x naive RSS':>12}")
    for label, (secs, rss) in results.items():
        print(f"{label:52} {size_mb / secs:8.0f} {secs / copy_s:12.2f} {secs / naive_s:13.2f} "
              f"{rss:12.0f} {rss / naive_rss:12.2f}")
    plain, verified = results["read safetensors, no verification"][0], results["read safetensors, checksums verified"][0]
    print(f"\nchecksum verification costs {100 * (verified - plain) / plain:+.1f}% of a read")
    shard_rss = results["portability convert safetensors -> sharded (256MB)"][1]
    bound = 1.5 * 256 * 1.048576 + 300
    print(f"re-shard peak RSS {shard_rss:.0f} MB vs bound 1.5 x largest shard + 300 MB = {bound:.0f} MB: "
          f"{'within' if shard_rss <= bound else 'OVER'}")
    if opts.keep is None:
        shutil.rmtree(work)


if __name__ == "__main__":
    main()
