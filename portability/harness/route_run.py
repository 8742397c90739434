"""Run one route (or one comparison) and judge it. Runs inside a worker process.

A route converts the reference checkpoint step by step through its formats,
reads the final artifact back for weight fidelity, runs it in its own runtime
on the input batch for output drift, and scores it with the task metric for
recoverability. Everything is judged against the tolerance policy.

Verdicts: ``pass``; ``fail`` when the artifact is broken or a conversion step
refuses (the reason names the step); ``skipped`` when the route cannot apply
(a format's framework is missing, a graph written from bare weights without
a model spec); a route whose artifact only holds weights and that no model
spec can run passes or fails on its weights alone, marked ``weights_only``;
``error`` when the check itself broke (an internal error, a crashed or
hung worker; see ``portability.harness.workers``).

Integrity is part of every verdict, in ``check`` and ``compare`` alike: an
artifact on either side that fails its checksums or its format's structure
(``IntegrityError``, ``FormatError``) fails the route with that reason. Only a
compared candidate whose weights cannot be read for another reason (a pickle
that needs other globals...) is judged on its outputs, with a note.
"""

from __future__ import annotations

import gc
import logging
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from portability.core import fallbacks
from portability.core.accounting import check_nothing_lost
from portability.core.checkpoint import Checkpoint
from portability.core.formats import ReadOptions, load_adapter
from portability.envs.builder import Env
from portability.errors import FormatError, IntegrityError, PortabilityError
from portability.harness.casts import output_casts, weight_casts
from portability.harness.drift import Tolerance
from portability.harness.dynamic_check import fixed_dynamic_axes
from portability.harness.env_rows import artifact_note, env_loaded
from portability.harness.evaluate import Subject, aligned, fixture_of, load_artifact
from portability.harness.judging import evaluate, judge_metric, judge_outputs, locate_divergence
from portability.harness.peak_memory import measured
from portability.harness.reference import Reference, ReferenceRun, clear_references, reference_for, reference_key
from portability.harness.route_steps import (
    GRAPH_TO_GRAPH,
    STEP_SUFFIX,
    applicability,
    folded_by_tf2onnx,
    runs_nowhere,
    write_step,
)
from portability.harness.speed import artifact_bytes, speed_ratio
from portability.harness.weights import compare_weights
from portability.harness.workers import release_memory
from portability.reports.check_report import RouteResult

_EXT = STEP_SUFFIX


@dataclass
class RouteJob:
    """One unit of work for a worker.

    Attributes:
        subject: what is checked.
        route: formats in order; ``route[0]`` is the source format.
        tolerance: the policy for this route (overrides already merged).
        workdir: where artifacts are written (one subfolder per job).
        candidate: for ``compare``: the candidate artifact and its format.
        candidate_model: for ``compare``: model spec of the candidate, if it differs.
        reference: the subject's reference, computed in another worker, or None (then
            the worker computes it; see ``portability.harness.reference``).
        float64_limit: the most bytes the reference's float64 copy may take (the memory
            budget's share), or None for the size policy alone (``noise_floor``).
        keep_artifacts: False deletes the route's artifacts when its bundle ends (a check
            in a temporary folder), so a large model's artifacts never pile up on disk.
        env: run the final artifact in this deployment environment instead of here
            (``portability.harness.env_rows``); None for this environment.
    """

    subject: Subject
    route: tuple[str, ...]
    tolerance: Tolerance = field(default_factory=Tolerance)
    workdir: str = ""
    candidate: tuple[str, str] | None = None
    candidate_model: str | None = None
    reference: ReferenceRun | None = None
    float64_limit: int | None = None
    keep_artifacts: bool = True
    env: Env | None = None

    @property
    def name(self) -> str:
        return "->".join(self.route)


class _Skip(Exception):
    """The route cannot apply; the message says why."""


# (reference key, route prefix) -> (artifact, checkpoint read back, fallbacks of the step),
# shared within a bundle
_STEPS: dict[tuple, tuple[Path, Checkpoint, list[str]]] = {}
# The folders of the bundle's routes whose artifacts go when the bundle ends.
_DISPOSABLE: list[Path] = []
# What a damaged artifact raises when read: the route fails with it (see the module doc).
DAMAGE = (IntegrityError, FormatError)


def clear_caches() -> None:
    """Forget the cached references and conversions; every check starts without them."""
    clear_references()
    _STEPS.clear()


def run_bundle(jobs: list[RouteJob]) -> list[RouteResult]:
    """Run routes that share their first conversion (``torch->onnx`` and
    ``torch->onnx->torch``), converting the shared prefix once.

    Returns:
        One ``RouteResult`` per job, in order.
    """
    _STEPS.clear()
    results = []
    try:
        for job in jobs:
            with measured("reference vs " + job.name if job.candidate else job.name):
                results.append(run_job(job))
            release_memory()  # the next route starts from the frameworks alone
        return results
    finally:
        _STEPS.clear()
        gc.collect()  # lazy tensors over the artifacts go before their files
        while _DISPOSABLE:
            shutil.rmtree(_DISPOSABLE.pop(), ignore_errors=True)


