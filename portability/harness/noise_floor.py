"""The float64 noise floor: judge outputs against the truth, not against another float32 run.

A float32 model is itself off from the exact result by its rounding errors, and
deep or recurrent models accumulate them past a fixed atol (a 2-layer BiLSTM
OCR model: 1.33e-5 max abs from its own float64 run). A converted artifact
computes the same function in another order, so it is off by about as much,
in other places. Comparing the two float32 runs then fails a conversion for
being as accurate as its source.

Where the reference is a torch model, it is also run in float64 on the same
inputs (the truth, to float32's resolution). Per output:

- ``source_error`` = max |float32 source - float64| over the judged elements;
- ``floor`` = max(atol, min(K x source_error, CAP x atol));
- an element of the converted output fails where |converted - float64| exceeds
  both the floor and rtol x |float64|.

K = 4: a float32 computation in another order has an error of the same
distribution as the source's; its maximum over the same elements lands within a
factor of about 2 of the source's (measured on the OCR model's corpus batch: ONNX
1.23e-5 and TF 1.16e-5 against the source's 1.33e-5; on a 2048-term sum in reverse
order, 5.7e-5 against 3.9e-5), so 4 leaves room for the spread without admitting
a real change. The maximum (not an elementwise bound) because the
two errors are independent element by element: where the source happens to be
exact, a correct conversion is not. CAP = 100: a source that differs from its
own float64 run by more than 100 x atol is not computing the same function in
float64 (a dtype-dependent branch), and the floor stops there so that no such
model can hide a broken conversion. A planted change (tanh vs exact GELU,
about 1e-3; a weight 2% off) stays above K x a float32 model's own error.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np

from portability.core.dtypes import is_floating
from portability.harness.drift import OutputDrift, sequence_mask

K = 4.0
CAP = 100.0
# The float64 run converts the model in place, so it holds 8 bytes per floating
# element instead of the model's own 4 (float32) or 2 (bfloat16, float16). It runs
# when that copy is at most FLOAT64_MAX_RATIO x the model's own bytes (every
# float32 model) or at most FLOAT64_SMALL_BYTES (small models, whatever their
# dtype). Past that (a half-precision model would need 4x its bytes), or past the
# memory budget, it runs module by module (``module_by_module_float64``).
FLOAT64_MAX_RATIO = 2.0
FLOAT64_SMALL_BYTES = 1 << 30


@dataclass
class Float64Reference:
    """The reference's float64 outputs on the drift batch, or why there are none.

    Attributes:
        outputs: output name -> float64 array (None when no floor is available).
        why_not: the reason there is no floor (for the route's note).
        how: how the float64 run was made, when not by converting the whole model
            (for the route's note); empty otherwise.
    """

    outputs: dict[str, np.ndarray] | None
    why_not: str = ""
    how: str = ""


@contextmanager
def in_float64(module: Any):
    """Convert a torch module's floating parameters and buffers to float64 in place for the
    block, then give each back its own dtype (float32 -> float64 -> float32 is exact), so a
    module the user's factory shares is left as it was."""
    import torch

    tensors = [t for t in (*module.parameters(), *module.buffers()) if t.is_floating_point()]
    dtypes = [t.dtype for t in tensors]
    try:
        for t in tensors:
            t.data = t.data.to(torch.float64)
        yield module
    finally:
        for t, dtype in zip(tensors, dtypes, strict=True):
            t.data = t.data.to(dtype)


@contextmanager
def module_by_module_float64(module: Any):
    """Like ``in_float64``, but each submodule's own parameters and buffers are float64 only
    while it runs (forward hooks convert them on entry and back on exit), so memory holds
    the model in its own dtype plus one module in float64. On a GPT-2 the outputs are
    bitwise those of ``in_float64``; a model that reads a submodule's weights outside that
    submodule's forward may fail to run this way (then: no floor, with the reason)."""
    import torch

    depth: dict[int, int] = {}
    restore: dict[int, list[tuple[Any, Any]]] = {}

    def enter(mod, _args) -> None:
        key = id(mod)
        depth[key] = depth.get(key, 0) + 1
        if depth[key] > 1:
            return
        owned = [t for t in (*mod._parameters.values(), *mod._buffers.values())
                 if t is not None and t.is_floating_point() and t.dtype != torch.float64]
        restore[key] = [(t, t.dtype) for t in owned]
        for t in owned:
            t.data = t.data.to(torch.float64)

    def leave(mod, _args, _out) -> None:
        key = id(mod)
        depth[key] -= 1
        if depth[key] == 0:
            for t, dtype in restore.pop(key, []):
                t.data = t.data.to(dtype)

    handles = []
    for mod in module.modules():
        if mod._parameters or mod._buffers:
            handles += [mod.register_forward_pre_hook(enter), mod.register_forward_hook(leave)]
    try:
        yield module
    finally:
        for handle in handles:
            handle.remove()
        for pairs in restore.values():  # a run that raised midway
            for t, dtype in pairs:
                t.data = t.data.to(dtype)


def float64_bytes(module: Any) -> tuple[int, int]:
    """(bytes of the module's floating parameters and buffers, the same in float64)."""
    tensors = {id(t): t for t in (*module.parameters(), *module.buffers()) if t.is_floating_point()}
    own = sum(t.numel() * t.element_size() for t in tensors.values())
    return own, sum(t.numel() * 8 for t in tensors.values())


def float64_mode(module: Any, limit_bytes: int | None = None) -> tuple[Any, str]:
    """How to run a module in float64: ``(context manager, how)``; ``how`` is empty for the
    whole model converted in place, else says why it runs module by module.

    Args:
        module: the reference module.
        limit_bytes: the most the whole model in float64 may take (the memory budget's
            share), or None for the size policy alone (``FLOAT64_MAX_RATIO``).
    """
    own, wide = float64_bytes(module)
    gib = 2**30
    if wide > FLOAT64_SMALL_BYTES and wide > FLOAT64_MAX_RATIO * own:
        why = (f"the whole model in float64 would take {wide / gib:.1f} GiB, {wide / max(own, 1):.0f}x its own "
               f"{own / gib:.1f} GiB")
    elif limit_bytes is not None and wide > limit_bytes:
        why = (f"the whole model in float64 would take {wide / gib:.1f} GiB, past the {limit_bytes / gib:.1f} "
               "GiB the memory budget leaves for it")
    else:
        return in_float64(module), ""
    return module_by_module_float64(module), (f"float64 run module by module, each module's weights in "
                                              f"float64 only while it runs ({why})")


def float64_feed(feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The feed with its floating arrays cast to float64."""
    return {k: v.astype(np.float64) if is_floating(v.dtype) else v for k, v in feed.items()}


def float64_outputs(module: Any, feed: dict[str, np.ndarray], output_names,
                    limit_bytes: int | None = None) -> Float64Reference:
    """Run a torch module in float64 on a feed whose floats are cast up.

    Args:
        module: the reference ``torch.nn.Module``, or None (then: no floor).
        feed: the drift batch.
        output_names: names for the outputs, as the float32 run used.
        limit_bytes: see ``float64_mode``.
    """
    if module is None:
        return Float64Reference(None, "the reference is not a torch model")
    from portability.adapters.torch import models as torch_models

    context, how = float64_mode(module, limit_bytes)
    try:
        with context:
            out = torch_models.run_model(module, float64_feed(feed), output_names)
    except Exception as exc:  # a model that cannot run in float64 keeps the tolerances
        first = (str(exc).strip().splitlines() or [""])[0][:200]
        way = " module by module" if how else ""
        return Float64Reference(None, f"the model cannot run in float64{way} ({type(exc).__name__}: {first})")
    return Float64Reference({k: np.asarray(v) for k, v in out.items()}, how=how)


def floor_for(source_error: float, atol: float) -> float:
    """max(atol, min(K x source_error, CAP x atol))."""
    return max(atol, min(K * source_error, CAP * atol))


def source_error(reference: np.ndarray, truth: np.ndarray, judged: np.ndarray | None = None) -> float:
    """max |reference - truth| over the judged elements (all when ``judged`` is None)."""
    diff = np.abs(np.asarray(reference, np.float64) - np.asarray(truth, np.float64))
    if judged is not None:
        diff = diff[judged]
    diff = diff[np.isfinite(diff)]
    return float(diff.max(initial=0.0))


def apply_floor(drift: OutputDrift, reference: np.ndarray, truth: np.ndarray, candidate: np.ndarray,
                mask: np.ndarray | None) -> None:
    """Re-judge one output against the float64 truth and its noise floor (in place).

    The drift figures (max abs, min atol...) stay those against the float32
    reference; ``source_error``, ``floor`` and ``error_vs_float64`` are set and
    ``passed``/``failing``/``reason`` follow the floor. Shape mismatches,
    missing outputs and non-floating outputs keep their verdict.
    """
    ref = np.asarray(reference)
    if (not drift.reason.startswith(f"output {drift.name!r}:") and not drift.passed) or \
            not is_floating(ref.dtype) or np.shape(candidate) != ref.shape or \
            np.shape(truth) != ref.shape:
        return
    real = sequence_mask(ref, mask)
    judged = np.ones(ref.shape, bool) if real is None else real
    t = np.asarray(truth, np.float64)[judged]
    c = np.asarray(candidate, np.float64)[judged]
    drift.source_error = source_error(ref, truth, judged)
    drift.floor = floor_for(drift.source_error, drift.atol)
    with np.errstate(invalid="ignore"):
        agree = (np.isnan(t) & np.isnan(c)) | (np.isinf(t) & (t == c))
        err = np.where(agree, 0.0, np.nan_to_num(np.abs(c - t), nan=np.inf))
        scale = np.where(np.isfinite(t), np.abs(t), 0.0)
        fails = (err > drift.floor) & (err > drift.rtol * scale)
    drift.error_vs_float64 = float(err.max(initial=0.0))
    drift.failing, drift.passed = int(fails.sum()), not fails.any()
    if drift.passed:
        drift.reason = ""
    else:
        drift.reason = (f"output {drift.name!r}: {drift.failing} of {drift.judged} elements outside the float64 "
                        f"noise floor {drift.floor:.3g} / rtol {drift.rtol:g} (max abs error vs float64 "
                        f"{drift.error_vs_float64:.3g}; the float32 source's own {drift.source_error:.3g})")


def apply_floors(drifts: list[OutputDrift], reference: dict[str, np.ndarray], truth: dict[str, np.ndarray],
                 candidate: dict[str, np.ndarray], mask: np.ndarray | None) -> None:
    """``apply_floor`` on every output that has a float64 counterpart."""
    for drift in drifts:
        if drift.name in truth and drift.name in candidate:
            apply_floor(drift, reference[drift.name], truth[drift.name], candidate[drift.name], mask)
