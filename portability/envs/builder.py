"""Build deployment environments with uv, cache them, and ask them what they run.

An environment built from requirements lives in ``<cache>/envs/<key>/``, where the
cache is ``$PORTABILITY_CACHE`` (else ``~/.cache/portability``) as for the fixtures,
and the key hashes the requirements (a requirements file by its content), the
Python version and the platform. The directory is complete once its
``portability-env.json`` exists; a later run with the same spec reuses it, and a
half-built one (a killed build) is built again. Builds of one key are serialised
with a file lock, so parallel checks do not build the same environment twice.

Every environment gets a copy of the standalone runner (``portability.envs.runner``),
which is all that runs there: the environment needs numpy and its runtime, nothing
of ours. ``python:PATH`` environments are not built, only asked.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import xxhash

from portability.envs.spec import EnvSpec
from portability.errors import EnvError, MissingDependencyError

CACHE_VAR = "PORTABILITY_CACHE"
MARKER = "portability-env.json"
RUNNER_NAME = "portability_runner.py"
RUNNER_SOURCE = Path(__file__).with_name("runner.py")
WIRE_SOURCE = Path(__file__).with_name("wire.py")  # the runner's protobuf helpers, copied beside it
KEY_FORMAT = "1"
_NO_NETWORK = ("error sending request", "dns error", "failed to lookup address", "connection refused",
               "tcp connect error", "network is unreachable", "network connectivity is disabled",
               "could not connect", "timed out")
_UNRESOLVED = ("no solution found", "not found in the package registry", "no matching distribution",
               "were given, but", "failed to parse", "is not available", "distribution not found")


@dataclass(frozen=True)
class Env:
    """A ready environment.

    Attributes:
        name: as given in ``--env NAME=SPEC``.
        spec: the SPEC text.
        python: its interpreter.
        runner: the standalone runner inside it.
        info: what ``runner.py info`` said: Python, numpy, and per runtime its version
            (onnxruntime: also ``max_ir`` and ``max_opset``).
        build_s: seconds spent building it now (0 when reused from the cache).
        kind / requirements: as in the ``EnvSpec``, so another host can build it again.
    """

    name: str
    spec: str
    python: str
    runner: str
    info: dict[str, Any] = field(default_factory=dict, hash=False, compare=False)
    build_s: float = 0.0
    kind: str = "requirements"
    requirements: tuple[str, ...] = ()

    def runtime(self, name: str) -> dict[str, Any] | None:
        """The runtime's entry in ``info`` (``onnxruntime``, ``tensorflow``...), or None."""
        return self.info.get("runtimes", {}).get(name)

    def describe(self) -> str:
        """``ort116 (onnxruntime 1.16.3, numpy 1.26.4, Python 3.11.7)``."""
        parts = [f"{n} {r['version']}" for n, r in self.info.get("runtimes", {}).items()
                 if n in ("onnxruntime", "tensorflow")]
        parts += [f"numpy {self.info.get('numpy')}", f"Python {self.info.get('python')}"]
        return f"{self.name} ({', '.join(parts)})"


def cache_root() -> Path:
    """``$PORTABILITY_CACHE/envs``, else ``~/.cache/portability/envs``."""
    root = os.environ.get(CACHE_VAR)
    return (Path(root) if root else Path.home() / ".cache" / "portability") / "envs"


def env_key(spec: EnvSpec, python_version: str) -> str:
    """16 hex digits over the requirements, the Python version and the platform."""
    h = xxhash.xxh3_64()
    for part in (KEY_FORMAT, spec.kind, *spec.requirements, python_version, sys.platform, platform.machine()):
        h.update(part.encode() + b"\0")
    return h.hexdigest()


def uv_binary() -> str:
    """The uv executable the ``uv`` package ships.

    Raises:
        MissingDependencyError: the ``uv`` package is not installed.
    """
    try:
        import uv
    except ImportError as exc:
        raise MissingDependencyError("building environments needs uv: pip install 'portability[envs]'") from exc
    return uv.find_uv_bin()


def prepare(spec: EnvSpec, cache: Path | None = None, python: str | None = None) -> Env:
    """Build (or reuse) the environment a spec names and check that its runtimes run.

    Args:
        spec: the parsed ``--env``.
        cache: where environments live (default ``cache_root()``).
        python: the interpreter to base a built environment on (default: this one).

    Returns:
        The ready ``Env``.

    Raises:
        EnvError: unresolvable requirements, no network, a runtime that cannot run with
            the environment's numpy, or an interpreter that cannot run the runner.
        MissingDependencyError: uv is not installed.
    """
    cache = cache or cache_root()
    if spec.kind == "python":
        runner = _copy_runner(cache / "interpreters" / xxhash.xxh3_64_hexdigest(spec.source.encode()))
        return Env(spec.name, spec.text, spec.source, str(runner), ask(spec.name, spec.source, runner),
                   kind=spec.kind)
    base = python or sys.executable
    directory = cache / env_key(spec, _python_version(base))
    directory.parent.mkdir(parents=True, exist_ok=True)
    with _locked(directory.with_suffix(".lock")):
        marker = directory / MARKER
        if marker.is_file():
            saved = json.loads(marker.read_text())
            runner = _copy_runner(directory)
            return Env(spec.name, spec.text, saved["python"], str(runner), saved["info"], kind=spec.kind,
                       requirements=spec.requirements)
        start = time.perf_counter()
        shutil.rmtree(directory, ignore_errors=True)
        python_path = _build(spec, directory, base)
        runner = _copy_runner(directory)
        info = ask(spec.name, str(python_path), runner)
        marker.write_text(json.dumps({"spec": spec.text, "requirements": list(spec.requirements),
                                      "python": str(python_path), "info": info}, indent=1))
        return Env(spec.name, spec.text, str(python_path), str(runner), info, time.perf_counter() - start,
                   spec.kind, spec.requirements)


