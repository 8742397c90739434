"""Rows per (route, environment): the thin layer between the check and ``portability.envs``.

A check with ``--env NAME=SPEC`` plans, next to each route, one job per environment
that can run the route's final artifact (ONNX where the environment holds
onnxruntime, a SavedModel where it holds TensorFlow). Such a job converts along the
route as the main one does (in the same worker, reusing its conversion) and then
loads the artifact in the environment instead of here: ``env_loaded`` returns the
same ``Loaded`` as ``evaluate.load_artifact``, whose predictions are computed
there, so the judging (drift, tolerances, R) is the main rows' own code.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path

from portability.envs.builder import Env, prepare
from portability.envs.spec import parse_envs
from portability.envs.targets import ExportTarget, onnx_target, runs
from portability.errors import UsageError
from portability.harness.evaluate import Loaded


def prepare_envs(items: Sequence[str] | None, target_env: str | None = None,
                 opset: int | None = None) -> tuple[list[Env], ExportTarget | None]:
    """Build (or reuse) every ``--env`` and work out the export target.

    Args:
        items: the ``NAME=SPEC`` strings.
        target_env: the name of one of them whose runtimes exports must suit.
        opset: an explicit ``--opset`` (checked against the target).

    Returns:
        The environments, and the export target (None when neither ``opset`` nor
        ``target_env`` is given).

    Raises:
        UsageError: a bad spec, or ``target_env`` names no ``--env``.
        EnvError: an environment cannot be built or cannot run its runtime.
    """
    specs = parse_envs(list(items or []))
    if target_env is not None and target_env not in {s.name for s in specs}:
        raise UsageError(f"--target-env {target_env}: no --env of that name (given: "
                         f"{', '.join(s.name for s in specs) or 'none'})")
    envs = [prepare(spec) for spec in specs]
    if target_env is None:
        return envs, None if opset is None else ExportTarget(opset, None, "")
    import onnx.defs

    env = next(e for e in envs if e.name == target_env)
    return envs, onnx_target(env, onnx.defs.onnx_opset_version(), opset)


def env_runs(env: Env, fmt: str) -> bool:
    """Whether ``env`` can run a final artifact of this format (see ``targets.runs``)."""
    return runs(env, fmt)


def env_loaded(env: Env, path: Path, fmt: str) -> Loaded:
    """Load an artifact in ``env``: a ``Loaded`` whose ``predict`` runs there.

    Raises:
        EnvRunError: the environment's runtime refuses the artifact (its words, with
            the IR/opset, unknown op or SavedModel producer they name).
    """
    from portability.envs.builder import on_this_host
    from portability.envs.session import EnvRunError, EnvSession

    start = time.perf_counter()
    env = on_this_host(env)
    try:
        session = EnvSession(env, path, fmt)
    except EnvRunError as exc:
        facts = [fact for fact in (artifact_note(fmt, path), _limits(env, fmt)) if fact]
        raise EnvRunError(f"{exc} ({'; '.join(facts)})" if facts else str(exc)) from exc
    notes = [f"ran in env {env.describe()}: {session.runtime}"]
    return Loaded(session.run, time.perf_counter() - start, session.close, notes=notes)


def _limits(env: Env, fmt: str) -> str | None:
    ort = env.runtime("onnxruntime")
    if fmt == "onnx" and ort is not None and "max_ir" in ort:
        return f"onnxruntime {ort['version']} reads IR <= {ort['max_ir']}, opset <= {ort['max_opset']}"
    return None


def artifact_note(fmt: str, path: Path) -> str | None:
    """What an environment needs to read the artifact: ONNX IR version and opsets, or
    the TensorFlow that wrote a SavedModel (None for other formats or unreadable headers)."""
    from portability.envs.runner import onnx_header, savedmodel_header

    try:
        if fmt == "tf-savedmodel":
            producer = savedmodel_header(str(path))["tensorflow_version"]
            return f"SavedModel written by TensorFlow {producer or 'unknown'}"
        if fmt == "onnx":
            file = path if path.is_file() else next(iter(sorted(Path(path).glob("*.onnx"))))
            header = onnx_header(file.read_bytes())
            opsets = ", ".join(f"{domain} {version}" for domain, version in header["opsets"].items())
            return f"ONNX IR version {header['ir_version']}, opset {opsets}"
    except (OSError, ValueError, StopIteration):
        return None
    return None
