"""Output drift statistics and the tolerance policy that judges them.

Tolerances are data, as in Polygraphy's ``CompareFunc.simple``: ``atol`` and
``rtol`` are each a number or a dict keyed by output name, with ``""`` as the
default key. An element fails only where it exceeds *both*:
``|c - r| > atol`` and ``|c - r| > rtol * |r|``.

Defaults live in ``DTYPE_DEFAULTS``, per dtype of the reference output:

======== ======= ======= ==============================================
dtype    atol    rtol    why
======== ======= ======= ==============================================
float64  1e-7    1e-7    double precision leaves room only for reordering
float32  1e-5    1e-5    optimum's and Polygraphy's atol default
float16  1e-3    1e-3    ~8 ulp at 1.0 (fp16 has a 10-bit mantissa)
bfloat16 1e-2    1e-2    ~1 ulp at 1.0 (bf16 has a 7-bit mantissa)
integer  0       0       token ids, indices and masks must match exactly
======== ======= ======= ==============================================

Mask-aware judging: a sequence output of a model fed an ``attention_mask``
(an output whose leading dimensions equal the mask's shape) is judged only at
real positions; the drift at padded positions is reported apart and never
fails the output, because those values carry no meaning.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np

from portability.limits import MIN_RECOVERABILITY

TolValue = float | dict[str, float]

DTYPE_DEFAULTS: dict[str, tuple[float, float]] = {
    "float64": (1e-7, 1e-7),
    "float32": (1e-5, 1e-5),
    "float16": (1e-3, 1e-3),
    "bfloat16": (1e-2, 1e-2),
    "integer": (0.0, 0.0),
}
MASK_INPUT = "attention_mask"


def default_tolerance(dtype: Any) -> tuple[float, float]:
    """The default (atol, rtol) for outputs of a dtype.

    Args:
        dtype: numpy dtype (or anything ``np.dtype`` accepts, ml_dtypes included).

    Returns:
        (atol, rtol) from ``DTYPE_DEFAULTS``; unknown float types get float32's.
    """
    dt = np.dtype(dtype)
    if dt.kind in "iub":
        return DTYPE_DEFAULTS["integer"]
    return DTYPE_DEFAULTS.get(dt.name, DTYPE_DEFAULTS["float32"])


def _pick(value: TolValue | None, output: str) -> float | None:
    if value is None or isinstance(value, (int, float)):
        return value
    return value.get(output, value.get(""))


def _merge(base: TolValue | None, over: TolValue | None) -> TolValue | None:
    if over is None:
        return base
    if isinstance(over, (int, float)) or base is None:
        return over
    merged = {"": base} if isinstance(base, (int, float)) else dict(base)
    merged.update(over)
    return merged


@dataclass
class Tolerance:
    """The tolerance policy for one check.

    Attributes:
        atol / rtol: a number, or a dict by output name with ``""`` as default;
            None means the per-dtype default.
        min_recoverability: R must be at least this.
        weights_atol: largest weight difference allowed; 0 demands bitwise
            equality, None leaves weights unjudged.
        routes: overrides by route name (``"torch->onnx"``); their set fields
            win over these (dict entries merge key by key).
    """

    atol: TolValue | None = None
    rtol: TolValue | None = None
    min_recoverability: float = MIN_RECOVERABILITY
    weights_atol: float | None = 0.0
    routes: dict[str, Tolerance] = field(default_factory=dict)

    def for_route(self, route: str) -> Tolerance:
        """The policy for one route, with its overrides merged in."""
        over = self.routes.get(route)
        if over is None:
            return replace(self, routes={})
        return Tolerance(atol=_merge(self.atol, over.atol), rtol=_merge(self.rtol, over.rtol),
                         min_recoverability=over.min_recoverability
                         if over.min_recoverability != MIN_RECOVERABILITY else self.min_recoverability,
                         weights_atol=over.weights_atol if over.weights_atol != 0.0 else self.weights_atol)

    def resolve(self, output: str, dtype: Any) -> tuple[float, float]:
        """The (atol, rtol) that apply to one output of a given dtype."""
        d_atol, d_rtol = default_tolerance(dtype)
        atol, rtol = _pick(self.atol, output), _pick(self.rtol, output)
        return (d_atol if atol is None else float(atol), d_rtol if rtol is None else float(rtol))

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form."""
        out = {k: v for k, v in asdict(self).items() if k != "routes"}
        out["routes"] = {name: t.to_dict() for name, t in self.routes.items()}
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Tolerance:
        """Inverse of ``to_dict``."""
        routes = {name: cls.from_dict(t) for name, t in (data.get("routes") or {}).items()}
        return cls(atol=data.get("atol"), rtol=data.get("rtol"),
                   min_recoverability=data.get("min_recoverability", MIN_RECOVERABILITY),
                   weights_atol=data.get("weights_atol", 0.0), routes=routes)


