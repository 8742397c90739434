"""torch's Adam update, written in TensorFlow ops, so training can continue in TF.

Keras' Adam is a different rule: it folds the bias correction into the step
size and adds eps (1e-7) to ``sqrt(v)``; torch divides ``sqrt(v)`` by
``sqrt(1 - b2^t)`` first and adds eps (1e-8) after. This module follows
torch's single-tensor CPU path (``torch.optim.adam._single_tensor_adam``) op by
op, in float32, with the same rounding points as torch 2.13's CPU kernels:

- ``exp_avg.lerp_(g, 1 - b1)`` is a fused multiply-add ``fma(w, g - m, m)``;
- ``exp_avg_sq.mul_(b2).addcmul_(g, g, value=1 - b2)`` is ``fma(value*g, g, v*b2)``;
- ``denom = sqrt(v) / sqrt(1 - b2^t) + eps`` with the scalars rounded to float32;
- ``param.addcdiv_(m, denom, value=-lr/(1 - b1^t))`` is ``p + (value*m)/denom``.

TF has no float32 FMA op; an FMA is computed in float64 (the float32 product is
exact there) and rounded once to float32, which differs from a true FMA only
in double-rounding cases (about one input in 2^29). torch's float32 ``sqrt`` on
CPU is not correctly rounded (about 17% of values are 1 ulp off the IEEE
result on this build), while TF's is; that is the one place where the two can
differ, by 1 ulp of ``denom``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import tensorflow as tf


def _fma32(a: tf.Tensor, b: tf.Tensor, c: tf.Tensor) -> tf.Tensor:
    """``a*b + c`` rounded once to float32 (through float64)."""
    f64 = tf.float64
    return tf.cast(tf.cast(a, f64) * tf.cast(b, f64) + tf.cast(c, f64), tf.float32)


@dataclass
class AdamSlots:
    """One parameter's Adam state: first and second moments, and its step count."""

    exp_avg: tf.Variable
    exp_avg_sq: tf.Variable
    step: float = 0.0


@dataclass
class TorchAdam:
    """``torch.optim.Adam`` (amsgrad off, maximize off) as TF ops.

    Attributes:
        lr: learning rate (change it between steps to follow a schedule).
        betas: ``(b1, b2)``.
        eps: added to the bias-corrected ``sqrt(v)`` (torch default 1e-8).
        weight_decay: L2 penalty added to the gradient (torch's Adam, not AdamW).
        slots: per variable name, its state.
        sqrt: the square root used for ``sqrt(v)`` (``tf.sqrt``, correctly rounded);
            a test can swap in torch's to show that every other rounding point matches.
    """

    lr: float = 1e-3
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    weight_decay: float = 0.0
    slots: dict[str, AdamSlots] = field(default_factory=dict)
    sqrt: Callable[[tf.Tensor], tf.Tensor] = tf.sqrt

    def load_state(self, name: str, variable: tf.Variable, exp_avg: np.ndarray | None = None,
                   exp_avg_sq: np.ndarray | None = None, step: float = 0.0) -> None:
        """Give a variable its Adam state (zeros and step 0 for a fresh one)."""
        shape = tuple(variable.shape)
        m = np.zeros(shape, np.float32) if exp_avg is None else np.asarray(exp_avg, np.float32).reshape(shape)
        v = np.zeros(shape, np.float32) if exp_avg_sq is None else np.asarray(exp_avg_sq, np.float32).reshape(shape)
        self.slots[name] = AdamSlots(tf.Variable(m, name=f"{name}/exp_avg", trainable=False),
                                     tf.Variable(v, name=f"{name}/exp_avg_sq", trainable=False), float(step))

    def apply(self, grads: Sequence[tf.Tensor], variables: Sequence[tf.Variable],
              names: Sequence[str]) -> None:
        """One optimizer step over ``variables`` (a parameter with no gradient is skipped, as in torch)."""
        b1, b2 = self.betas
        for grad, var, name in zip(grads, variables, names, strict=False):
            if grad is None:
                continue
            if name not in self.slots:
                self.load_state(name, var)
            self._update(tf.convert_to_tensor(grad, tf.float32), var, self.slots[name], b1, b2)

    def _update(self, grad: tf.Tensor, param: tf.Variable, s: AdamSlots, b1: float, b2: float) -> None:
        f32 = np.float32
        s.step += 1.0
        if self.weight_decay != 0:
            grad = _fma32(tf.constant(f32(self.weight_decay)), param, grad)
        m = s.exp_avg
        m.assign(_fma32(tf.constant(f32(1 - b1)), grad - m, m))
        v_scaled = s.exp_avg_sq * f32(b2)
        s.exp_avg_sq.assign(_fma32(grad * f32(1 - b2), grad, v_scaled))
        bias_correction1 = 1 - b1 ** s.step
        bias_correction2 = 1 - b2 ** s.step
        step_size = self.lr / bias_correction1
        denom = self.sqrt(s.exp_avg_sq) / f32(math.sqrt(bias_correction2)) + f32(self.eps)
        param.assign(param + (f32(-step_size) * m) / denom)


def ulp_distance(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per element, how many float32 values lie between ``a`` and ``b`` (0 = same bits)."""
    def ordered(x: np.ndarray) -> np.ndarray:
        i = np.ascontiguousarray(x, dtype=np.float32).view(np.int32).astype(np.int64)
        return np.where(i < 0, -(i & 0x7FFFFFFF), i)

    return np.abs(ordered(a) - ordered(b))


def cosine_lr_after(lr: float, last_epoch: int, t_max: int, eta_min: float, base_lr: float) -> float:
    """The learning rate torch's ``CosineAnnealingLR.step()`` sets once ``last_epoch`` has
    been incremented to ``last_epoch`` (its recursive, chainable form, same float operations)."""
    if (last_epoch - 1 - t_max) % (2 * t_max) == 0:
        return lr + (base_lr - eta_min) * (1 - math.cos(math.pi / t_max)) / 2
    return ((1 + math.cos(math.pi * last_epoch / t_max)) / (1 + math.cos(math.pi * (last_epoch - 1) / t_max))
            * (lr - eta_min) + eta_min)
