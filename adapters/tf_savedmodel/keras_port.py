"""Port a Keras SavedModel's weights onto a user's PyTorch twin, and prove it by outputs.

``portability convert keras_sm/ out.pt --model pkg.mod:factory`` reads the
SavedModel's variables (never running its graph for the mapping), fills the
twin's state_dict with ``keras_mapping``, then runs the SavedModel's serving
signature and the twin on the same inputs. The port counts only if they agree;
when the twin flattens a feature map, both flatten orders are tried and the one
whose outputs agree is kept (the notes say which).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from portability.core.checkpoint import Checkpoint
from portability.errors import ToleranceError, UsageError

logger = logging.getLogger(__name__)
DEFAULT_ATOL = 1e-4
DEFAULT_RTOL = 1e-4


@dataclass
class PortResult:
    """A port that agreed with TensorFlow.

    Attributes:
        checkpoint: the twin's state_dict filled from Keras.
        max_abs_diff: worst output difference against the SavedModel.
        notes: what the mapping did and what to know (BN epsilon, flatten order, input layout).
    """

    checkpoint: Checkpoint
    max_abs_diff: float
    notes: list[str] = field(default_factory=list)


def is_keras_native(ckpt: Checkpoint) -> bool:
    """A SavedModel whose variables carry Keras names (not one this package wrote)."""
    return ckpt.metadata.get("portability.source") == "tf-savedmodel"


def _feed(runner, inputs: str | Path | None) -> dict[str, np.ndarray]:
    if inputs is not None:
        with np.load(inputs, allow_pickle=False) as data:
            return {k: data[k] for k in data.files}
    rng = np.random.default_rng(0)
    feed = {}
    for key, spec in runner.input_specs.items():
        dims = spec.shape.as_list() if spec.shape.rank is not None else [2]
        shape = [d if d else (2 if i == 0 else 16) for i, d in enumerate(dims)]
        feed[key] = rng.standard_normal(shape).astype(spec.dtype.as_numpy_dtype)
    return feed


def _run_twin(twin, feed: dict[str, np.ndarray], notes: list[str]) -> np.ndarray:
    """The twin's first output on the Keras inputs, or on them in NCHW when it is channels-first."""
    from portability.adapters.torch.models import run_model

    try:
        return np.asarray(next(iter(run_model(twin, feed).values())))
    except RuntimeError as first:
        if not all(v.ndim == 4 for v in feed.values()):
            raise UsageError(f"the twin cannot run on the Keras model's inputs: {first}") from first
        out = run_model(twin, {k: np.ascontiguousarray(v.transpose(0, 3, 1, 2)) for k, v in feed.items()})
        note = "the twin is channels-first: inputs were fed to it as NCHW"
        if note not in notes:
            notes.append(note)
        return np.asarray(next(iter(out.values())))


def port_to_twin(savedmodel: str | Path, ckpt: Checkpoint, model_spec: str, inputs: str | Path | None = None,
                 atol: float = DEFAULT_ATOL, rtol: float = DEFAULT_RTOL) -> PortResult:
    """Map the Keras variables in ``ckpt`` onto the twin ``model_spec`` builds and check outputs.

    Args:
        savedmodel: the SavedModel directory ``ckpt`` was read from (its serving
            signature gives the reference outputs).
        ckpt: its variables, under Keras names.
        model_spec: ``pkg.module:factory`` building the twin.
        inputs: an ``.npz`` of the SavedModel's inputs (default: random, shaped like its signature).
        atol / rtol: agreement tolerance (an element fails past both).

    Returns:
        The port.

    Raises:
        AmbiguousMappingError: a layer fits several twin modules.
        ToleranceError: no mapping makes the twin agree with the SavedModel (drift named).
        UsageError: the twin cannot be built or run.
    """
    import torch

    from portability.adapters.tf_savedmodel.keras_mapping import map_keras_to_torch
    from portability.adapters.tf_savedmodel.serving import TFSavedModelRunner
    from portability.adapters.torch.models import build_model, model_state
    from portability.adapters.torch.numpy_bridge import numpy_to_tensor

    twin = build_model(model_spec)
    state = model_state(twin)
    runner = TFSavedModelRunner(savedmodel)
    try:
        runner.activate()
        feed = _feed(runner, inputs)
        want = np.asarray(next(iter(runner.infer(feed).values())))
    finally:
        runner.deactivate()
    tried = []
    for order in ("chw", "hwc"):
        mapping = map_keras_to_torch(ckpt.tensors, state, flatten=order)
        if mapping.unmapped:
            raise UsageError(f"{savedmodel}: Keras variables with no place in the twin {model_spec}: "
                             f"{', '.join(mapping.unmapped[:5])}")
        twin.load_state_dict({k: numpy_to_tensor(np.asarray(v)) for k, v in mapping.checkpoint.tensors.items()})
        notes = list(mapping.notes)
        with torch.inference_mode():
            got = _run_twin(twin, feed, notes)
        worst = float(np.abs(got.astype(np.float64) - want).max()) if got.shape == want.shape else float("inf")
        if worst <= atol + rtol * float(np.abs(want).max()):
            notes.append(f"twin outputs agree with the SavedModel: max abs diff {worst:.3g}")
            return PortResult(mapping.checkpoint, worst, notes)
        tried.append(f"{order} flatten: max abs diff {worst:.3g}" if got.shape == want.shape
                     else f"{order} flatten: output shape {list(got.shape)} vs {list(want.shape)}")
        if not mapping.flattened:
            break
    raise ToleranceError(f"{savedmodel}: the twin {model_spec} does not reproduce the SavedModel's outputs "
                         f"({'; '.join(tried)}; tolerance atol {atol:g} + rtol {rtol:g}); nothing was written")