def source_format(subject: Subject) -> str:
    """The format a subject starts in: its file's format, or its fixture's framework's."""
    if subject.checkpoint:
        from portability.core.formats import detect

        return detect(subject.checkpoint)
    fixture = fixture_of(subject)
    return "tf-savedmodel" if getattr(fixture, "framework", "torch") == "tensorflow" else "torch"


def writes_our_names(prev: str, fmt: str, subject: Subject) -> bool:
    """Whether a step writes the checkpoint's own tensor names, so the no-loss check
    applies: not a graph translated as a whole (ONNX <-> SavedModel), nor a Keras export."""
    if (prev, fmt) in GRAPH_TO_GRAPH:
        return False
    return not (fmt == "tf-savedmodel" and getattr(fixture_of(subject), "framework", "torch") == "tensorflow")


def run_job(job: RouteJob) -> RouteResult:
    """Run one job and return its verdict; never raises for a bad artifact. Fallbacks
    recorded while it runs (``portability.core.fallbacks``) become its ``fallbacks`` and notes."""
    start = time.perf_counter()
    timings: dict[str, float] = {}
    result = RouteResult(job.subject.label, list(job.route), "error", timings=timings,
                         env=None if job.env is None else job.env.name)
    with fallbacks.collect() as found:
        try:
            t0 = time.perf_counter()
            why = applicability(job.route, job.subject) if job.candidate is None else None
            timings["import"] = time.perf_counter() - t0
            if why:
                raise _Skip(why)
            if job.candidate is not None:
                _compare(job, result, timings)
            else:
                _route(job, result, timings)
        except _Skip as exc:
            result.status, result.reason = "skipped", str(exc)
        except PortabilityError as exc:
            result.status, result.reason = "fail", str(exc)
        except Exception as exc:  # the check broke, not the artifact
            logging.getLogger(__name__).debug("internal error in route %s", "->".join(job.route),
                                              exc_info=True)
            result.status, result.reason = "error", f"internal error: {type(exc).__name__}: {exc}"
    result.fallbacks = list(found)
    result.notes.extend(f"fallback: {message}" for message in found)
    timings["total"] = time.perf_counter() - start
    return result


def _route(job: RouteJob, result: RouteResult, timings: dict[str, float]) -> None:
    ref = reference_for(job, timings)
    result.notes.extend(f"reference: {note}" for note in ref.notes)
    workdir = Path(tempfile.mkdtemp(prefix=job.name.replace("->", "-") + "-", dir=job.workdir))
    if not job.keep_artifacts:
        _DISPOSABLE.append(workdir)
    path, ckpt = ref.path, ref.ckpt
    t0 = time.perf_counter()
    for step, fmt in enumerate(job.route[1:], start=1):
        prefix = (reference_key(job), job.route[:step + 1])
        if prefix in _STEPS:
            path, ckpt, kept = _STEPS[prefix]
            fallbacks.replay(kept)
            result.notes.append(f"reused the {'->'.join(job.route[:step + 1])} conversion of the previous route")
            continue
        dst = workdir / f"step{step}-{fmt}{_EXT[fmt]}"
        adapter = load_adapter(fmt)
        try:
            with fallbacks.collect() as kept:
                write_step(fmt, ckpt, dst, job.subject, (job.route[step - 1], path))
                gc.collect()  # what the writer built (a traced graph, a translated module) holds weights in cycles
                # Read back whole: an artifact written here that fails to read (damage or
                # anything else) fails the route.
                written = adapter.read(dst, ReadOptions(trust_pickle=True))
            if writes_our_names(job.route[step - 1], fmt, job.subject):
                check_nothing_lost(ckpt, written, adapter.keeps_training_state, dst.name)
            ckpt = written
        except PortabilityError as exc:
            raise type(exc)(f"{job.route[step - 1]}->{fmt}: {exc}") from exc
        path = dst
        _STEPS[prefix] = (path, ckpt, list(kept))
    timings["convert"] = timings.get("convert", 0.0) + time.perf_counter() - t0
    if job.subject.export_note and "onnx" in job.route[1:]:
        result.notes.append(job.subject.export_note)
    if job.env is not None or job.subject.opset is not None:
        note = artifact_note(job.route[-1], path)
        result.notes.extend([note] if note else [])
    _judge(job, result, ref, path, job.route[-1], ckpt, job.subject.model, timings)


def _compare(job: RouteJob, result: RouteResult, timings: dict[str, float]) -> None:
    ref = reference_for(job, timings)
    result.notes.extend(f"reference: {note}" for note in ref.notes)
    assert job.candidate is not None, "a comparison job names its candidate"
    cand_path, cand_fmt = Path(job.candidate[0]), job.candidate[1]
    try:
        ckpt = load_adapter(cand_fmt).read(cand_path, ReadOptions(trust_pickle=job.subject.trust_pickle))
    except DAMAGE:
        raise  # a damaged candidate fails, whatever its outputs
    except PortabilityError as exc:  # unreadable for another reason: judged on its outputs
        ckpt = None
        fallbacks.record(f"weights not compared: {exc}")
    if job.env is not None:
        note = artifact_note(cand_fmt, cand_path)
        result.notes.extend([note] if note else [])
    _judge(job, result, ref, cand_path, cand_fmt, ckpt, job.candidate_model or job.subject.model, timings)


