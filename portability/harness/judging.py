"""The evaluation half of a route: run a loaded artifact on the data, then judge its
outputs (against the float64 floor where there is one), its task metric (R) and,
when outputs fail, where the drift begins.

``route_run`` converts; this module measures. Both the reference and every
candidate go through ``evaluate``; only the reference is also run in float64.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from portability.errors import UsageError
from portability.harness.drift import MASK_INPUT, OutputDrift, Tolerance, compare_outputs
from portability.harness.eval_data import EvalData
from portability.harness.evaluate import Loaded, Subject, fixture_of
from portability.harness.metrics import MetricSpec, score
from portability.harness.noise_floor import Float64Reference, K, apply_floors, float64_outputs
from portability.harness.recoverability import Recoverability, judge_recoverability
from portability.harness.speed import best_call_s

Arrays = dict[str, np.ndarray]


@dataclass
class Evaluation:
    """One artifact's run.

    Attributes:
        outputs: on the (first) drift batch.
        metric: the subject's own metric (a fixture's, a library callable's), or None.
        batch_outputs: outputs per evaluation batch, when a ``MetricSpec`` scores them.
        truth: the float64 run (reference only), or None.
        more_outputs: outputs on each further drift batch (``EvalData.more``).
        more_truths: the float64 runs on them (reference only).
        inference_s: the fastest timed call on the first drift batch (``speed.py``).
    """

    outputs: Arrays
    metric: float | None = None
    batch_outputs: list[Arrays] | None = None
    truth: Float64Reference | None = None
    more_outputs: list[Arrays] = field(default_factory=list)
    more_truths: list[Float64Reference | None] = field(default_factory=list)
    inference_s: float | None = None


@dataclass
class Scoring:
    """How a subject is scored: a ``MetricSpec`` (None: its own metric), and whether the user chose it."""

    spec: MetricSpec | None
    chosen: bool = False
    notes: list[str] = field(default_factory=list)


def evaluate(loaded: Loaded, subject: Subject, data: EvalData, scoring: Scoring, timings: dict[str, float],
             float64: bool = False, float64_limit: int | None = None) -> Evaluation:
    """Run a loaded artifact on the drift batches, the evaluation batches and (``float64``)
    in float64 (module by module past ``float64_limit`` bytes: ``noise_floor.float64_mode``),
    and time it (the first call warms it up); closes it."""
    timings["session"] = timings.get("session", 0.0) + loaded.session_s
    try:
        t0 = time.perf_counter()
        outputs = loaded.predict(data.feed)
        more = [loaded.predict(feed) for _, feed in data.more]
        timings["inference"] = timings.get("inference", 0.0) + time.perf_counter() - t0
        result = Evaluation(outputs, more_outputs=more, inference_s=best_call_s(loaded.predict, data.feed))
        t0 = time.perf_counter()
        if scoring.spec is None:
            result.metric = _own_metric(subject, loaded.predict)
        else:
            result.batch_outputs = [_drift_outputs(data, result, data.model_feed(b)) or loaded.predict(
                data.model_feed(b)) for b in data.batches]
        timings["metric"] = timings.get("metric", 0.0) + time.perf_counter() - t0
        if float64:
            t0 = time.perf_counter()
            result.truth = float64_outputs(loaded.module, data.feed, loaded.output_names, float64_limit)
            result.more_truths = [float64_outputs(loaded.module, feed, loaded.output_names, float64_limit)
                                  for _, feed in data.more]
            timings["float64"] = time.perf_counter() - t0
    finally:
        loaded.close()
    return result


def _drift_outputs(data: EvalData, result: Evaluation, feed: Arrays) -> Arrays | None:
    """The outputs already computed on a drift batch holding the same arrays as ``feed``."""
    runs = [result.outputs, *result.more_outputs]
    for (_, drift), outputs in zip(data.drift_feeds(), runs, strict=True):
        if set(drift) == set(feed) and all(drift[k] is feed[k] for k in feed):
            return outputs
    return None


def _own_metric(subject: Subject, predict) -> float | None:
    if subject.metric is not None:
        return float(subject.metric(predict))
    fixture = fixture_of(subject)
    return None if fixture is None else float(fixture.evaluate_outputs(predict))


def _own_metric_meta(subject: Subject) -> tuple[str, bool]:
    fixture = fixture_of(subject)
    if subject.metric is None and fixture is not None:
        return fixture.metric, fixture.higher_is_better
    return subject.metric_name, subject.higher_is_better


def judge_outputs(reference: Evaluation, candidate: Evaluation, tolerance: Tolerance, data: EvalData,
                  notes: list[str]) -> list[OutputDrift]:
    """Drift per output and drift batch (each entry names its inputs file when there are
    several); against the float64 floor where the reference has a float64 run."""
    truths = [reference.truth, *(reference.more_truths or [None] * len(reference.more_outputs))]
    runs = zip(data.drift_feeds(), [reference.outputs, *reference.more_outputs],
               [candidate.outputs, *candidate.more_outputs], truths, strict=True)
    drifts: list[OutputDrift] = []
    for (label, feed), ref_outputs, cand_outputs, truth in runs:
        part = compare_outputs(ref_outputs, cand_outputs, tolerance, feed)
        if truth is not None and truth.outputs is not None:
            apply_floors(part, ref_outputs, truth.outputs, cand_outputs, feed.get(MASK_INPUT))
        for drift in part:
            drift.inputs = label
        drifts += part
    truth = reference.truth
    if truth is not None and truth.outputs is not None:
        notes.append(f"outputs judged against the reference's float64 run: floor = max(atol, {K:g} x the "
                     "float32 source's own error), per output" + (f"; {truth.how}" if truth.how else ""))
    elif truth is not None:
        notes.append(f"no float64 noise floor available ({truth.why_not}): outputs judged against the tolerances")
    return drifts


def judge_metric(subject: Subject, scoring: Scoring, data: EvalData, reference: Evaluation,
                 candidate: Evaluation, minimum: float, reasons: list[str],
                 notes: list[str]) -> Recoverability | None:
    """R on the subject's metric, or None when none applies. A metric the user chose
    that cannot score the outputs fails the route; a default one only leaves a note."""
    if scoring.spec is None:
        if reference.metric is None or candidate.metric is None:
            return None
        name, higher = _own_metric_meta(subject)
        rec = judge_recoverability(name, higher, reference.metric, candidate.metric, minimum)
    else:
        assert reference.batch_outputs is not None and candidate.batch_outputs is not None
        try:
            scored = score(scoring.spec, candidate.batch_outputs, reference.batch_outputs, data.batches,
                           data.labels_key)
        except UsageError as exc:
            if scoring.chosen:
                reasons.append(f"recoverability not measured: {exc}")
            else:
                notes.append(f"no R: the default metric {scoring.spec.name!r} does not apply ({exc}); "
                             "pass --metric")
            return None
        rec = judge_recoverability(scored.name, scored.higher_is_better, scored.reference, scored.value, minimum)
    if not rec:
        value = "undefined" if rec.value is None else round(rec.value, 4)
        reasons.append(f"recoverability R={value} < {rec.minimum} ({rec.metric} {rec.converted:.4g} vs "
                       f"reference {rec.reference:.4g})")
    return rec


def locate_divergence(subject: Subject, route: tuple[str, ...], comparing: bool, reference_path: Path,
                      candidate: tuple[Path, str, str | None], feed: Arrays, input_names: list[str],
                      ckpt, timings: dict[str, float], notes: list[str]):
    """The first divergence of a failing route (see ``portability.harness.localize``), or None."""
    from portability.harness.localize import localize

    path, fmt, model = candidate
    translated_from = None
    if fmt == "tf-savedmodel":
        if comparing or len(route) != 2:
            notes.append("first divergence: another tool's SavedModel cannot be matched to the reference")
            return None
        translated_from = reference_path if route[0] == "onnx" else None
    t0 = time.perf_counter()
    found, note = localize(subject, feed, input_names, (reference_path, route[0], subject.model),
                           (path, fmt, model), translated_from, ckpt)
    timings["localize"] = time.perf_counter() - t0
    notes.append(note)
    return found
