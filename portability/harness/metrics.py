"""Task metrics for recoverability R on the user's own model, computed in numpy.

A metric scores one model's outputs on evaluation batches. Built-ins are named
(``--metric NAME``); the user's own is ``package.module:function``, called as
``function(outputs, batch) -> float`` per batch (``batch`` holds the model's
inputs and the labels) and averaged over the batches weighted by their rows.

Built-ins (``NAME`` or ``NAME@OUTPUT`` to score another output than ``logits``,
else the first):

=============== ========= ======================================================
name            labels    score (P)
=============== ========= ======================================================
accuracy        required  share of rows whose argmax is the label
top5            required  share of rows whose label is among the 5 largest
agreement       none      share of argmax positions equal to the reference's
exact-match     optional  share of sequences whose argmax sequence equals the
                          labels (else the reference's argmax sequence)
mse / mae       optional  with labels: error against the labels (lower is
                          better); without: ``1 - sum err / sum ref`` against
                          the reference (``1-nmse`` / ``1-nmae``, higher is better)
cosine          none      mean cosine of each row with the reference's row
perplexity      optional  exp of the mean next-token cross-entropy of the logits
                          on ``input_ids`` (or the labels); lower is better
=============== ========= ======================================================

Reference-relative scores (agreement, cosine, exact-match and 1-nmse/1-nmae
without labels) compare a model with the reference, so the reference's own
score is 1.0 by definition and R is the converted model's score itself.
Labels with a negative value (``-100``) are ignored, as in transformers.
"""

from __future__ import annotations

import importlib
import math
import re
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from portability.errors import UsageError

Outputs = dict[str, np.ndarray]
# name -> (higher is better, labels: "required" | "optional" | "none")
BUILTINS: dict[str, tuple[bool, str]] = {
    "accuracy": (True, "required"), "top5": (True, "required"), "agreement": (True, "none"),
    "exact-match": (True, "optional"), "mse": (False, "optional"), "mae": (False, "optional"),
    "cosine": (True, "none"), "perplexity": (False, "optional"),
}
_CUSTOM = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*:[A-Za-z_][A-Za-z0-9_]*$")
IGNORE_BELOW = 0  # labels below this are padding


@dataclass(frozen=True)
class MetricSpec:
    """A metric chosen by name.

    Attributes:
        name: a built-in name or ``package.module:function``.
        output: the output it scores (None: ``logits`` if present, else the first).
        higher_is_better: direction of the user's own metric (built-ins know theirs).
    """

    name: str
    output: str | None = None
    higher_is_better: bool = True

    @property
    def custom(self) -> bool:
        return self.name not in BUILTINS


def parse_metric(text: str, higher_is_better: bool = True) -> MetricSpec:
    """Parse ``NAME``, ``NAME@OUTPUT`` or ``package.module:function``.

    Raises:
        UsageError: neither a built-in nor a ``module:function`` (the message lists the built-ins).
    """
    name, _, output = text.strip().partition("@")
    if name in BUILTINS or _CUSTOM.match(name):
        return MetricSpec(name, output or None, higher_is_better)
    raise UsageError(f"--metric {text!r}: not a built-in metric ({', '.join(BUILTINS)}) "
                     "nor package.module:function")


def load_custom(spec: MetricSpec) -> Callable[[Outputs, Outputs], float]:
    """Import the user's ``module:function``.

    Raises:
        UsageError: the module cannot be imported or has no such function.
    """
    module_name, _, func = spec.name.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise UsageError(f"--metric {spec.name}: cannot import {module_name} ({exc})") from exc
    fn = getattr(module, func, None)
    if not callable(fn):
        raise UsageError(f"--metric {spec.name}: {module_name} has no function {func!r}")
    return fn


@dataclass
class Scored:
    """A metric's value on one model and how it is named in the report.

    Attributes:
        name: the name R is reported under (``mse`` against labels, ``1-nmse`` against the reference).
        higher_is_better: its direction.
        value: the model's score.
        reference: the reference's score (1.0 for reference-relative scores).
    """

    name: str
    higher_is_better: bool
    value: float
    reference: float


