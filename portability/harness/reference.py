"""The reference of a check: the source checkpoint read, run and scored once.

Every route of a subject is judged against the same reference. A worker keeps
the references it computed (``reference_for``, keyed by the content of the
files they come from). For a large checkpoint the check computes the reference
once, in its own worker, before the routes (``run_reference``): the routes'
workers then receive its outputs with their jobs and only re-read the
checkpoint lazily, so no route worker holds the reference model or its float64
copy (``portability.harness.memory_budget`` sizes the routes without them).
"""

from __future__ import annotations

import gc
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from portability.core import fallbacks
from portability.core.checkpoint import Checkpoint
from portability.core.formats import ReadOptions, load_adapter, spec_for
from portability.harness.eval_data import EvalData, load_eval_data, metric_for
from portability.harness.evaluate import Loaded, evaluation_inputs, fixture_of, load_artifact, load_inputs
from portability.harness.judging import Evaluation, Scoring, evaluate
from portability.harness.peak_memory import measured
from portability.harness.reference_cache import BoundedCache, content_identity
from portability.harness.route_steps import STEP_SUFFIX, write_step

if TYPE_CHECKING:
    from portability.harness.route_run import RouteJob


@dataclass
class Reference:
    """The reference a route is judged against (``outputs`` None: weights only)."""

    ckpt: Checkpoint
    path: Path
    inputs: dict[str, np.ndarray]
    input_names: list[str]
    outputs: dict[str, np.ndarray] | None
    metric: float | None
    notes: list[str] = field(default_factory=list)
    fallbacks: list[str] = field(default_factory=list)
    # the evaluation data, the reference's runs on it and how it is scored (None: weights only)
    data: EvalData | None = None
    evaluation: Evaluation | None = None
    scoring: Scoring | None = None
    weights_key: str | None = None


@dataclass
class ReferenceRun:
    """A reference computed in another worker, as it travels to the routes' workers: all
    of ``Reference`` but the checkpoint (re-read lazily where it is used), or the error
    that computing it raised (each of its routes then fails or errors with it).

    Attributes:
        reference: the reference without its checkpoint (``ckpt`` None), or None.
        error: the exception, or None.
        timings: seconds per phase spent computing it.
    """

    reference: Reference | None
    error: BaseException | None = None
    timings: dict[str, float] = field(default_factory=dict)


# Reference key -> reference: a few subjects' worth (the zoo has five), emptied by
# ``clear_references`` when a check starts.
_REFERENCES: BoundedCache[Reference] = BoundedCache(8)


def clear_references() -> None:
    """Forget the cached references."""
    _REFERENCES.clear()


def reference_key(job: RouteJob) -> tuple:
    """The reference's identity: the subject, and the content of the files it is made of."""
    s = job.subject
    config = f"{s.model[3:]}/config.json" if s.model and s.model.startswith("hf:") else None
    return (s.label, s.model, s.inputs, s.checkpoint, s.fixture, job.route[0], job.workdir,
            content_identity(s.checkpoint), content_identity(s.inputs), content_identity(config),
            s.metric_spec, s.labels, s.eval_data,  # what the reference is scored on
            tuple(content_identity(p) for p in s.more_inputs), s.dynamic)


def reference_for(job: RouteJob, timings: dict[str, float]) -> Reference:
    """The job's reference: cached in this worker, else adopted from the job's
    ``ReferenceRun`` (its checkpoint re-read), else computed here.

    Raises:
        PortabilityError (or any exception): the one computing the reference raised.
    """
    key = reference_key(job)
    ref = _REFERENCES.get(key)
    if ref is not None:
        fallbacks.replay(ref.fallbacks)
        return ref
    run: ReferenceRun | None = getattr(job, "reference", None)
    if run is not None and run.error is not None:
        raise run.error
    if run is not None and run.reference is not None:
        ref = _adopt(job, run.reference)
        fallbacks.replay(ref.fallbacks)
    else:
        with fallbacks.collect() as found:
            ref = _new_reference(job, timings)
        ref.fallbacks = list(found)
    _REFERENCES.put(key, ref)
    return ref