def _judge(job: RouteJob, result: RouteResult, ref: Reference, path: Path, fmt: str,
           ckpt: Checkpoint | None, model: str | None, timings: dict[str, float]) -> None:
    tol = job.tolerance
    reasons: list[str] = []
    result.bytes = artifact_bytes(path)
    if ckpt is not None:
        result.weights = compare_weights(ref.ckpt, ckpt, tol.weights_atol)
        if not result.weights:
            reasons.append(result.weights.reason)
    if ckpt is not None and result.weights is not None and not result.weights and folded_by_tf2onnx(ckpt):
        reasons.remove(result.weights.reason)
        result.notes.append(f"weights not judged ({result.weights.reason}): tf2onnx folds and transposes "
                            "variables into graph constants, so they cannot be read back; outputs judged")
    if ref.outputs is None or runs_nowhere(fmt, job.subject, model):
        result.weights_only = True
        result.notes.append(f"outputs not compared: {fmt!r} stores only weights and no model spec "
                            "builds a model for them (pass --model SPEC); judged on weights only")
    else:
        assert ref.data is not None and ref.evaluation is not None and ref.scoring is not None
        try:
            loaded = load_artifact(path, fmt, job.subject, model, ref.input_names) if job.env is None \
                else env_loaded(job.env, path, fmt)
        except PortabilityError as exc:
            result.casts = weight_casts(result.weights)
            result.notes.extend(f"cast: {cast}" for cast in result.casts)
            result.status, result.reason = "fail", "; ".join([f"{fmt} artifact cannot run: {exc}"] + reasons)
            return
        result.notes.extend(n for n in loaded.notes if f"reference: {n}" not in result.notes)
        loaded.predict = aligned(loaded.predict, list(ref.outputs), result.notes)
        fixed = fixed_dynamic_axes(loaded.input_dims, job.subject.dynamic, fmt)
        try:
            got = evaluate(loaded, job.subject, ref.data, ref.scoring, timings)
        except PortabilityError as exc:
            result.casts = weight_casts(result.weights)
            result.notes.extend(f"cast: {cast}" for cast in result.casts)
            result.status, result.reason = "fail", "; ".join([f"{fmt} artifact cannot run: {exc}", *fixed, *reasons])
            return
        reasons.extend(fixed)
        result.casts = output_casts(ref.evaluation.outputs, got.outputs)
        result.speed_vs_source = speed_ratio(got.inference_s, ref.evaluation.inference_s)
        timings["inference_best"] = got.inference_s or 0.0
        timings["source_inference_best"] = ref.evaluation.inference_s or 0.0
        result.outputs = judge_outputs(ref.evaluation, got, tol, ref.data, result.notes)
        failed = [o for o in result.outputs if not o]
        reasons.extend(o.reason for o in failed)
        result.recoverability = judge_metric(job.subject, ref.scoring, ref.data, ref.evaluation, got,
                                             tol.min_recoverability, reasons, result.notes)
        if failed and job.env is not None:
            result.notes.append(f"first divergence not located: the artifact ran in env {job.env.name!r}, and "
                                "intermediate tensors are read in this environment only")
        elif failed:
            feed = dict(ref.data.drift_feeds()).get(failed[0].inputs, ref.inputs)
            found = locate_divergence(job.subject, job.route, job.candidate is not None, ref.path,
                                      (path, fmt, model), feed, ref.input_names, ref.ckpt, timings,
                                      result.notes)
            reasons.extend(_record_divergence(result, found))
    result.casts = weight_casts(result.weights) + result.casts
    result.notes.extend(f"cast: {cast}" for cast in result.casts)
    result.status = "fail" if reasons else "pass"
    result.reason = "; ".join(reasons)


def _record_divergence(result: RouteResult, found) -> list[str]:
    """Put a ``Divergence`` on the route: the first diverging layer, else (layers
    matched, all within their floors) the first failing output, and the layers' drift.

    Returns:
        The reason's clause naming it (empty when nothing was located).
    """
    if found is None:
        return []
    result.layer_drift = [layer.to_dict() for layer in found.layers]
    first = found.first_dict()
    if first is None and found.layers:
        worst = next(o for o in result.outputs if not o)
        error = worst.error_vs_float64 if worst.error_vs_float64 is not None else worst.max_abs
        floor = worst.floor if worst.floor is not None else worst.atol
        first = {"at": worst.name, "op": "model output, after every matched layer", "max_abs": error,
                 "floor": floor}
    result.first_divergence = first
    if first is None:
        return []
    return [f"first divergence at {first['at']} ({first['op']}): max abs {first['max_abs']:.3g} > floor "
            f"{first['floor']:.3g}"]
