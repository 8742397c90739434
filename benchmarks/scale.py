"""Wall time and peak memory of ``portability check`` on generated GPT-2-style checkpoints.

For each size (GB of weights), a Hugging Face GPT-2 directory with random weights and
one ``model.safetensors`` is generated (width 1600, 16 heads, as many layers as give
the size), then ``portability check DIR --inputs batch.npz`` runs with default settings
in a subprocess. Printed per route: its wall time and its worker's peak resident set
as a ratio of the checkpoint's bytes (``PORTABILITY_PEAK_LOG``,
``portability.harness.peak_memory``), its verdict; per size: the largest process of
the check (``getrusage`` of the children) as the same ratio, and the check's wall time
over one plain read of the checkpoint (every tensor read into memory once).

Usage: python benchmarks/scale.py [--sizes 0.5,1,2,4] [--dtype float32] [--workdir DIR]
                                  [--max-memory SIZE] [--keep]

Each model is deleted after its check unless ``--keep``. Needs ``transformers``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

WIDTH, HEADS, VOCAB, POSITIONS = 1600, 16, 50257, 1024
CLI = "import sys; from portability.cli import main; sys.exit(main())"


def layers_for(gigabytes: float, width: int = 2) -> int:
    """GPT-2 layers whose parameters take about ``gigabytes`` at ``width`` bytes each
    (embeddings: vocab and positions; per layer: 12 d^2 plus biases and norms)."""
    embed = (VOCAB + POSITIONS) * WIDTH + 2 * WIDTH
    per_layer = 12 * WIDTH * WIDTH + 13 * WIDTH
    return max(1, round((gigabytes * 1e9 / width - embed) / per_layer))


def generate(folder: Path, gigabytes: float, dtype: str) -> tuple[Path, Path, int]:
    """Write ``folder/gpt2`` and ``folder/batch.npz``; return them and the parameter count."""
    import numpy as np
    import torch
    import transformers

    width = 2 if dtype in ("bfloat16", "float16") else 4
    config = transformers.GPT2Config(n_embd=WIDTH, n_head=HEADS, n_layer=layers_for(gigabytes, width),
                                     vocab_size=VOCAB, n_positions=POSITIONS)
    torch.manual_seed(0)
    model = transformers.GPT2LMHeadModel(config).to(getattr(torch, dtype))
    params = sum(p.numel() for p in model.parameters())
    out = folder / "gpt2"
    model.save_pretrained(out, safe_serialization=True)
    del model
    batch = folder / "batch.npz"
    np.savez(batch, input_ids=np.random.RandomState(0).randint(0, VOCAB, (2, 16)).astype(np.int64))
    return out, batch, params


def plain_read_s(directory: Path) -> float:
    """Seconds to read every tensor of the checkpoint into memory once, one at a time."""
    from portability.core.formats import load_adapter
    from portability.core.tensors import as_array

    start = time.perf_counter()
    ckpt = load_adapter("safetensors").read(directory / "model.safetensors")
    for name in ckpt.canonical_names():
        as_array(ckpt.tensors[name])
    return time.perf_counter() - start


def run_check(directory: Path, batch: Path, folder: Path, max_memory: str | None) -> tuple[float, int, list, dict]:
    """Run the check in a subprocess: (wall s, the largest process's peak bytes, the peak
    log's lines, the JSON report)."""
    log, report = folder / "peak.jsonl", folder / "report.json"
    command = [sys.executable, "-c", CLI, "check", str(directory), "--inputs", str(batch), "--json", str(report),
               "--quiet"]
    if max_memory:
        command += ["--max-memory", max_memory]
    env = {**os.environ, "PORTABILITY_PEAK_LOG": str(log)}
    # A wrapper process runs the check and reports the largest process under it (kB on Linux).
    wrapper = ("import resource, subprocess, sys; subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL); "
               "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)")
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", wrapper, *command], env=env, check=False, capture_output=True,
                          text=True)
    wall = time.perf_counter() - start
    largest = int(done.stdout.strip().splitlines()[-1]) * 1024 if done.stdout.strip() else 0
    lines = [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
    # A worker resets its peak before each job, which the system's own figure then misses.
    largest = max([largest] + [line["peak_bytes"] or 0 for line in lines])
    return wall, largest, lines, json.loads(report.read_text()) if report.exists() else {}


def measure(gigabytes: float, dtype: str, root: Path, max_memory: str | None, keep: bool) -> None:
    folder = root / f"gpt2-{gigabytes:g}gb-{dtype}"
    folder.mkdir(parents=True, exist_ok=True)
    directory, batch, params = generate(folder, gigabytes, dtype)
    model_bytes = (directory / "model.safetensors").stat().st_size
    read_s = plain_read_s(directory)
    wall, largest, lines, report = run_check(directory, batch, folder, max_memory)
    verdicts = {r["route"] if isinstance(r["route"], str) else "->".join(r["route"]): r
                for r in report.get("routes", [])}
    print(f"\n{params / 1e6:.0f}M parameters, {model_bytes / 1e9:.2f} GB of {dtype}: check {wall:.0f} s "
          f"= {wall / read_s:.1f}x one plain read ({read_s:.1f} s); largest process {largest / 1e9:.2f} GB "
          f"= {largest / model_bytes:.2f}x the model's bytes")
    print(f"  {'job':44s} {'wall s':>7s} {'peak GB':>8s} {'x model':>8s}  verdict")
    for line in lines:
        route = verdicts.get(line["job"], {})
        verdict = route.get("status", "") + (f" ({route.get('reason', '')[:90]})" if route.get("reason") else "")
        print(f"  {line['job']:44s} {line['seconds']:7.1f} {line['peak_bytes'] / 1e9:8.2f} "
              f"{line['peak_bytes'] / model_bytes:8.2f}  {verdict}")
    for name, route in verdicts.items():
        if not any(line["job"] == name for line in lines):
            print(f"  {name:44s} {'-':>7s} {'-':>8s} {'-':>8s}  {route['status']}: {route.get('reason', '')}")
    if not keep:
        shutil.rmtree(folder)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="0.5,1,2,4", help="GB of weights, comma-separated")
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"])
    parser.add_argument("--workdir", help="where models are generated (default: a temporary folder)")
    parser.add_argument("--max-memory", help="passed to the check")
    parser.add_argument("--keep", action="store_true", help="keep the generated models")
    opts = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="portability-scale-") as tmp:
        root = Path(opts.workdir) if opts.workdir else Path(tmp)
        for size in (float(s) for s in opts.sizes.split(",")):
            measure(size, opts.dtype, root, opts.max_memory, opts.keep)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