@dataclass
class OutputDrift:
    """Drift of one output between a reference and a candidate run.

    Figures cover the judged (real, unpadded) elements. ``min_atol`` is the
    smallest atol that passes at the policy's rtol; ``min_rtol`` the smallest
    rtol that passes at the policy's atol. ``padded_max_abs`` is the drift at
    padded positions (None when nothing was masked); it is never judged.
    Against a float64 reference (``portability.harness.noise_floor``):
    ``source_error`` is the float32 source's own max abs error, ``floor`` the
    bound the candidate's error must keep, ``error_vs_float64`` that error;
    all None when no float64 floor was available. ``inputs`` names the inputs
    file the outputs were computed on, where a check runs on several (else None).
    """

    name: str
    shape: list[int]
    dtype: str
    passed: bool
    reason: str = ""
    atol: float = 0.0
    rtol: float = 0.0
    max_abs: float = 0.0
    max_rel: float = 0.0
    mean_abs: float = 0.0
    min_atol: float = 0.0
    min_rtol: float = 0.0
    cosine: float | None = None
    top1_agreement: float | None = None
    failing: int = 0
    judged: int = 0
    padded: int = 0
    padded_max_abs: float | None = None
    source_error: float | None = None
    floor: float | None = None
    error_vs_float64: float | None = None
    inputs: str | None = None

    def __bool__(self) -> bool:
        return self.passed

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form (non-finite floats become strings ``"inf"``/``"nan"``)."""
        return {k: _json_float(v) for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> OutputDrift:
        """Inverse of ``to_dict``."""
        return cls(**{k: _from_json_float(v) for k, v in data.items()})


def _json_float(v: Any) -> Any:
    if isinstance(v, float) and not np.isfinite(v):
        return "nan" if np.isnan(v) else ("inf" if v > 0 else "-inf")
    return v


def _from_json_float(v: Any) -> Any:
    return float(v) if v in ("nan", "inf", "-inf") else v


def sequence_mask(output: np.ndarray, mask: np.ndarray | None) -> np.ndarray | None:
    """Boolean array of the output's shape: True at real positions.

    Returns None when the output is not a sequence output of the masked input
    (its leading dimensions differ from the mask's shape).
    """
    if mask is None or output.ndim < mask.ndim or output.shape[: mask.ndim] != mask.shape:
        return None
    real = mask.astype(bool).reshape(mask.shape + (1,) * (output.ndim - mask.ndim))
    return np.broadcast_to(real, output.shape)


def compare_output(name: str, reference: np.ndarray, candidate: np.ndarray, atol: float, rtol: float,
                   mask: np.ndarray | None = None) -> OutputDrift:
    """Drift statistics and verdict for one output.

    Args:
        name: output name, for the report.
        reference / candidate: the two runs' values.
        atol / rtol: the element test; an element fails only if it exceeds both.
        mask: the model's attention mask, or None; see ``sequence_mask``.

    Returns:
        An ``OutputDrift``; shape mismatches and NaN/inf where the reference is
        finite are failures with the reason.
    """
    ref, cand = np.asarray(reference), np.asarray(candidate)
    base: dict[str, Any] = dict(name=name, shape=list(ref.shape), dtype=str(ref.dtype), atol=atol, rtol=rtol)
    if ref.shape != cand.shape:
        return OutputDrift(passed=False, reason=f"output {name!r} has shape {list(cand.shape)}, "
                           f"reference {list(ref.shape)}", **base)
    r, c = ref.astype(np.float64), cand.astype(np.float64)
    real = sequence_mask(ref, mask)
    with np.errstate(invalid="ignore", divide="ignore"):
        agree = (np.isnan(r) & np.isnan(c)) | (np.isinf(r) & (r == c))
        diff = np.where(agree, 0.0, np.nan_to_num(np.abs(c - r), nan=np.inf))
        judged = np.ones(ref.shape, bool) if real is None else real
        padded = None if real is None else ~real
        d = diff[judged]
        rv = np.where(np.isfinite(r[judged]), np.abs(r[judged]), 0.0)  # a non-finite mismatch always fails
        rel = np.where(d == 0, 0.0, d / rv)
        fails = (d > atol) & (d > rtol * rv)
    drift = OutputDrift(
        passed=not fails.any(), **base,
        max_abs=float(d.max(initial=0.0)), max_rel=float(rel.max(initial=0.0)),
        mean_abs=float(d.mean()) if d.size else 0.0,
        min_atol=float(d[d > rtol * rv].max(initial=0.0)),
        min_rtol=float(rel[d > atol].max(initial=0.0)),
        cosine=_cosine(r[judged], c[judged]), top1_agreement=_top1(r, c, real),
        failing=int(fails.sum()), judged=int(d.size),
        padded=0 if padded is None else int(padded.sum()),
        padded_max_abs=None if padded is None else float(diff[padded].max(initial=0.0)))
    if not drift.passed:
        drift.reason = (f"output {name!r}: {drift.failing} of {drift.judged} elements outside "
                        f"atol {atol:g} / rtol {rtol:g} (max abs diff {drift.max_abs:.3g}, "
                        f"would pass at atol {drift.min_atol:.3g})")
    return drift


def _cosine(r: np.ndarray, c: np.ndarray) -> float | None:
    if r.size == 0 or not (np.isfinite(r).all() and np.isfinite(c).all()):
        return None
    nr, nc = np.linalg.norm(r), np.linalg.norm(c)
    if nr == 0 or nc == 0:
        return 1.0 if nr == nc else 0.0
    return float(np.dot(r.ravel(), c.ravel()) / (nr * nc))


def _top1(r: np.ndarray, c: np.ndarray, real: np.ndarray | None) -> float | None:
    """Share of rows whose argmax over the last axis agrees (logit-like outputs)."""
    if r.ndim < 2 or r.shape[-1] < 2:
        return None
    same = np.argmax(r, axis=-1) == np.argmax(c, axis=-1)
    if real is not None:
        same = same[real[..., 0]]
    return float(same.mean()) if same.size else None


def compare_outputs(reference: dict[str, np.ndarray], candidate: dict[str, np.ndarray],
                    tolerance: Tolerance | None = None,
                    inputs: dict[str, np.ndarray] | None = None) -> list[OutputDrift]:
    """Compare every reference output with the candidate's output of the same name.

    Args:
        reference / candidate: outputs by name.
        tolerance: the policy (defaults per dtype).
        inputs: the inputs both runs saw; an ``attention_mask`` among them
            turns on mask-aware judging.

    Returns:
        One ``OutputDrift`` per reference output, in order; a missing
        candidate output is a failed entry naming what the candidate had.
    """
    tolerance = tolerance or Tolerance()
    mask = None if inputs is None else inputs.get(MASK_INPUT)
    drifts = []
    for name, ref in reference.items():
        ref = np.asarray(ref)
        atol, rtol = tolerance.resolve(name, ref.dtype)
        if name not in candidate:
            drifts.append(OutputDrift(name=name, shape=list(ref.shape), dtype=str(ref.dtype), passed=False,
                                      atol=atol, rtol=rtol,
                                      reason=f"output {name!r} missing from the candidate "
                                             f"(it has: {', '.join(candidate) or 'none'})"))
            continue
        drifts.append(compare_output(name, ref, candidate[name], atol, rtol, mask))
    return drifts
