"""torch's Adam in TF: one step against torch, the schedule, and continuing a run in TF."""

from __future__ import annotations

import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")
tf = pytest.importorskip("tensorflow")
from portability.training.tf_adam import TorchAdam, cosine_lr_after, ulp_distance

SHAPES = [(64, 16), (64,), (3, 64), (257, 37)]


def _torch_sqrt(x):
    return tf.constant(torch.from_numpy(x.numpy()).sqrt().numpy())


def _run(steps: int, weight_decay: float, sqrt) -> tuple[list[dict], int, int]:
    """Step torch and TF from the same state with the same gradients; resync TF to torch each step."""
    rng = np.random.default_rng(0)
    start = [rng.normal(size=s).astype(np.float32) for s in SHAPES]
    params = [torch.nn.Parameter(torch.from_numpy(p.copy())) for p in start]
    opt = torch.optim.Adam(params, lr=3e-3, weight_decay=weight_decay)
    variables = [tf.Variable(p.copy()) for p in start]
    adam = TorchAdam(lr=3e-3, weight_decay=weight_decay, sqrt=sqrt)
    names = [str(i) for i in range(len(SHAPES))]
    stats, differing, total = [], 0, 0
    for _ in range(steps):
        grads = [(rng.normal(size=s) * rng.choice([1e-4, 1.0, 10.0])).astype(np.float32) for s in SHAPES]
        for p, g in zip(params, grads, strict=True):
            p.grad = torch.from_numpy(g.copy())
        opt.step()
        adam.apply([tf.constant(g) for g in grads], variables, names)
        for name, p, v in zip(names, params, variables, strict=True):
            state = opt.state[p]
            stats.append({
                "m": np.array_equal(state["exp_avg"].numpy(), adam.slots[name].exp_avg.numpy()),
                "v": np.array_equal(state["exp_avg_sq"].numpy(), adam.slots[name].exp_avg_sq.numpy()),
                "step": float(state["step"]) == adam.slots[name].step,
                "abs": float(np.abs(p.detach().numpy() - v.numpy()).max()),
            })
            d = ulp_distance(p.detach().numpy(), v.numpy())
            differing += int((d > 0).sum())
            total += d.size
            v.assign(p.detach().numpy())
    return stats, differing, total


@pytest.mark.slow
@pytest.mark.parametrize("weight_decay", [0.0, 0.01])
def test_update_is_bitwise_identical_given_torch_sqrt(weight_decay):
    """Every rounding point but the square root matches torch exactly, over many steps."""
    stats, differing, total = _run(12, weight_decay, _torch_sqrt)
    assert all(s["m"] and s["v"] and s["step"] for s in stats)
    assert differing == 0, f"{differing}/{total} parameters differ"


def test_update_with_tf_sqrt_matches_moments_bitwise_and_parameters_to_the_sqrt_rounding():
    """torch's float32 sqrt is not correctly rounded on CPU; TF's is. Moments stay bitwise; parameters
    differ only where that 1-ulp difference in sqrt(v) changes the rounded update."""
    stats, differing, total = _run(6, 0.0, tf.sqrt)
    assert all(s["m"] and s["v"] and s["step"] for s in stats)
    assert differing / total < 0.02
    assert max(s["abs"] for s in stats) < 1e-6


def test_torch_sqrt_is_not_correctly_rounded_on_this_build():
    x = np.abs(np.random.default_rng(1).normal(size=4096)).astype(np.float32)
    off = ulp_distance(torch.from_numpy(x).sqrt().numpy(), np.sqrt(x))
    assert off.max() <= 1
    assert np.array_equal(tf.sqrt(x).numpy(), np.sqrt(x))


def test_keras_adam_is_a_different_rule():
    keras = pytest.importorskip("keras")
    w = np.linspace(-1, 1, 64, dtype=np.float32)
    g = np.full(64, 1e-6, dtype=np.float32)  # small gradients expose where eps sits
    kv = tf.Variable(w.copy())
    keras.optimizers.Adam(learning_rate=1e-3).apply_gradients([(tf.constant(g), kv)])
    tv = tf.Variable(w.copy())
    TorchAdam(lr=1e-3).apply([tf.constant(g)], [tv], ["w"])
    p = torch.nn.Parameter(torch.from_numpy(w.copy()))
    p.grad = torch.from_numpy(g.copy())
    torch.optim.Adam([p], lr=1e-3).step()
    assert np.array_equal(tv.numpy(), p.detach().numpy())
    assert np.abs(kv.numpy() - p.detach().numpy()).max() > 1e-5


def test_cosine_schedule_matches_torch_bit_for_bit():
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.Adam([p], lr=3e-3)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=7, eta_min=3e-4)
    lr = 3e-3
    for epoch in range(1, 20):
        opt.step()
        sched.step()
        lr = cosine_lr_after(lr, epoch, 7, 3e-4, 3e-3)
        assert lr == opt.param_groups[0]["lr"], epoch
    assert not math.isnan(lr)


@pytest.mark.slow
@pytest.mark.parametrize("forward", ["direct-tf", "auto"])
def test_continue_the_mlp_fixture_in_tf(forward):
    from portability.training.tf_resume import tf_resume

    result = tf_resume("mlp", resume_at=6, steps=6, forward=forward)
    one = result.one_step
    assert one.moments_bitwise and one.bitwise_with_torch_sqrt
    assert one.params_bitwise_fraction > 0.98 and one.max_abs_diff < 1e-6
    assert len(result.tf_losses) == len(result.torch_losses) == 6
    assert result.max_loss_deviation < 1e-5 and result.max_rel_deviation < 1e-5
    # ``auto`` uses the TF adapter on the mlp fixture; it must not have fallen back.
    assert result.forward == ("direct-tf" if forward == "direct-tf" else "tf-adapter")
    assert result.fallback == ""


@pytest.mark.slow
def test_auto_falls_back_only_when_the_adapter_refuses_the_model(monkeypatch):
    from portability.adapters.tf_savedmodel import export_route
    from portability.core import fallbacks
    from portability.errors import UnsupportedOpError
    from portability.training.tf_resume import tf_resume

    def refuse(ckpt, options):
        raise UnsupportedOpError("ONNX op Foo (node 'foo') has no TensorFlow translation")

    monkeypatch.setattr(export_route, "onnx_graph_for", refuse)
    with fallbacks.collect() as found:
        result = tf_resume("mlp", resume_at=2, steps=2, forward="auto")
    assert result.forward == "direct-tf"
    assert result.fallback == ("TF adapter cannot run 'mlp' (ONNX op Foo (node 'foo') has no TensorFlow "
                               "translation): continued with direct TF ops")
    assert found == [result.fallback] and result.to_dict()["fallback"] == result.fallback
    with pytest.raises(UnsupportedOpError, match="TF adapter cannot run 'mlp': ONNX op Foo"):
        tf_resume("mlp", resume_at=2, steps=2, forward="tf-adapter")

    def broken(ckpt, options):
        raise ZeroDivisionError("a bug in the adapter")

    monkeypatch.setattr(export_route, "onnx_graph_for", broken)
    with pytest.raises(ZeroDivisionError, match="a bug in the adapter"):  # a bug is not a fallback
        tf_resume("mlp", resume_at=2, steps=2, forward="auto")
