"""First divergence: the first intermediate tensor whose drift exceeds its floor.

When a route's outputs fail, the reference and the candidate are run again
with their intermediate tensors exposed, the tensors are matched (module
scopes, ONNX value names; see ``portability.harness.taps``), and each matched
pair is judged in execution order like an output: against the float64
reference and its noise floor where the reference is a torch model, else
against the float32 reference and the tolerances. The first pair that fails,
with every pair before it within its floor, is where the drift begins.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from portability.harness.noise_floor import floor_for, source_error

MAX_LAYERS = 400  # layers kept for the report's chart


@dataclass
class Tap:
    """One matched intermediate tensor.

    Attributes:
        at: the layer (module path) or tensor name.
        op: the op or module type that produced it.
        reference / truth / candidate: its value in the float32 reference, the
            float64 reference (None without one) and the candidate.
    """

    at: str
    op: str
    reference: np.ndarray
    truth: np.ndarray | None
    candidate: np.ndarray


@dataclass
class LayerDrift:
    """One matched layer's drift: ``max_abs`` error against the truth and its ``floor``."""

    at: str
    op: str
    max_abs: float
    floor: float
    exceeded: bool

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LayerDrift:
        return cls(**data)


@dataclass
class Divergence:
    """The first diverging layer (None when every matched layer is within its floor)
    and every matched layer's drift, in execution order."""

    first: LayerDrift | None
    layers: list[LayerDrift] = field(default_factory=list)

    def first_dict(self) -> dict[str, Any] | None:
        """``{"at", "op", "max_abs", "floor"}`` of the first diverging layer, or None."""
        if self.first is None:
            return None
        return {"at": self.first.at, "op": self.first.op, "max_abs": self.first.max_abs,
                "floor": self.first.floor}


def judge_tap(tap: Tap, atol: float, rtol: float) -> LayerDrift | None:
    """A tap's drift, or None when its shapes do not match (nothing to compare)."""
    ref = np.asarray(tap.reference)
    cand = np.asarray(tap.candidate)
    if ref.shape != cand.shape or not np.issubdtype(ref.dtype, np.floating):
        return None
    truth = ref if tap.truth is None or np.shape(tap.truth) != ref.shape else np.asarray(tap.truth)
    floor = floor_for(source_error(ref, truth), atol) if tap.truth is not None else atol
    t, c = truth.astype(np.float64), cand.astype(np.float64)
    with np.errstate(invalid="ignore"):
        both_nan = np.isnan(t) & np.isnan(c)
        err = np.where(both_nan, 0.0, np.nan_to_num(np.abs(c - t), nan=np.inf))
        scale = np.where(np.isfinite(t), np.abs(t), 0.0)
        exceeded = bool(((err > floor) & (err > rtol * scale)).any())
    return LayerDrift(tap.at, tap.op, float(err.max(initial=0.0)), float(floor), exceeded)


def locate(taps: list[Tap], atol: float, rtol: float) -> Divergence:
    """Judge taps in execution order; the first that exceeds its floor is the divergence."""
    layers = [d for d in (judge_tap(t, atol, rtol) for t in taps) if d is not None]
    first = next((d for d in layers if d.exceeded), None)
    return Divergence(first, layers[:MAX_LAYERS])
