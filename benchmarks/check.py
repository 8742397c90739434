"""Time `portability check --fixture all` and split framework time from our own overhead.

Runs the real command (in its own process, as a user would) with ``--json``,
then reads each route's phase timings from the report:

- framework time: importing torch/onnx/TF, the conversions (export, SavedModel
  writing, reading back), session creation / model building, inference, and
  the task metric's forward passes: ``import + convert + session + inference + metric``;
- our time inside the routes: everything else a route spends (weight fidelity,
  drift statistics, verdicts): ``total - framework``;
- driver time: what the wall clock shows beyond the routes' busy time spread
  over the workers (CLI start-up, planning, worker start, reports, and the
  tail where one worker idles while the last slow export finishes):
  ``wall - sum(route totals) / workers``, never below 0. The idle tail is
  not work of ours, so the overhead share below is an upper bound.

Our overhead is (our time in routes / workers + driver time) / wall. The
target is a wall time of at most 2 minutes on 2 cores and overhead <= 10%.
The machines are shared and noisy: read the figures together, from one run.

Usage: python benchmarks/check.py [--fixture all] [--workers N] [--formats LIST] [--keep FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

FRAMEWORK_PHASES = ("import", "convert", "session", "inference", "metric")


def run_check(fixture: str, workers: int | None, formats: str | None, json_path: Path) -> tuple[float, int]:
    """Run the CLI; return its wall time and exit status."""
    cmd = [sys.executable, "-m", "portability.cli", "check", "--fixture", fixture, "--json", str(json_path), "-q"]
    if workers is not None:
        cmd += ["--workers", str(workers)]
    if formats:
        cmd += ["--formats", formats]
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if proc.returncode not in (0, 1):
        sys.exit(f"check failed to run (exit {proc.returncode}): {proc.stderr.strip()[-500:]}")
    return wall, proc.returncode


def split(report: dict, wall: float, workers: int) -> dict[str, float]:
    """Framework, ours-in-routes and driver seconds (see the module docstring)."""
    totals = framework = 0.0
    for route in report["routes"]:
        t = route.get("timings", {})
        totals += t.get("total", 0.0)
        framework += sum(t.get(p, 0.0) for p in FRAMEWORK_PHASES)
    ours_in_routes = max(0.0, totals - framework)
    driver = max(0.0, wall - totals / workers)
    return {"wall": wall, "route_sum": totals, "framework": framework, "ours_in_routes": ours_in_routes,
            "driver": driver, "overhead_share": (ours_in_routes / workers + driver) / wall if wall else 0.0}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fixture", default="all")
    parser.add_argument("--workers", type=int, default=None, help="default: the cores")
    parser.add_argument("--formats", default=None)
    parser.add_argument("--keep", type=Path, default=None, help="keep the JSON report here")
    args = parser.parse_args()
    workers = args.workers or len(os.sched_getaffinity(0))
    with tempfile.TemporaryDirectory() as tmp:
        json_path = args.keep or Path(tmp) / "report.json"
        wall, code = run_check(args.fixture, args.workers, args.formats, json_path)
        report = json.loads(json_path.read_text())
    fig = split(report, wall, workers)
    counts = report["summary"]
    print(f"portability check --fixture {args.fixture}: exit {code}, "
          + ", ".join(f"{n} {s}" for s, n in counts.items()) + f", {workers} worker(s), "
          f"load average {os.getloadavg()[0]:.1f}")
    print(f"  wall time                 {fig['wall']:8.1f} s   (target <= 120 s)")
    print(f"  sum of route times        {fig['route_sum']:8.1f} s")
    print(f"  framework (import, export, session, inference, metric) {fig['framework']:8.1f} s")
    print(f"  ours inside routes        {fig['ours_in_routes']:8.1f} s")
    print(f"  driver (CLI, planning, worker start, reports, idle tail) {fig['driver']:8.1f} s")
    print(f"  our overhead share (upper bound) {fig['overhead_share'] * 100:8.1f} %   (target <= 10 %)")
    by_phase: dict[str, float] = {}
    for route in report["routes"]:
        for phase, seconds in route.get("timings", {}).items():
            by_phase[phase] = by_phase.get(phase, 0.0) + seconds
    print("  per phase, summed over routes: " + ", ".join(f"{p} {s:.1f} s" for p, s in sorted(by_phase.items())))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
