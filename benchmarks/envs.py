"""What deployment environments and the Ray executor cost, against baselines in the same run.

Environments (``--env ort116=onnxruntime==1.16.3,numpy<2``):

- cold build: an empty uv cache and an empty portability cache (everything downloaded);
- warm build: uv's cache holds the wheels, the environment is new;
- reuse: the environment is in the portability cache (what every later check pays);
- baselines: a plain ``uv venv`` + ``uv pip install`` of the same requirements, cold
  and warm. Our build adds the runner copy and the environment's probe (``runner.py info``).

Executors: ``portability check --fixture F`` with ``--executor ray`` (a local cluster
started and stopped by the check) against the local process pool, same machine, same run.

Usage: python benchmarks/envs.py [--fixture all] [--skip-cold] [--skip-ray]
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

from portability.envs.builder import prepare, uv_binary
from portability.envs.spec import parse_env

SPEC = "ort116=onnxruntime==1.16.3,numpy<2"


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def plain_uv(folder: Path, requirements: tuple[str, ...]) -> None:
    uv = uv_binary()
    subprocess.run([uv, "venv", "-q", "--python", sys.executable, str(folder)], check=True)
    subprocess.run([uv, "pip", "install", "-q", "--python", str(folder / "bin" / "python"), *requirements], check=True)


def environments(skip_cold: bool) -> dict[str, float]:
    spec = parse_env(SPEC)
    figures: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        if not skip_cold:
            os.environ["UV_CACHE_DIR"] = str(root / "uv-cold")
            figures["ours cold"] = timed(lambda: prepare(spec, cache=root / "cold"))
            os.environ["UV_CACHE_DIR"] = str(root / "uv-cold-plain")
            figures["plain uv cold"] = timed(lambda: plain_uv(root / "plain-cold", spec.requirements))
            os.environ.pop("UV_CACHE_DIR")
        prepare(spec, cache=root / "prime")  # the default uv cache holds the wheels from here on
        figures["ours warm"] = timed(lambda: prepare(spec, cache=root / "warm"))
        figures["plain uv warm"] = timed(lambda: plain_uv(root / "plain-warm", spec.requirements))
        figures["ours reuse"] = timed(lambda: prepare(spec, cache=root / "warm"))
    return figures


def check_time(fixture: str, executor: str) -> tuple[float, list[tuple[str, str]]]:
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "r.json"
        env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "portability.cli", "check", "--fixture", fixture, "--executor",
                        executor, "-q", "--json", str(report)], env=env, stdout=subprocess.DEVNULL)
        wall = time.perf_counter() - start
        routes = json.loads(report.read_text())["routes"]
    return wall, [(f"{r['subject']} {'->'.join(r['route'])}", r["status"]) for r in routes]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fixture", default="all")
    parser.add_argument("--skip-cold", action="store_true", help="skip the builds that download everything")
    parser.add_argument("--skip-ray", action="store_true")
    args = parser.parse_args()
    figures = environments(args.skip_cold)
    print(f"environment {SPEC} (seconds; ratio = ours / plain uv)")
    for kind in ("cold", "warm"):
        if f"ours {kind}" in figures:
            ours, plain = figures[f"ours {kind}"], figures[f"plain uv {kind}"]
            print(f"  {kind:5} build: ours {ours:6.2f}  plain uv venv + pip install {plain:6.2f}  "
                  f"ratio {ours / plain:.2f}")
    print(f"  reuse from the cache: {figures['ours reuse'] * 1000:.1f} ms")
    if args.skip_ray:
        return 0
    local, local_rows = check_time(args.fixture, "local")
    ray, ray_rows = check_time(args.fixture, "ray")
    same = local_rows == ray_rows
    print(f"check --fixture {args.fixture}: local pool {local:.1f} s, --executor ray {ray:.1f} s, "
          f"ratio {ray / local:.2f}; verdicts per route identical: {same} ({len(local_rows)} routes)")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
