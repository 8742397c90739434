"""Throughput and peak memory of `portability convert`, against baselines in the same run.

Part 1, at one size (--gb, default 1 GiB of 64 fp32 tensors), each step in its own
process so peak RSS is that process's alone, best of --repeat runs (interleaved):

- plain copy of the same bytes (the floor for any conversion), and the same copy
  followed by fsync (the floor for a durable one: convert fsyncs before renaming),
- the naive route: torch.load -> safetensors.torch.save_file (run once),
- portability convert torch -> safetensors, and safetensors -> safetensors re-sharded
  (256 MiB), each twice: durable (the default: fsync before publishing, compared with
  the durable copy) and with ``--no-fsync`` (page-cache speed, compared with the plain
  copy); each pair does the same durability work as its baseline,
- the whole CLI command against `cp` + `sync` of the same file, end to end (interpreter
  start-up and imports included: what a user waits for),
- reading the safetensors file with and without checksum verification (best of 9, interleaved:
  a warm read of 1 GiB takes a quarter of a second, so single runs swing by 10%).

Part 2, peak RSS against checkpoint size (--sizes, default 0.25,1,4 GiB): torch ->
safetensors, safetensors -> torch, re-sharding and ``inspect`` (which verifies every
checksum). Memory is flat when the rows agree within 50 MB.

The machines are shared and noisy: only ratios within one run mean much.
Usage: python benchmarks/convert.py [--gb 1] [--sizes 0.25,1,4] [--repeat 3] [--keep DIR]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

GENERATE = """
import sys, torch
n_bytes = int(float(sys.argv[2]) * 2**30)
count = int(sys.argv[3])
tensor_bytes = max(4096, n_bytes // count)
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
# Timed scripts print "elapsed <seconds>" for their work alone (after imports), so
# throughput is not diluted by interpreter and library start-up; the end-to-end
# time (start-up included) is reported beside it.
COPY = """
import shutil, sys, time
start = time.perf_counter()
shutil.copyfile(sys.argv[1], sys.argv[2])
print("elapsed", time.perf_counter() - start)
"""
COPY_FSYNC = """
import os, shutil, sys, time
start = time.perf_counter()
shutil.copyfile(sys.argv[1], sys.argv[2])
with open(sys.argv[2], "rb") as f:
    os.fsync(f.fileno())
print("elapsed", time.perf_counter() - start)
"""
CONVERT = """
import sys, time
from portability.core.conversion import convert
# Library start-up, as for the other timed scripts: the adapters import on first use.
from portability.core.formats import load_adapter
import portability.adapters.torch.streaming, portability.adapters.safetensors.format
for name in ("torch", "safetensors"):
    load_adapter(name)
start = time.perf_counter()
convert(sys.argv[1], sys.argv[2], to=sys.argv[3], shard_size=sys.argv[4] or None, durable=sys.argv[5] == "1")
print("elapsed", time.perf_counter() - start)
"""
READ = """
import sys, time
from portability.core.formats import ReadOptions
from portability.adapters.safetensors import format as safetensors_format
from portability.core.tensors import as_array
start = time.perf_counter()
ckpt = safetensors_format.read(sys.argv[1], ReadOptions(verify=sys.argv[2] == "1"))
for name in ckpt.canonical_names():
    as_array(ckpt.tensors[name])  # a read materialises each tensor as a numpy array
print("elapsed", time.perf_counter() - start)
"""
CLI = "import sys; from portability.cli import main; main()"
TO_ST = "convert torch -> safetensors"
CLI_CONVERT = "CLI: portability convert torch -> safetensors"
CP_SYNC = "cp + sync of the file (shell commands)"
RESHARD = "convert safetensors -> sharded (256MiB)"
NO_FSYNC = " --no-fsync"
READ_REPEATS = 9


def run(args: list[str]) -> tuple[float, float, float]:
    """Run a command; return (seconds, peak RSS in MB, seconds of work) of that process alone.

    The work time is what the process printed as ``elapsed``, else the whole run.
    """
    os.sync()  # the previous step's dirty pages must not be written back during this one
    start = time.perf_counter()
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, text=True)
    out = proc.stdout.read() if proc.stdout else ""
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"benchmark step failed: {' '.join(args)}")
    work = [float(line.split()[1]) for line in out.splitlines() if line.startswith("elapsed ")]
    return seconds, usage.ru_maxrss / 1024, work[0] if work else seconds


def drop(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path)
    elif path.exists():
        path.unlink()


