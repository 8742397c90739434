"""Long mutation-fuzzing runs of every checkpoint reader.

The suite runs a few seconds per reader (``pytest -m fuzz``); this runs as long
as asked and prints, per reader: files tried, loaded bitwise, loaded with other
values (seeds without checksums only), typed errors, untyped exceptions, hangs,
silent corruptions and over-allocations. Each reader runs in its own process,
so a native crash in one framework is counted (as untyped) instead of ending
the run. The mutations and the invariant are in ``tests/fuzz_engine.py``.

Usage: python benchmarks/fuzz.py --seconds 90 [--readers torch-zip,...] [--seed 0] [--json FILE]

``--seconds`` is the total budget, split evenly over the readers (seed
building and framework imports are not counted in it). Exit 1 if any
untyped exception, hang, silent corruption or over-allocation was seen.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1] / "tests"
READERS = ("torch-zip", "torch-legacy", "safetensors-file", "safetensors-index", "onnx-external", "savedmodel")
COLUMNS = ("tried", "loaded_bitwise", "loaded_changed", "typed_errors", "untyped", "hangs",
           "silent_corruptions", "over_allocations")


def run_reader(reader: str, seconds: float, seed: int) -> dict:
    """Fuzz one reader in a child process; returns its counts."""
    code = (f"import json, sys, tempfile; sys.path.insert(0, {str(TESTS)!r}); "
            "from pathlib import Path; from fuzz_engine import fuzz; "
            f"r = fuzz({reader!r}, Path(tempfile.mkdtemp()), seconds={seconds}, max_examples=10**9, seed={seed}); "
            "print('RESULT ' + json.dumps(r.as_dict()))")
    with tempfile.TemporaryDirectory() as scratch:
        proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=scratch,
                              env=_quiet_env(), timeout=seconds + 600)
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[len("RESULT "):])
    tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
    return {"reader": reader, **dict.fromkeys(COLUMNS, 0), "untyped": 1,
            "examples": {"untyped": [f"the fuzzing process died (exit {proc.returncode}): {' | '.join(tail)}"]}}


def _quiet_env() -> dict[str, str]:
    import os

    return {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONWARNINGS": "ignore"}


def main(argv: list[str] | None = None) -> int:
    """Run, print the table (and JSON if asked); exit 1 when the invariant broke."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=90.0, help="total fuzzing time (default 90)")
    parser.add_argument("--readers", default=",".join(READERS), help="comma-separated readers")
    parser.add_argument("--seed", type=int, default=0, help="Hypothesis seed (default 0)")
    parser.add_argument("--json", type=Path, help="also write the counts here")
    args = parser.parse_args(argv)
    readers = [r for r in args.readers.split(",") if r]
    unknown = sorted(set(readers) - set(READERS))
    if unknown:
        parser.error(f"unknown readers {unknown}; choose from {', '.join(READERS)}")
    each = args.seconds / len(readers)
    rows = [run_reader(reader, each, args.seed) for reader in readers]
    totals = {c: sum(row[c] for row in rows) for c in COLUMNS}
    print(f"{'reader':<18}" + "".join(f"{c:>{len(c) + 2}}" for c in COLUMNS))
    for row in [*rows, {"reader": "total", **totals}]:
        print(f"{row['reader']:<18}" + "".join(f"{row[c]:>{len(c) + 2},}" for c in COLUMNS))
    for row in rows:
        for kind, examples in row.get("examples", {}).items():
            for example in examples:
                print(f"{row['reader']} {kind}: {example}")
    if args.json:
        args.json.write_text(json.dumps({"seconds": args.seconds, "seed": args.seed, "readers": rows}, indent=1))
    broken = totals["untyped"] + totals["hangs"] + totals["silent_corruptions"] + totals["over_allocations"]
    return 1 if broken else 0


if __name__ == "__main__":
    sys.exit(main())
