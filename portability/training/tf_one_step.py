"""The update rule alone: torch's optimizer and its TF twin given the same gradients."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import tensorflow as tf

from portability.core.checkpoint import Checkpoint
from portability.training.tf_adam import ulp_distance
from portability.training.tf_optimizers import optimizer_from_checkpoint
from portability.training.tf_sgd import TorchSGD


@dataclass
class OneStepCheck:
    """The update rule alone: torch's optimizer and its TF twin given the same gradients.

    Attributes:
        optimizer: ``Adam``, ``AdamW`` or ``SGD``.
        parameters: elements compared.
        moments_bitwise: the optimizer state after the step (Adam's moments and step
            counts, SGD's momentum buffers) is identical bit for bit.
        params_bitwise_fraction: share of parameter elements identical after the step.
        max_abs_diff / max_ulp_diff: the largest parameter difference.
        bitwise_with_torch_sqrt: with torch's own float32 sqrt swapped in (Adam), or as is
            (SGD has no sqrt), every parameter is identical: every other rounding point matches.
    """

    parameters: int
    moments_bitwise: bool
    params_bitwise_fraction: float
    max_abs_diff: float
    max_ulp_diff: int
    bitwise_with_torch_sqrt: bool
    optimizer: str = "Adam"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def one_step_check(torch_optimizer: Any, named_params: dict[str, Any], grads: dict[str, np.ndarray],
                   ckpt: Checkpoint) -> OneStepCheck:
    """Apply one step in torch (already loaded from ``ckpt``) and in TF from the same state.

    Args:
        torch_optimizer: the torch optimizer (Adam or SGD), restored from ``ckpt``, not yet stepped.
        named_params: state_dict name -> torch parameter (values as in ``ckpt``).
        grads: name -> gradient, the same for both sides.
        ckpt: the checkpoint both start from.

    Raises:
        FormatError: an optimizer with no TF twin here.
    """
    import torch

    names = list(named_params)
    runs = []
    for sqrt in (tf.sqrt, lambda x: tf.constant(torch.from_numpy(x.numpy()).sqrt().numpy())):
        variables = {n: tf.Variable(named_params[n].detach().numpy().copy()) for n in names}
        twin = optimizer_from_checkpoint(ckpt, variables, names)
        if not isinstance(twin, TorchSGD):
            twin.sqrt = sqrt
        twin.apply([tf.constant(grads[n]) for n in names], [variables[n] for n in names], names)
        runs.append((variables, twin))
    for n, p in named_params.items():
        p.grad = torch.from_numpy(grads[n].copy())
    torch_optimizer.step()
    state = {n: torch_optimizer.state[p] for n, p in named_params.items()}
    (tf_vars, twin), (sqrt_vars, _) = runs
    diffs = [ulp_distance(named_params[n].detach().numpy(), tf_vars[n].numpy()) for n in names]
    absdiff = max(float(np.abs(named_params[n].detach().numpy() - tf_vars[n].numpy()).max()) for n in names)
    total = sum(d.size for d in diffs)
    same = sum(int((d == 0).sum()) for d in diffs)
    with_sqrt = all(np.array_equal(named_params[n].detach().numpy(), sqrt_vars[n].numpy()) for n in names)
    kind = type(torch_optimizer).__name__
    return OneStepCheck(total, _same_state(twin, state, names), same / total, absdiff,
                        int(max(d.max() for d in diffs)), with_sqrt, kind)


def _same_state(twin: Any, state: dict[str, Any], names: list[str]) -> bool:
    """The TF twin's optimizer state equals torch's after the step, bit for bit."""
    if isinstance(twin, TorchSGD):
        def buffer(n: str) -> Any:
            buf = twin.slots[n].momentum_buffer
            return None if buf is None else buf.numpy()

        return all((state[n].get("momentum_buffer") is None and buffer(n) is None)
                   or np.array_equal(state[n]["momentum_buffer"].numpy(), buffer(n)) for n in names)
    return all(np.array_equal(state[n]["exp_avg"].numpy(), twin.slots[n].exp_avg.numpy())
               and np.array_equal(state[n]["exp_avg_sq"].numpy(), twin.slots[n].exp_avg_sq.numpy())
               and float(state[n]["step"]) == twin.slots[n].step for n in names)