def pick_output(spec: MetricSpec, outputs: Outputs) -> str:
    """The output a metric scores.

    Raises:
        UsageError: the named output does not exist.
    """
    if spec.output is not None:
        if spec.output not in outputs:
            raise UsageError(f"--metric {spec.name}@{spec.output}: the model has no output {spec.output!r} "
                             f"(it has: {', '.join(outputs)})")
        return spec.output
    return "logits" if "logits" in outputs else next(iter(outputs))


def score(spec: MetricSpec, candidate: list[Outputs], reference: list[Outputs], batches: list[Outputs],
          labels_key: str = "labels") -> Scored:
    """Score the candidate's outputs (and the reference's) on every batch.

    Args:
        spec: the metric.
        candidate / reference: outputs per batch (the same batches, in order).
        batches: per batch, the model inputs plus the labels (under ``labels_key``).
        labels_key: where the labels are in each batch.

    Returns:
        A ``Scored`` with both models' values.

    Raises:
        UsageError: labels missing for a metric that needs them, outputs of the wrong form,
            or the user's function failing (its message).
    """
    has_labels = all(labels_key in b for b in batches)
    if spec.custom:
        fn = load_custom(spec)
        return Scored(spec.name, spec.higher_is_better, _custom_mean(fn, candidate, batches, spec),
                      _custom_mean(fn, reference, batches, spec))
    higher, needs = BUILTINS[spec.name]
    if needs == "required" and not has_labels:
        raise UsageError(f"--metric {spec.name} needs labels: put them in the inputs file under "
                         f"{labels_key!r} (or name the key with --labels KEY)")
    relative = spec.name in ("agreement", "cosine") or (spec.name in ("mse", "mae", "exact-match")
                                                         and not has_labels)
    name = f"1-n{spec.name}" if spec.name in ("mse", "mae") and relative else spec.name
    key = pick_output(spec, candidate[0])
    if relative:
        sums = _sums(spec.name, relative, candidate, reference, batches, key, labels_key)
        return Scored(name, True, _finish(spec.name, relative, sums), 1.0)
    cand = _finish(spec.name, False, _sums(spec.name, False, candidate, reference, batches, key, labels_key))
    ref = _finish(spec.name, False, _sums(spec.name, False, reference, reference, batches, key, labels_key))
    return Scored(name, higher, cand, ref)


def _custom_mean(fn, outputs: list[Outputs], batches: list[Outputs], spec: MetricSpec) -> float:
    total = weight = 0.0
    for out, batch in zip(outputs, batches, strict=True):
        try:
            value = float(fn(dict(out), dict(batch)))
        except Exception as exc:  # the user's code: name it, keep one line
            raise UsageError(f"--metric {spec.name} failed: {type(exc).__name__}: {exc}") from exc
        rows = _rows(batch)
        total, weight = total + value * rows, weight + rows
    return total / weight if weight else math.nan


def _rows(batch: Outputs) -> int:
    first = next((v for v in batch.values() if np.ndim(v) >= 1), None)
    return 1 if first is None else int(np.shape(first)[0])


def _sums(name: str, relative: bool, candidate: list[Outputs], reference: list[Outputs],
          batches: list[Outputs], key: str, labels_key: str) -> np.ndarray:
    total = np.zeros(2)
    for cand, ref, batch in zip(candidate, reference, batches, strict=True):
        if key not in cand:
            raise UsageError(f"--metric {name}: output {key!r} missing (has: {', '.join(cand)})")
        c = np.asarray(cand[key], np.float64)
        r = np.asarray(ref[key], np.float64)
        labels = None if relative else batch.get(labels_key)
        total += _partial(name, c, r, labels, batch)
    return total