def run_reference(job: RouteJob) -> ReferenceRun:
    """Worker entry: compute a job's reference for the routes of its subject.

    Returns:
        A ``ReferenceRun``: the reference without its checkpoint, or the error.
    """
    timings: dict[str, float] = {}
    with fallbacks.collect() as found, measured("reference"):
        try:
            ref = _new_reference(job, timings)
        except Exception as exc:  # every route of the subject reports it, as if it had computed it
            return ReferenceRun(None, _picklable(exc), timings)
    ref.fallbacks = list(found)
    ref.ckpt = None  # type: ignore[assignment]  # re-read lazily by each route's worker
    gc.collect()
    return ReferenceRun(ref, None, timings)


def _picklable(exc: Exception) -> BaseException:
    """The exception itself when it survives pickling (typed errors do), else a plain
    ``RuntimeError`` with its text (routes then report an internal error, as before)."""
    import pickle

    try:
        pickle.loads(pickle.dumps(exc))
        return exc
    except Exception:
        return RuntimeError(f"{type(exc).__name__}: {exc}")


def _adopt(job: RouteJob, ref: Reference) -> Reference:
    """A reference computed elsewhere, with the checkpoint read here (lazily)."""
    subject = job.subject
    if subject.checkpoint:
        ckpt = load_adapter(job.route[0]).read(Path(subject.checkpoint), ReadOptions(
            trust_pickle=subject.trust_pickle, weights_key=ref.weights_key))
    else:
        ckpt = fixture_of(subject).pretrained()
    return Reference(ckpt, ref.path, ref.inputs, ref.input_names, ref.outputs, ref.metric, list(ref.notes),
                     list(ref.fallbacks), ref.data, ref.evaluation, ref.scoring, ref.weights_key)


def _new_reference(job: RouteJob, timings: dict[str, float]) -> Reference:
    """Read (or, for a fixture, write) the source artifact, then run and score it."""
    subject = job.subject
    fmt = job.route[0]
    t0 = time.perf_counter()
    if subject.checkpoint:
        path = Path(subject.checkpoint)
        ckpt = load_adapter(fmt).read(path, ReadOptions(trust_pickle=subject.trust_pickle))
    else:
        fixture = fixture_of(subject)
        ckpt = fixture.pretrained()
        path = Path(tempfile.mkdtemp(prefix="reference-", dir=job.workdir)) / f"reference{STEP_SUFFIX[fmt]}"
        write_step(fmt, ckpt, path, subject)
    timings["convert"] = timings.get("convert", 0.0) + time.perf_counter() - t0
    outputs = metric = data = evaluation = scoring = weights_key = None
    inputs: dict[str, np.ndarray] = {}
    names: list[str] = []
    notes: list[str] = []
    if subject.model or spec_for(fmt).stores_graph:
        data = load_eval_data(subject.inputs, subject.eval_data, subject.labels, lambda: load_inputs(subject),
                              subject.more_inputs)
        inputs = data.feed
        names = evaluation_inputs(subject, inputs)
        fixture = fixture_of(subject)
        spec, chosen = metric_for(subject.metric_spec, subject.higher_is_better, subject.model,
                                  subject.metric is not None or fixture is not None, data.has_labels,
                                  subject.labels)
        scoring = Scoring(spec, chosen)
        loaded = _load_reference(job, fmt, path, names, ckpt)
        weights_key = loaded.weights_key
        if weights_key is not None and subject.checkpoint:
            # The model fits another candidate (``generator`` next to ``discriminator``):
            # convert that one, so every route compares the weights that run.
            ckpt = load_adapter(fmt).read(path, ReadOptions(trust_pickle=subject.trust_pickle,
                                                            weights_key=weights_key))
        notes = loaded.notes
        evaluation = evaluate(loaded, subject, data, scoring, timings, float64=True,
                              float64_limit=getattr(job, "float64_limit", None))
        del loaded  # the reference model: gone before anything is converted
        outputs, metric = evaluation.outputs, evaluation.metric
        notes = notes + data.notes
    return Reference(ckpt, path, inputs, names, outputs, metric, notes, data=data, evaluation=evaluation,
                     scoring=scoring, weights_key=weights_key)


def _load_reference(job: RouteJob, fmt: str, path: Path, names: list[str], ckpt: Checkpoint) -> Loaded:
    subject = job.subject
    fixture = fixture_of(subject)
    if fixture is not None and fixture.framework == "tensorflow":  # the eager Keras model is the reference
        t0 = time.perf_counter()
        return Loaded(fixture.predictor(fixture.load(ckpt)), time.perf_counter() - t0)
    return load_artifact(path, fmt, subject, subject.model, names)
