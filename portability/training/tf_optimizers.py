"""torch optimizers and LR schedules rebuilt in TensorFlow from a torch checkpoint's state.

``optimizer_from_checkpoint`` picks torch's own update rule for the optimizer the
checkpoint holds (``TorchSGD`` or ``TorchAdam``, with its hyperparameters, moments or
momentum buffers, and step counts); ``LrSchedule`` replays its scheduler's learning rates.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from portability.core.checkpoint import Checkpoint
from portability.errors import FormatError
from portability.training.tf_adam import TorchAdam, cosine_lr_after
from portability.training.tf_sgd import TorchSGD

TFOptimizer = TorchAdam | TorchSGD


def param_names(ckpt: Checkpoint, trainable_names: list[str]) -> dict[int, str]:
    """Optimizer parameter id -> state_dict name.

    Uses the names the optimizer recorded (``Adam(model.named_parameters())``),
    else torch's numbering, which follows ``model.parameters()`` order.

    Raises:
        FormatError: no optimizer state, or ids that match no parameter.
    """
    opt = ckpt.training.optimizer if ckpt.training is not None else None
    if opt is None:
        raise FormatError("checkpoint has no optimizer state: nothing to continue training from")
    names = dict(opt.param_names) or dict(enumerate(trainable_names))
    ids = [pid for group in opt.param_groups for pid in group["params"]]
    unknown = [pid for pid in ids if pid not in names or names[pid] not in trainable_names]
    if unknown:
        raise FormatError(f"optimizer parameter ids {unknown[:5]} match no model parameter")
    return {pid: names[pid] for pid in ids}


def adam_from_checkpoint(ckpt: Checkpoint, variables: dict[str, tf.Variable],
                         trainable_names: list[str]) -> TorchAdam:
    """A ``TorchAdam`` holding the checkpoint's hyperparameters, moments and step counts.

    Raises:
        FormatError: not Adam state, several parameter groups, or amsgrad/maximize/AdamW.
    """
    opt = ckpt.training.optimizer
    if len(opt.param_groups) != 1:
        raise FormatError(f"{len(opt.param_groups)} parameter groups; only one is supported")
    group = opt.param_groups[0]
    if group.get("amsgrad") or group.get("maximize") or group.get("decoupled_weight_decay"):
        raise FormatError("amsgrad, maximize and AdamW variants have no TF continuation here")
    adam = TorchAdam(lr=float(group["lr"]), betas=tuple(float(b) for b in group["betas"]),
                     eps=float(group["eps"]), weight_decay=float(group["weight_decay"]))
    for pid, name in param_names(ckpt, trainable_names).items():
        state = opt.state.get(pid)
        if state is None:
            adam.load_state(name, variables[name])
            continue
        if "exp_avg" not in state or "exp_avg_sq" not in state:
            raise FormatError(f"optimizer state of {name!r} is not Adam's (keys {sorted(state)})")
        adam.load_state(name, variables[name], state["exp_avg"], state["exp_avg_sq"],
                        float(np.asarray(state["step"])))
    return adam


def sgd_from_checkpoint(ckpt: Checkpoint, variables: dict[str, tf.Variable],
                        trainable_names: list[str]) -> TorchSGD:
    """A ``TorchSGD`` holding the checkpoint's hyperparameters and momentum buffers.

    Raises:
        FormatError: several parameter groups, or maximize on.
    """
    opt = ckpt.training.optimizer
    if len(opt.param_groups) != 1:
        raise FormatError(f"{len(opt.param_groups)} parameter groups; only one is supported")
    group = opt.param_groups[0]
    if group.get("maximize"):
        raise FormatError("SGD with maximize has no TF continuation here")
    sgd = TorchSGD(lr=float(group["lr"]), momentum=float(group.get("momentum", 0.0)),
                   dampening=float(group.get("dampening", 0.0)), nesterov=bool(group.get("nesterov", False)),
                   weight_decay=float(group.get("weight_decay", 0.0)))
    for pid, name in param_names(ckpt, trainable_names).items():
        buf = (opt.state.get(pid) or {}).get("momentum_buffer")
        sgd.load_state(name, variables[name], None if buf is None else np.asarray(buf))
    return sgd


def optimizer_from_checkpoint(ckpt: Checkpoint, variables: dict[str, tf.Variable],
                              trainable_names: list[str]) -> TFOptimizer:
    """torch's update rule in TF for the checkpoint's optimizer: SGD's or Adam's.

    Raises:
        FormatError: no optimizer state, or an optimizer with no TF twin here.
    """
    param_names(ckpt, trainable_names)  # no optimizer state: refused here, with the reason
    group = ckpt.training.optimizer.param_groups[0] if ckpt.training.optimizer.param_groups else {}
    if "momentum" in group and "nesterov" in group and "betas" not in group:
        return sgd_from_checkpoint(ckpt, variables, trainable_names)
    return adam_from_checkpoint(ckpt, variables, trainable_names)


class LrSchedule:
    """The learning rate after each step, as the checkpoint's torch scheduler would set it
    (``CosineAnnealingLR``, or ``StepLR`` in its chainable form: ``lr *= gamma`` every ``step_size``)."""

    def __init__(self, ckpt: Checkpoint, lr: float):
        sched = ckpt.training.scheduler if ckpt.training is not None else None
        self.lr = lr
        self.cosine = sched if sched and "T_max" in sched else None
        self.steplr = sched if sched and "step_size" in sched and "gamma" in sched else None
        if sched and self.cosine is None and self.steplr is None:
            raise FormatError(f"scheduler with state {sorted(sched)[:6]} has no TF continuation "
                              "(CosineAnnealingLR and StepLR are supported)")

    def step(self) -> float:
        """Advance one step; returns the new learning rate."""
        if self.cosine is not None:
            s = self.cosine
            s["last_epoch"] = int(s["last_epoch"]) + 1
            self.lr = cosine_lr_after(self.lr, s["last_epoch"], int(s["T_max"]), float(s["eta_min"]),
                                      float(s["base_lrs"][0]))
        elif self.steplr is not None:
            s = self.steplr
            s["last_epoch"] = int(s["last_epoch"]) + 1
            if s["last_epoch"] != 0 and s["last_epoch"] % int(s["step_size"]) == 0:
                self.lr = self.lr * float(s["gamma"])
        return self.lr