def _partial(name: str, c: np.ndarray, r: np.ndarray, labels: np.ndarray | None,
             batch: Outputs) -> np.ndarray:
    """(numerator, denominator) of one batch's score."""
    if name in ("accuracy", "top5", "agreement"):
        _need_classes(name, c)
        want = np.argmax(r, -1) if labels is None else np.asarray(labels)
        _same_shape(name, want, c.shape[:-1])
        keep = want >= IGNORE_BELOW
        if name == "top5":
            hit = (np.argsort(-c, axis=-1)[..., :5] == want[..., None]).any(-1)
        else:
            hit = np.argmax(c, -1) == want
        return np.array([float(hit[keep].sum()), float(keep.sum())])
    if name == "exact-match":
        _need_classes(name, c)
        got = np.argmax(c, -1)
        want = np.argmax(r, -1) if labels is None else np.asarray(labels)
        _same_shape(name, want, got.shape)
        axis = _batch_axis(got, _rows(batch))
        same = (got == want) | (want < IGNORE_BELOW)
        per_seq = np.moveaxis(same, axis, 0).reshape(same.shape[axis], -1).all(-1)
        return np.array([float(per_seq.sum()), float(per_seq.size)])
    if name in ("mse", "mae"):
        target = r if labels is None else np.asarray(labels, np.float64)
        _same_shape(name, target, c.shape)
        err = (c - target) ** 2 if name == "mse" else np.abs(c - target)
        if labels is None:  # relative: error against the reference's own size
            return np.array([err.sum(), ((r ** 2) if name == "mse" else np.abs(r)).sum()])
        return np.array([err.sum(), float(err.size)])
    if name == "cosine":
        a, b = c.reshape(-1, c.shape[-1]), r.reshape(-1, r.shape[-1])
        norms = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
        cos = np.where(norms > 0, (a * b).sum(1) / np.where(norms > 0, norms, 1.0),
                       (np.linalg.norm(a, axis=1) == np.linalg.norm(b, axis=1)).astype(float))
        return np.array([float(cos.sum()), float(len(cos))])
    return _perplexity_partial(c, labels, batch)


def _perplexity_partial(logits: np.ndarray, labels: np.ndarray | None, batch: Outputs) -> np.ndarray:
    targets = labels if labels is not None else batch.get("input_ids")
    if targets is None or logits.ndim != 3:
        raise UsageError("--metric perplexity needs [batch, sequence, vocab] logits and an input_ids "
                         "input (or labels)")
    targets = np.asarray(targets)
    _same_shape("perplexity", targets, logits.shape[:-1])
    shifted, nxt = logits[:, :-1], targets[:, 1:]  # position t predicts token t+1
    keep = nxt >= IGNORE_BELOW
    mask = batch.get("attention_mask")
    if mask is not None and labels is None:
        keep &= np.asarray(mask)[:, 1:].astype(bool)
    shifted = shifted - shifted.max(-1, keepdims=True)
    log_probs = shifted - np.log(np.exp(shifted).sum(-1, keepdims=True))
    picked = np.take_along_axis(log_probs, np.where(keep, nxt, 0)[..., None], -1)[..., 0]
    return np.array([float(-picked[keep].sum()), float(keep.sum())])


def _finish(name: str, relative: bool, sums: np.ndarray) -> float:
    num, den = float(sums[0]), float(sums[1])
    if name in ("mse", "mae") and relative:
        return 1.0 - num / den if den > 0 else (1.0 if num == 0 else -math.inf)
    if den == 0:
        return math.nan
    mean = num / den
    return math.exp(mean) if name == "perplexity" else mean


def _need_classes(name: str, c: np.ndarray) -> None:
    if c.ndim < 1 or c.shape[-1] < 2:
        raise UsageError(f"--metric {name} needs class scores (an output whose last axis has 2 or more "
                         f"entries); got shape {list(c.shape)}")


def _same_shape(name: str, want: np.ndarray, shape: tuple) -> None:
    if tuple(np.shape(want)) != tuple(shape):
        raise UsageError(f"--metric {name}: labels of shape {list(np.shape(want))} do not fit outputs "
                         f"scored as {list(shape)}")


def _batch_axis(arr: np.ndarray, rows: int) -> int:
    """The axis that indexes sequences: the first of the batch's length (axis 0 if none)."""
    return next((i for i, n in enumerate(arr.shape) if n == rows), 0)
