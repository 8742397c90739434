"""torch's SGD update, written in TensorFlow ops, so a run trained with SGD can continue in TF.

Keras' SGD differs from torch's: its momentum keeps ``v = m*v - lr*g`` (the learning
rate inside the buffer, so a schedule acts on the history) and its Nesterov form is
``var += m*v - lr*g``. This module follows torch's single-tensor CPU path
(``torch.optim.sgd._single_tensor_sgd``, maximize off) op by op, in float32:

- ``g = g.add(p, alpha=weight_decay)`` is ``fma(p, wd, g)``;
- the first step's buffer is ``g`` itself; later ones are
  ``buf.mul_(m).add_(g, alpha=1 - dampening)``: ``fma(g, 1 - d, buf*m)``;
- Nesterov: ``g = g.add(buf, alpha=m)`` is ``fma(buf, m, g)``; otherwise ``g = buf``;
- ``p.add_(g, alpha=-lr)`` is ``fma(g, -lr, p)``.

torch 2.13's CPU kernels for ``add`` with ``alpha`` fuse the multiply and the add
(checked here against both forms on AVX2: every element matches the FMA, none the
separate multiply and add); the scalars are rounded to float32 first. TF has no
float32 FMA, so it is computed in float64 and rounded once (``tf_adam._fma32``),
which differs from a true FMA only in double-rounding cases.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import tensorflow as tf

from portability.training.tf_adam import _fma32


@dataclass
class SGDSlots:
    """One parameter's SGD state: its momentum buffer, or None before the first step."""

    momentum_buffer: tf.Variable | None = None


@dataclass
class TorchSGD:
    """``torch.optim.SGD`` (maximize off) as TF ops.

    Attributes:
        lr: learning rate (change it between steps to follow a schedule).
        momentum / dampening / nesterov / weight_decay: as torch's arguments.
        slots: per variable name, its state.
    """

    lr: float = 1e-3
    momentum: float = 0.0
    dampening: float = 0.0
    nesterov: bool = False
    weight_decay: float = 0.0
    slots: dict[str, SGDSlots] = field(default_factory=dict)

    def load_state(self, name: str, variable: tf.Variable, momentum_buffer: np.ndarray | None = None) -> None:
        """Give a variable its momentum buffer (None: no step taken yet)."""
        buf = None
        if momentum_buffer is not None:
            value = np.asarray(momentum_buffer, np.float32).reshape(tuple(variable.shape))
            buf = tf.Variable(value, name=f"{name}/momentum_buffer", trainable=False)
        self.slots[name] = SGDSlots(buf)

    def apply(self, grads: Sequence[tf.Tensor], variables: Sequence[tf.Variable], names: Sequence[str]) -> None:
        """One optimizer step (a parameter with no gradient is skipped, as in torch)."""
        for grad, var, name in zip(grads, variables, names, strict=False):
            if grad is None:
                continue
            if name not in self.slots:
                self.load_state(name, var)
            self._update(tf.convert_to_tensor(grad, tf.float32), var, self.slots[name])

    def _update(self, grad: tf.Tensor, param: tf.Variable, s: SGDSlots) -> None:
        f32 = np.float32
        if self.weight_decay != 0:
            grad = _fma32(param, tf.constant(f32(self.weight_decay)), grad)
        if self.momentum != 0:
            if s.momentum_buffer is None:
                s.momentum_buffer = tf.Variable(tf.identity(grad), trainable=False)
            else:
                scaled = s.momentum_buffer * f32(self.momentum)
                s.momentum_buffer.assign(_fma32(grad, tf.constant(f32(1 - self.dampening)), scaled))
            buf = s.momentum_buffer
            grad = _fma32(buf, tf.constant(f32(self.momentum)), grad) if self.nesterov else tf.identity(buf)
        param.assign(_fma32(grad, tf.constant(f32(-self.lr)), param))
