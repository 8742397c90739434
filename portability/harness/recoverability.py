"""Recoverability R: how much of the task metric a converted artifact keeps.

For a higher-is-better metric (accuracy), ``R = P_converted / P_reference``.
For a lower-is-better metric (loss, perplexity), ``R = P_reference / P_converted``.
Either way R = 1 is perfect, R < 1 is worse than the reference and R > 1 is
better; a route passes when R >= the policy's minimum (0.99 by default).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any


@dataclass
class Recoverability:
    """The task metric on both sides and the resulting R.

    Attributes:
        metric: metric name (``accuracy``, ``perplexity``...).
        higher_is_better: direction of the metric.
        reference / converted: the metric on the reference and on the artifact.
        value: R (see the module docstring); None when it is undefined.
        minimum: R must be at least this.
        passed: R >= minimum.
    """

    metric: str
    higher_is_better: bool
    reference: float
    converted: float
    value: float | None
    minimum: float
    passed: bool

    def __bool__(self) -> bool:
        return self.passed

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form (non-finite numbers as strings)."""
        out = asdict(self)
        for key in ("reference", "converted", "value"):
            v = out[key]
            if isinstance(v, float) and not math.isfinite(v):
                out[key] = str(v)
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Recoverability:
        """Inverse of ``to_dict``."""
        data = dict(data)
        for key in ("reference", "converted", "value"):
            if isinstance(data.get(key), str):
                data[key] = float(data[key])
        return cls(**data)


def recoverability_ratio(reference: float, converted: float, higher_is_better: bool) -> float | None:
    """R for one pair of metric values.

    Returns:
        ``converted / reference`` (higher is better) or ``reference / converted``
        (lower is better); 1.0 when both are equal (including both 0); None when
        the ratio is undefined (a zero denominator, a NaN).
    """
    if math.isnan(reference) or math.isnan(converted):
        return None
    if reference == converted:
        return 1.0
    num, den = (converted, reference) if higher_is_better else (reference, converted)
    if den == 0:
        return None if num == 0 else (math.inf if num > 0 else None)
    if math.isinf(den):
        return 0.0 if math.isfinite(num) else None
    return num / den


def judge_recoverability(metric: str, higher_is_better: bool, reference: float, converted: float,
                         minimum: float) -> Recoverability:
    """Compute R and its verdict; an undefined R fails."""
    value = recoverability_ratio(float(reference), float(converted), higher_is_better)
    passed = value is not None and value >= minimum
    return Recoverability(metric, higher_is_better, float(reference), float(converted), value, minimum, passed)
