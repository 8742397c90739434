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

import dataclasses
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol, TypeVar

from portability.envs.builder import Env, prepare
from portability.envs.spec import parse_envs
from portability.envs.targets import ExportTarget, onnx_target, runs
from portability.errors import UsageError
from portability.harness.evaluate import Loaded, Subject


class _Row(Protocol):
    """What ``with_env_rows`` reads of a ``RouteJob``."""

    route: tuple[str, ...]
    candidate: tuple[str, str] | None


Job = TypeVar("Job", bound=_Row)


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


def targeted_subjects(subjects: list[Subject], envs: Sequence[str] | None, opset: int | None,
                      target_env: str | None) -> tuple[list[Subject], list[Env]]:
    """Build the environments (``prepare_envs``) and give every subject the export target.

    Raises:
        UsageError, EnvError: see ``prepare_envs``.
    """
    if not envs and opset is None and target_env is None:
        return subjects, []
    environments, target = prepare_envs(envs, target_env, opset)
    if target is not None:
        subjects = [dataclasses.replace(s, opset=target.opset, max_ir=target.max_ir, export_note=target.note)
                    for s in subjects]
    return subjects, environments


def with_env_rows(jobs: list[Job], skipped: dict[int, str], envs: list[Env]) -> tuple[list[Job], dict[int, str]]:
    """Each ``RouteJob`` followed by one copy per environment that runs its final artifact
    (the candidate's, for ``compare``); a job skipped up front is skipped in every row."""
    out: list[Job] = []
    out_skipped: dict[int, str] = {}
    for i, job in enumerate(jobs):
        fmt = job.candidate[1] if job.candidate is not None else job.route[-1]
        for env in [None, *(e for e in envs if env_runs(e, fmt))]:
            if i in skipped:
                out_skipped[len(out)] = skipped[i]
            out.append(job if env is None else dataclasses.replace(job, env=env))  # type: ignore[type-var]
    return out, out_skipped


def environment_with_envs(envs: list[Env]) -> dict[str, str]:
    """The report's ``environment``, plus ``env:NAME`` -> its versions and spec per environment."""
    from portability.reports.check_report import environment

    found = environment()
    for env in envs:
        found[f"env:{env.name}"] = env.describe().split(" (", 1)[1].rstrip(")") + f"; spec {env.spec}"
    return found


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
    from portability.envs.wire import onnx_header, savedmodel_header

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
