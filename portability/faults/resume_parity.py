"""Resume parity: stop a run, move its checkpoint along a route, resume, compare the losses.

Routes (each starts from the checkpoint the run wrote after step S):

- ``torch``: read the ``.pt`` back and resume.
- ``torch->safetensors->torch``: convert to safetensors (optimizer state as
  tensors + JSON, no pickle) and back to ``.pt``, then resume.
- ``safetensors``: resume straight from the safetensors file.
- ``torch->float16-weights``: the weights pass through float16 (another dtype),
  so parity cannot be bitwise; the deviation is measured.

The resumed run's losses over steps S+1..N are compared with the
uninterrupted run's: ``bitwise`` means every loss has the same float bits.
"""

from __future__ import annotations

import math
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from portability.core.checkpoint import Checkpoint
from portability.errors import UsageError
from portability.training.driver import TrainConfig, checkpoint_path, load_checkpoint, save_checkpoint, train

ROUTES = ("torch", "torch->safetensors->torch", "safetensors", "torch->float16-weights")
# Each resume variant as the report states it: the formats the checkpoint went
# through (like every other route) and the dtype its weights were cast to, if any.
ROUTE_FORMATS: dict[str, tuple[list[str], str | None]] = {
    "torch": (["torch"], None),
    "torch->safetensors->torch": (["torch", "safetensors", "torch"], None),
    "safetensors": (["safetensors"], None),
    "torch->float16-weights": (["torch"], "float16"),
}


@dataclass
class ResumeResult:
    """One route's parity figures.

    Attributes:
        route: the route name.
        resumed_from_step: S.
        steps_compared: N - S.
        bitwise: every resumed loss equals the reference loss bit for bit.
        max_loss_deviation: max |loss_resumed - loss_reference| over the steps.
        max_rel_deviation: the same divided by |loss_reference|.
        final_metric / reference_metric: the task metric after N steps, both runs.
    """

    route: str
    resumed_from_step: int
    steps_compared: int
    bitwise: bool
    max_loss_deviation: float
    max_rel_deviation: float
    final_metric: float | None = None
    reference_metric: float | None = None

    def __bool__(self) -> bool:
        return self.bitwise

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form: ``name`` is the variant, ``route`` its formats, ``dtype`` its cast."""
        data = asdict(self)
        formats, dtype = ROUTE_FORMATS.get(self.route, (self.route.split("->"), None))
        data.update(name=self.route, route=formats, dtype=dtype)
        return data


def loss_deviation(reference: dict[int, float], resumed: dict[int, float]) -> tuple[bool, float, float]:
    """``(bitwise, max abs deviation, max relative deviation)`` over the resumed steps.

    Raises:
        UsageError: the resumed run has steps the reference lacks.
    """
    missing = sorted(set(resumed) - set(reference))
    if missing:
        raise UsageError(f"resumed run has steps {missing[:3]} that the reference run lacks")
    steps = sorted(resumed)
    ref = np.array([reference[s] for s in steps], dtype=np.float64)
    got = np.array([resumed[s] for s in steps], dtype=np.float64)
    bitwise = bool(np.array_equal(ref.view(np.uint64), got.view(np.uint64)))
    diff = np.abs(got - ref)
    rel = diff / np.maximum(np.abs(ref), np.finfo(np.float64).tiny)
    return bitwise, float(diff.max(initial=0.0)), float(rel.max(initial=0.0))


def _through_route(ckpt_path: Path, route: str, work: Path) -> Checkpoint:
    from portability.core.conversion import convert

    if route == "torch":
        return load_checkpoint(ckpt_path)
    if route == "torch->safetensors->torch":
        mid, back = work / "mid.safetensors", work / "back.pt"
        convert(ckpt_path, mid)
        convert(mid, back)
        return load_checkpoint(back)
    if route == "torch->float16-weights":
        ckpt = load_checkpoint(ckpt_path)
        ckpt.tensors = {n: t.astype(np.float16).astype(t.dtype) if t.dtype == np.float32 else t
                        for n, t in ckpt.tensors.items()}
        return ckpt
    raise UsageError(f"unknown resume route {route!r} (known: {', '.join(ROUTES)})")


def resume_parity(make: Callable[[], Any], total_steps: int, resume_at: int,
                  routes: tuple[str, ...] = ROUTES, reference: Any = None) -> list[ResumeResult]:
    """Measure resume parity along each route.

    Args:
        make: builds a fresh, seeded trainable (e.g. ``recipe.make``).
        total_steps: N.
        resume_at: S, a step where the interrupted run checkpoints (0 < S < N).
        routes: which routes to run.
        reference: a ``TrainResult`` of the uninterrupted run, if already done.

    Returns:
        One ``ResumeResult`` per route.

    Raises:
        UsageError: S outside (0, N) or an unknown route.
    """
    if not 0 < resume_at < total_steps:
        raise UsageError(f"resume step {resume_at} must lie strictly between 0 and {total_steps}")
    if reference is None:
        reference = train(make(), TrainConfig(total_steps))
    results = []
    with tempfile.TemporaryDirectory(prefix="portability-resume-") as tmp:
        work = Path(tmp)
        first = make()
        train(first, TrainConfig(resume_at))
        state = first.capture()
        for route in routes:
            fmt = "safetensors" if route == "safetensors" else "torch"
            path = save_checkpoint(_copy(state), checkpoint_path(work / route.replace(">", "_"), resume_at, fmt),
                                   fmt)
            ckpt = load_checkpoint(path) if route == "safetensors" else _through_route(path, route, path.parent)
            resumed = make()
            resumed.restore(ckpt)
            run = train(resumed, TrainConfig(total_steps))
            bitwise, dev, rel = loss_deviation(reference.losses, run.losses)
            bitwise = bitwise and _same(run.final_metric, reference.final_metric)
            results.append(ResumeResult(route, resume_at, total_steps - resume_at, bitwise, dev, rel,
                                        run.final_metric, reference.final_metric))
    return results


def _copy(ckpt: Checkpoint) -> Checkpoint:
    import copy

    return copy.deepcopy(ckpt)


def _same(a: float | None, b: float | None) -> bool:
    if a is None or b is None:
        return a is b
    return a == b or (math.isnan(a) and math.isnan(b))
