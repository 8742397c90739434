"""Weight fidelity: how much of a checkpoint's tensors survived a conversion.

Tensors are matched by name first. A reference tensor missing by name is then
looked for by content among the candidate's unexpected tensors (same bytes,
or the same bytes transposed), so an exporter that renames a weight
(``val_12``) or folds its transpose is reported as *renamed*, not lost.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import xxhash

from portability.core.checkpoint import Checkpoint
from portability.core.tensors import as_array

WORST_LISTED = 5


@dataclass
class TensorChange:
    """One tensor whose dtype, shape or values changed."""

    name: str
    reference: str
    candidate: str
    max_abs_diff: float | None = None
    note: str = ""


@dataclass
class WeightReport:
    """Weight fidelity of a candidate checkpoint against its reference.

    Attributes:
        compared: tensors present in both (by name or by content).
        bitwise_equal: of those, how many have identical dtype, shape and bytes.
        missing: reference tensors the candidate lacks.
        unexpected: candidate tensors the reference lacks (not judged).
        renamed: candidate name -> reference name, matched by content.
        dtype_changes / shape_changes: what changed, per tensor.
        value_changes: tensors with different values (worst first, at most 5).
        max_abs_diff: over all compared tensors of equal shape.
        passed: judged against ``atol`` (None: not judged).
        reason: why it failed, one line.
    """

    compared: int = 0
    bitwise_equal: int = 0
    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    renamed: dict[str, str] = field(default_factory=dict)
    dtype_changes: list[TensorChange] = field(default_factory=list)
    shape_changes: list[TensorChange] = field(default_factory=list)
    value_changes: list[TensorChange] = field(default_factory=list)
    max_abs_diff: float = 0.0
    passed: bool = True
    reason: str = ""

    def __bool__(self) -> bool:
        return self.passed

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form."""
        out = asdict(self)
        if not np.isfinite(self.max_abs_diff):
            out["max_abs_diff"] = "inf" if self.max_abs_diff > 0 else "nan"
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> WeightReport:
        """Inverse of ``to_dict``."""
        data = dict(data)
        for key in ("dtype_changes", "shape_changes", "value_changes"):
            data[key] = [TensorChange(**c) for c in data.get(key, [])]
        if isinstance(data.get("max_abs_diff"), str):
            data["max_abs_diff"] = float(data["max_abs_diff"])
        return cls(**data)


def _digest(a: np.ndarray) -> tuple[str, tuple[int, ...], str]:
    return str(a.dtype), a.shape, xxhash.xxh3_128_hexdigest(np.ascontiguousarray(a).view(np.uint8).data)


def _content_index(candidate: Checkpoint, names: list[str]) -> dict[tuple, str]:
    """Digest -> name, for each named tensor itself and (2-D) its transpose; the
    tensors are read one at a time and only their digests are kept."""
    index: dict[tuple, str] = {}
    for name in names:
        a = as_array(candidate.tensors[name])
        index.setdefault(("same",) + _digest(a), name)
        if a.ndim == 2:
            index.setdefault(("transposed",) + _digest(a.T), name)
    return index


def _max_abs(r: np.ndarray, c: np.ndarray) -> float:
    r, c = r.astype(np.float64), c.astype(np.float64)
    d = np.where(np.isnan(r) & np.isnan(c), 0.0, np.abs(r - c))
    return float(np.nan_to_num(d, nan=np.inf).max(initial=0.0))


def compare_weights(reference: Checkpoint, candidate: Checkpoint, atol: float | None = 0.0) -> WeightReport:
    """Compare every reference tensor with the candidate's.

    Args:
        reference / candidate: the checkpoints (aliases of tied weights are skipped).
        atol: largest allowed absolute difference per element; 0 demands bitwise
            equality; None reports without judging.

    Tensors are read one pair at a time (a lazy checkpoint is never held whole).

    Returns:
        A ``WeightReport``. It fails on missing tensors, shape changes, or values
        beyond ``atol``; a reason names the first offending tensor.
    """
    ref_names = reference.canonical_names()
    cand_names = candidate.canonical_names()
    rep = WeightReport()
    known = set(ref_names)
    unexpected = {n: None for n in cand_names if n not in known}
    index = _content_index(candidate, list(unexpected))
    present = set(cand_names)
    for name in ref_names:  # one pair of tensors in memory at a time, whatever the model's size
        r = as_array(reference.tensors[name])
        if name not in present:
            hit = index.get(("same",) + _digest(r)) or index.get(("transposed",) + _digest(r))
            if hit is None:
                rep.missing.append(name)
                continue
            rep.renamed[hit] = name
            unexpected.pop(hit, None)
            rep.compared += 1
            rep.bitwise_equal += 1
            continue
        rep.compared += 1
        _compare_pair(rep, name, r, as_array(candidate.tensors[name]))
    rep.unexpected = sorted(unexpected)
    rep.value_changes.sort(key=lambda ch: -(ch.max_abs_diff or 0.0))
    _judge(rep, atol)
    del rep.value_changes[WORST_LISTED:]
    return rep


def _compare_pair(rep: WeightReport, name: str, r: np.ndarray, c: np.ndarray) -> None:
    if r.dtype != c.dtype:
        rep.dtype_changes.append(TensorChange(name, str(r.dtype), str(c.dtype)))
    if r.shape != c.shape:
        note = "same values transposed" if r.ndim == 2 and r.T.shape == c.shape and \
            np.array_equal(r.T, c) else ""
        rep.shape_changes.append(TensorChange(name, str(list(r.shape)), str(list(c.shape)), note=note))
        return
    if r.dtype == c.dtype and _digest(r) == _digest(c):
        rep.bitwise_equal += 1
        return
    diff = _max_abs(r, c)
    rep.max_abs_diff = max(rep.max_abs_diff, diff)
    if diff == 0.0:
        return
    note = "equals the reference transposed" if r.ndim == 2 and r.shape[0] == r.shape[1] and \
        np.array_equal(r.T, c) else ""
    rep.value_changes.append(TensorChange(name, str(r.dtype), str(c.dtype), max_abs_diff=diff, note=note))


def _judge(rep: WeightReport, atol: float | None) -> None:
    if atol is None:
        return
    over = [ch for ch in rep.value_changes if (ch.max_abs_diff or 0.0) > atol]
    if rep.missing:
        more = f" (+{len(rep.missing) - 1} more)" if len(rep.missing) > 1 else ""
        rep.reason = f"weights: tensor {rep.missing[0]!r} missing from the candidate{more}"
    elif rep.shape_changes:
        ch = rep.shape_changes[0]
        rep.reason = f"weights: tensor {ch.name!r} has shape {ch.candidate}, reference {ch.reference}"
    elif over:
        ch = over[0]
        note = f"; {ch.note}" if ch.note else ""
        rep.reason = (f"weights: {len(over)} tensor(s) differ beyond atol {atol:g}; worst {ch.name!r} "
                      f"max abs diff {ch.max_abs_diff:.3g}{note}")
    rep.passed = not rep.reason