Result = tuple[float, float, float]  # end-to-end seconds, peak RSS MB, work seconds


def best(results: dict[str, Result], label: str, measured: Result) -> None:
    """Keep the fastest times and the highest peak RSS seen for a step."""
    old = results.get(label, (float("inf"), 0.0, float("inf")))
    results[label] = (min(old[0], measured[0]), max(old[1], measured[1]), min(old[2], measured[2]))


ReadTimes = dict[str, list[float]]  # the work seconds of every read run, by step


def throughput(work: Path, src: Path, repeat: int) -> tuple[dict[str, Result], float, ReadTimes]:
    """Part 1: every step at one size; returns the results, the checkpoint size in MB and
    every read's work time (the reads' spread shows how far one ratio can be trusted)."""
    py = sys.executable
    cli = [py, "-c", CLI]
    size_mb = src.stat().st_size / 2**20
    ours = work / "ours.safetensors"
    steps = [
        ("plain copy", [py, "-c", COPY, str(src), str(work / "copy.pt")], work / "copy.pt"),
        ("plain copy + fsync (durable floor)", [py, "-c", COPY_FSYNC, str(src), str(work / "copy.pt")],
         work / "copy.pt"),
        (TO_ST, [py, "-c", CONVERT, str(src), str(ours), "safetensors", "", "1"], ours),
        (RESHARD, [py, "-c", CONVERT, str(work / "keep.safetensors"), str(work / "sharded"), "safetensors",
                   "256MiB", "1"], work / "sharded"),
        (TO_ST + NO_FSYNC, [py, "-c", CONVERT, str(src), str(ours), "safetensors", "", "0"], ours),
        (RESHARD + NO_FSYNC, [py, "-c", CONVERT, str(work / "keep.safetensors"), str(work / "sharded"),
                              "safetensors", "256MiB", "0"], work / "sharded"),
        (CLI_CONVERT, cli + ["convert", str(src), str(ours)], ours),
        (CP_SYNC, ["sh", "-c", 'cp "$0" "$1" && sync "$1"', str(src), str(work / "copy.pt")], work / "copy.pt"),
    ]
    results: dict[str, Result] = {}
    run(cli + ["convert", str(src), str(work / "keep.safetensors")])
    for _ in range(repeat):
        for label, cmd, cleanup in steps:
            best(results, label, run(cmd))
            drop(cleanup)
    results["naive torch.load -> save_file (once)"] = run(
        [py, "-c", NAIVE, str(src), str(work / "naive.safetensors")])
    drop(work / "naive.safetensors")
    reads = (("read safetensors, no verification", "0"), ("read safetensors, checksums verified", "1"))
    read_times: ReadTimes = {label: [] for label, _ in reads}
    for _ in range(READ_REPEATS):
        for label, flag in reads:
            measured = run([py, "-c", READ, str(work / "keep.safetensors"), flag])
            best(results, label, measured)
            read_times[label].append(measured[2])
    drop(work / "keep.safetensors")
    return results, size_mb, read_times


def memory_rows(work: Path, sizes: list[float], tensors: int) -> list[tuple[float, dict[str, float]]]:
    """Part 2: peak RSS of each streaming step at each size (each checkpoint removed after)."""
    py = sys.executable
    cli = [py, "-c", CLI]
    rows = []
    for gib in sizes:
        src = work / f"rss-{gib}.pt"
        run([py, "-c", GENERATE, str(src), str(gib), str(tensors)])
        st, back, sharded = work / f"rss-{gib}.safetensors", work / f"rss-{gib}-back.pt", work / f"rss-{gib}-sh"
        row = {
            "torch -> safetensors": run(cli + ["convert", str(src), str(st)])[1],
            "safetensors -> torch": run(cli + ["convert", str(st), str(back)])[1],
            "re-shard 256MiB": run(cli + ["convert", str(st), str(sharded), "--to", "safetensors",
                                          "--shard-size", "256MiB"])[1],
            "inspect (verifies)": run(cli + ["inspect", str(st), "--json"])[1],
        }
        for path in (src, st, back, sharded):
            drop(path)
        rows.append((gib, row))
        print(f"  {gib:g} GiB: " + ", ".join(f"{k} {v:.0f} MB" for k, v in row.items()), flush=True)
    return rows


