"""Find the weights and training state in a loaded torch checkpoint object.

The search itself is framework-neutral (``portability.core.layout``); this
module tells it what a torch tensor is. See that module for the rules, the
default among several weight candidates and the named layouts (``state_dict``,
``classic``, ``lightning``, ``model-key``, else ``nested``).
"""

from __future__ import annotations

from typing import Any

import torch

from portability.core.layout_search import Found, locate


def tensor_info(value: Any) -> tuple[bool, int] | None:
    """``(is_floating, elements)`` for a torch tensor, None for anything else."""
    if not isinstance(value, torch.Tensor):
        return None
    return value.is_floating_point() or value.is_complex(), int(value.numel())


def locate_torch(obj: dict, weights_key: str | tuple | None = None) -> Found:
    """Where the weights, optimizer, scheduler and counters sit in ``obj``.

    Raises:
        UsageError: ``weights_key`` names nothing in ``obj``.
    """
    return locate(obj, tensor_info, weights_key)
