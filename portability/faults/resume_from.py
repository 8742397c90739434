"""Resume parity from a checkpoint another tool wrote: a Trainer ``checkpoint-N/`` directory,
a Lightning ``.ckpt``, the tutorial ``{epoch, model_state_dict, optimizer_state_dict, loss}``.

The recipe's run is restored from the checkpoint as saved (weights, optimizer,
scheduler, RNG states, step) and trained ``steps`` more steps. Then the same is
done after each conversion route (to safetensors, and from there back to the
source's own format), and each run is compared with the first: ``bitwise``
means every loss and the final model and optimizer state are identical, i.e.
the conversion kept everything the resume depends on.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from portability.core.checkpoint import Checkpoint
from portability.core.conversion import convert, read_checkpoint
from portability.core.formats import ReadOptions, detect
from portability.errors import UsageError
from portability.faults.resume_parity import ResumeResult, loss_deviation
from portability.training.driver import TrainConfig, train
from portability.training.task import Task

ROUTES = ("safetensors", "safetensors->back")


def resume_from(task: Task, checkpoint: str | Path, steps: int, trust_pickle: bool = False) -> list[ResumeResult]:
    """Resume ``task`` from ``checkpoint`` directly and through each route; compare with the direct run.

    Args:
        task: a recipe whose model, optimizer and scheduler the checkpoint fits.
        checkpoint: the training checkpoint (file or directory), in any readable format.
        steps: how many steps each resumed run takes.
        trust_pickle: allow pickles that need other globals.

    Returns:
        One ``ResumeResult`` per route (``safetensors``: the converted file;
        ``safetensors->back``: converted again to the source's format), each
        compared with the run resumed from the checkpoint as saved.

    Raises:
        UsageError: ``steps`` below 1.
        FormatError: the checkpoint does not fit the recipe or holds no optimizer state.
    """
    if steps < 1:
        raise UsageError(f"resume from {checkpoint}: steps must be at least 1 (got {steps})")
    source = Path(checkpoint)
    fmt = detect(source)
    options = ReadOptions(trust_pickle=trust_pickle)
    start, _ = read_checkpoint(source, fmt, options)
    at, reference, reference_state = _resume(task, start, steps)
    results = []
    with tempfile.TemporaryDirectory(prefix="portability-resume-from-") as tmp:
        mid = Path(tmp) / "converted.safetensors"
        back = Path(tmp) / ("back" if source.is_dir() else f"back{source.suffix or '.pt'}")
        convert(source, mid, trust_pickle=trust_pickle)
        convert(mid, back, to=fmt)
        for route, path, route_fmt in (("safetensors", mid, "safetensors"), ("safetensors->back", back, fmt)):
            ckpt, _ = read_checkpoint(path, route_fmt, options)
            _, run, state = _resume(task, ckpt, steps)
            from portability.faults.state_components import same_state

            bitwise, dev, rel = loss_deviation(reference.losses, run.losses)
            bitwise = bitwise and same_state(state, reference_state) and run.final_metric == reference.final_metric
            results.append(ResumeResult(route, at, steps, bitwise, dev, rel, run.final_metric,
                                        reference.final_metric))
    return results


def _resume(task: Task, ckpt: Checkpoint, steps: int):
    """``(step resumed at, the run of ``steps`` more steps, its final state)``."""
    trainable = task.make()
    trainable.restore(ckpt)
    at = trainable.step
    run = train(trainable, TrainConfig(at + steps))
    return at, run, trainable.capture()
