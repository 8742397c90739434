"""What every torch training run here shares: deterministic kernels on a fixed thread
count, and the tied-weight names a checkpoint stores once.

User models come in through ``portability.TrainingRecipe``
(``portability.training.recipe``), run by ``recipe_trainable.RecipeTrainable``.
"""

from __future__ import annotations

import torch


def set_deterministic(threads: int = 1) -> None:
    """Deterministic CPU kernels and a fixed thread count (reduction order depends on it).

    Sets the flag without ``torch.use_deterministic_algorithms``' one-time import of
    ``torch._inductor`` (seconds on two cores), which only matters for compiled code.
    """
    import sys

    setter = getattr(torch._C, "_set_deterministic_algorithms", None)
    if setter is None or "torch._inductor.config" in sys.modules:
        torch.use_deterministic_algorithms(True)
    else:
        setter(True)
    torch.set_num_threads(threads)


def tied_names(model: torch.nn.Module) -> dict[str, str]:
    """state_dict names that share storage with an earlier name (alias -> target)."""
    seen: dict[tuple, str] = {}
    ties: dict[str, str] = {}
    for name, t in model.state_dict(keep_vars=False).items():
        key = (t.untyped_storage().data_ptr(), t.storage_offset(), tuple(t.shape), t.dtype)
        if t.numel() and key in seen:
            ties[name] = seen[key]
        else:
            seen[key] = name
    return ties
