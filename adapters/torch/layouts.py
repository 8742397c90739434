"""Recognise and rebuild the dict layouts people save torch checkpoints in.

- ``state_dict``: a bare ``{name: tensor}`` (``pytorch_model.bin``).
- ``classic``: the PyTorch tutorial layout ``{'epoch', 'model_state_dict',
  'optimizer_state_dict', 'loss'}`` (+ ``scheduler_state_dict``).
- ``lightning``: ``{'state_dict', 'optimizer_states': [...], 'lr_schedulers': [...],
  'global_step', 'epoch', ...}``.
- ``model-key``: ``{'model', 'optimizer', 'scheduler' | 'lr_scheduler', ...}``.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Layout:
    """Which top-level keys hold what, for one layout."""

    name: str
    weights: str | None
    optimizer: str | None = None
    scheduler: str | None = None
    optimizer_is_list: bool = False


LAYOUTS = {
    layout.name: layout
    for layout in (
        Layout("state_dict", None),
        Layout("classic", "model_state_dict", "optimizer_state_dict", "scheduler_state_dict"),
        Layout("lightning", "state_dict", "optimizer_states", "lr_schedulers", optimizer_is_list=True),
        Layout("model-key", "model", "optimizer", "scheduler"),
    )
}

# Top-level keys that map onto TrainingState fields (besides the layout's own).
SCALAR_FIELDS = {"epoch": "epoch", "global_step": "global_step", "step": "global_step",
                 "loss": "loss", "rng": "rng", "rng_states": "rng",
                 "data_position": "data_position"}


def recognise(obj: object, is_tensor) -> Layout:
    """Return the layout of a loaded checkpoint object.

    Args:
        obj: what ``torch.load`` returned.
        is_tensor: predicate telling tensors apart.
    """
    if not isinstance(obj, dict):
        return LAYOUTS["state_dict"]
    if isinstance(obj.get("model_state_dict"), dict):
        return LAYOUTS["classic"]
    if isinstance(obj.get("state_dict"), dict) and not is_tensor(obj.get("state_dict")):
        return LAYOUTS["lightning"]
    if isinstance(obj.get("model"), dict) and any(is_tensor(v) for v in obj["model"].values()):
        return LAYOUTS["model-key"]
    return LAYOUTS["state_dict"]
