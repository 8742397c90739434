"""torch's SGD in TF: every variant's step against torch's, bit for bit, and a run continued in TF."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
tf = pytest.importorskip("tensorflow")
from portability.training.tf_adam import ulp_distance
from portability.training.tf_sgd import TorchSGD

SHAPES = [(64, 16), (64,), (3, 65), (257, 37)]
VARIANTS = {
    "plain": {},
    "momentum": {"momentum": 0.9},
    "nesterov+decay": {"momentum": 0.9, "nesterov": True, "weight_decay": 1e-3},
    "dampening+decay": {"momentum": 0.8, "dampening": 0.3, "weight_decay": 5e-4},
}


@pytest.mark.parametrize("variant", VARIANTS)
def test_sgd_steps_match_torch_bit_for_bit(variant):
    """Twelve steps from the same state with the same gradients, TF resynced to torch after each."""
    kwargs = VARIANTS[variant]
    rng = np.random.default_rng(0)
    start = [rng.normal(size=s).astype(np.float32) for s in SHAPES]
    params = [torch.nn.Parameter(torch.from_numpy(p.copy())) for p in start]
    opt = torch.optim.SGD(params, lr=0.05, **kwargs)
    variables = [tf.Variable(p.copy()) for p in start]
    sgd = TorchSGD(lr=0.05, **kwargs)
    names = [str(i) for i in range(len(SHAPES))]
    for _ in range(12):
        grads = [(rng.normal(size=s) * rng.choice([1e-4, 1.0, 10.0])).astype(np.float32) for s in SHAPES]
        for p, g in zip(params, grads, strict=True):
            p.grad = torch.from_numpy(g.copy())
        opt.step()
        sgd.apply([tf.constant(g) for g in grads], variables, names)
        for name, p, v in zip(names, params, variables, strict=True):
            assert ulp_distance(p.detach().numpy(), v.numpy()).max() == 0, (variant, name)
            buf = opt.state[p].get("momentum_buffer")
            if buf is not None:
                assert np.array_equal(buf.numpy(), sgd.slots[name].momentum_buffer.numpy())
            v.assign(p.detach().numpy())


def test_keras_sgd_is_a_different_rule_once_the_learning_rate_moves():
    """Keras keeps lr inside its momentum (v = m*v - lr*g); torch applies lr after. Equal under a
    constant lr up to rounding, they part as soon as a schedule changes lr."""
    keras = pytest.importorskip("keras")
    w = np.linspace(-1, 1, 64, dtype=np.float32)
    g = np.linspace(0.5, -0.3, 64, dtype=np.float32)
    p = torch.nn.Parameter(torch.from_numpy(w.copy()))
    torch_opt = torch.optim.SGD([p], lr=0.1, momentum=0.9, nesterov=True)
    kv, tv = tf.Variable(w.copy()), tf.Variable(w.copy())
    keras_opt = keras.optimizers.SGD(learning_rate=0.1, momentum=0.9, nesterov=True)
    ours = TorchSGD(lr=0.1, momentum=0.9, nesterov=True)
    for lr in (0.1, 0.1, 0.01, 0.01):
        torch_opt.param_groups[0]["lr"], ours.lr = lr, lr
        keras_opt.learning_rate.assign(lr)
        p.grad = torch.from_numpy(g.copy())
        torch_opt.step()
        keras_opt.apply_gradients([(tf.constant(g), kv)])
        ours.apply([tf.constant(g)], [tv], ["w"])
    assert np.array_equal(tv.numpy(), p.detach().numpy())
    assert np.abs(kv.numpy() - p.detach().numpy()).max() > 1e-3


@pytest.mark.slow
def test_continue_an_sgd_run_with_steplr_in_tf():
    from portability.training.tf_resume import tf_resume

    result = tf_resume("toy-sgd", resume_at=10, steps=6, forward="direct-tf")  # StepLR decays at step 12
    one = result.one_step
    assert one.optimizer == "SGD" and one.moments_bitwise and one.params_bitwise_fraction == 1.0
    assert one.bitwise_with_torch_sqrt and one.max_ulp_diff == 0
    assert result.max_loss_deviation < 1e-5 and len(result.tf_losses) == 6