def on_this_host(env: Env) -> Env:
    """``env`` where this process runs: itself when its interpreter is here, else built again
    from its requirements in this host's cache (a Ray job on another node).

    Raises:
        EnvError: an interpreter environment (``python:PATH``) that this host lacks, or a
            failed build (see ``prepare``).
    """
    if Path(env.python).is_file() and Path(env.runner).is_file():
        return env
    if env.kind == "python":
        raise EnvError(f"--env {env.name}: no interpreter at {env.python} on {platform.node()}")
    return prepare(EnvSpec(env.name, env.kind, env.requirements, text=env.spec))


def _python_version(python: str) -> str:
    if python == sys.executable:
        return platform.python_version()
    out = subprocess.run([python, "-c", "import platform; print(platform.python_version())"],
                         capture_output=True, text=True, timeout=60)
    return out.stdout.strip() or python


@contextlib.contextmanager
def _locked(path: Path):
    with open(path, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _build(spec: EnvSpec, directory: Path, python: str) -> Path:
    """``uv venv`` + ``uv pip install``; returns the environment's interpreter."""
    uv = uv_binary()
    _uv([uv, "venv", "--quiet", "--no-project", "--python", python, str(directory)], spec)
    env_python = directory / "bin" / "python"
    try:
        _uv([uv, "pip", "install", "--quiet", "--no-progress", "--python", str(env_python),
             *spec.requirements], spec)
    except EnvError:
        shutil.rmtree(directory, ignore_errors=True)
        raise
    return env_python


def _uv(command: list[str], spec: EnvSpec) -> None:
    """Run uv; its failures become one-line ``EnvError``s that say which kind."""
    done = subprocess.run(command, capture_output=True, text=True, stdin=subprocess.DEVNULL)
    if done.returncode == 0:
        return
    said = " ".join(done.stderr.split()) or f"uv exited with status {done.returncode}"
    lowered = said.lower()
    label = f"--env {spec.name}={spec.text}"
    if any(marker in lowered for marker in _NO_NETWORK):
        raise EnvError(f"{label}: no network: uv could not reach the package index ({said[:300]})")
    if any(marker in lowered for marker in _UNRESOLVED):
        raise EnvError(f"{label}: the requirements cannot be resolved: {said[:400]}")
    raise EnvError(f"{label}: uv failed: {said[:400]}")


def _copy_runner(directory: Path) -> Path:
    """The standalone runner (and ``wire.py``), copied into ``directory`` (refreshed when
    ours changed); returns the runner's path."""
    directory.mkdir(parents=True, exist_ok=True)
    for source_path, name in ((WIRE_SOURCE, "wire.py"), (RUNNER_SOURCE, RUNNER_NAME)):
        target = directory / name
        source = source_path.read_bytes()
        if not target.is_file() or target.read_bytes() != source:
            tmp = target.with_suffix(f".{os.getpid()}.tmp")
            tmp.write_bytes(source)
            os.replace(tmp, target)
    return directory / RUNNER_NAME


def ask(name: str, python: str, runner: Path) -> dict[str, Any]:
    """What the environment holds (``runner.py info``), checked: every runtime it holds
    must import and run with its numpy.

    Raises:
        EnvError: the interpreter cannot run the runner (no numpy, too old), or a runtime
            fails to import (the numpy ABI mismatch is named).
    """
    try:
        done = subprocess.run([python, str(runner), "info"], capture_output=True, text=True, timeout=600,
                              stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise EnvError(f"--env {name}: cannot run {python}: {exc}") from exc
    try:
        info = json.loads(done.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError) as exc:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise EnvError(f"--env {name}: {python} cannot run the environment runner: {last[:300]}") from exc
    if not info.get("numpy"):
        raise EnvError(f"--env {name}: {python} has no working numpy ({info.get('numpy_error', '')[:200]}); "
                       "the environment needs numpy and its runtime")
    for runtime, entry in info.get("runtimes", {}).items():
        if not entry.get("ok", True) and runtime in ("onnxruntime", "tensorflow"):
            raise EnvError(f"--env {name}: {entry['error']}")
    return info