def report(results: dict[str, Result], size_mb: float, repeat: int, read_times: ReadTimes) -> None:
    copy_s = results["plain copy"][2]
    durable_s = results["plain copy + fsync (durable floor)"][2]
    print(f"\ncheckpoint: {size_mb:.0f} MB; times are best of {repeat} (reads: best of {READ_REPEATS}). 'work' is the")
    print("operation alone (after imports); 'end-to-end' adds interpreter and library start-up.")
    print(f"{'step':50} {'work MB/s':>10} {'x copy':>7} {'x durable':>10} {'end-to-end s':>13} {'peak RSS MB':>12}")
    for label, (secs, rss, work) in results.items():
        print(f"{label:50} {size_mb / work:10.0f} {copy_s / work:7.2f} {durable_s / work:10.2f} {secs:13.2f} "
              f"{rss:12.0f}")
    plain = results["read safetensors, no verification"][2]
    verified = results["read safetensors, checksums verified"][2]
    print(f"\nchecksum verification costs {100 * (verified - plain) / plain:+.1f}% of a warm read (target <= 5%)")
    plain_runs = read_times["read safetensors, no verification"]
    verified_runs = read_times["read safetensors, checksums verified"]
    median_cost = 100 * (statistics.median(verified_runs) / statistics.median(plain_runs) - 1)
    print(f"  (best of {READ_REPEATS} each; the medians give {median_cost:+.1f}%, and the unverified read alone "
          f"ranged {min(plain_runs):.3f}-{max(plain_runs):.3f} s over its runs)")
    for label in (TO_ST, RESHARD):
        durable_ratio = durable_s / results[label][2]
        fast_ratio = copy_s / results[label + NO_FSYNC][2]
        print(f"{label}: durable {durable_ratio:.2f}x the durable copy, --no-fsync {fast_ratio:.2f}x the plain "
              f"copy (durable vs plain copy: {copy_s / results[label][2]:.2f}x); target >= 0.80x: "
              f"{'met' if min(durable_ratio, fast_ratio) >= 0.8 else 'NOT met'}")
    # What a user waits for: the whole command, interpreter and imports included, against
    # the shell's own durable copy of the same file.
    e2e = results[CP_SYNC][0] / results[CLI_CONVERT][0]
    print(f"end to end: `portability convert` {results[CLI_CONVERT][0]:.2f} s, `cp` + `sync` "
          f"{results[CP_SYNC][0]:.2f} s: {e2e:.2f}x (in-process durable ratio above: "
          f"{durable_s / results[TO_ST][2]:.2f}x); target >= 0.80x: {'met' if e2e >= 0.8 else 'NOT met'}")
    rss = results[TO_ST][1]
    print(f"{TO_ST} peak RSS {rss:.0f} MB, target < 300 MB: {'met' if rss < 300 else 'NOT met'}")


def report_rows(rows: list[tuple[float, dict[str, float]]]) -> None:
    if not rows:
        return
    steps = list(rows[0][1])
    print(f"\n{'peak RSS MB by size':24}" + "".join(f"{s:>24}" for s in steps))
    for gib, row in rows:
        print(f"{f'{gib:g} GiB':24}" + "".join(f"{row[s]:24.0f}" for s in steps))
    for step in steps:
        values = [row[step] for _, row in rows]
        spread = max(values) - min(values)
        print(f"{step}: spread {spread:.0f} MB over sizes, max {max(values):.0f} MB "
              f"({'flat' if spread <= 50 and max(values) < 300 else 'NOT flat'}: within 50 MB, under 300 MB)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gb", type=float, default=1.0, help="checkpoint size in GiB for the throughput part")
    parser.add_argument("--sizes", default="0.25,1,4", help="GiB sizes for the RSS rows ('' skips them)")
    parser.add_argument("--tensors", type=int, default=64, help="tensors per checkpoint")
    parser.add_argument("--repeat", type=int, default=3, help="best-of-N for the timed steps")
    parser.add_argument("--keep", type=Path, help="work directory to use and keep")
    opts = parser.parse_args()
    work = opts.keep or Path(tempfile.mkdtemp(prefix="portability-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    src = work / "model.pt"
    try:
        print(f"generating {opts.gb} GiB checkpoint in {work} ...", flush=True)
        run([sys.executable, "-c", GENERATE, str(src), str(opts.gb), str(opts.tensors)])
        results, size_mb, read_times = throughput(work, src, opts.repeat)
        drop(src)
        sizes = [float(s) for s in opts.sizes.split(",") if s.strip()]
        print(f"peak RSS rows at {sizes} GiB ...", flush=True)
        rows = memory_rows(work, sizes, opts.tensors)
        report(results, size_mb, opts.repeat, read_times)
        report_rows(rows)
    finally:
        if opts.keep is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
