"""Continue a PyTorch training run in TensorFlow from its checkpoint.

The weights become ``tf.Variable``s named by their state_dict names, Adam's
``exp_avg``/``exp_avg_sq``/``step`` become ``TorchAdam`` slots, and the
learning rate follows the checkpoint's cosine schedule (when it has one).
The forward pass comes from the TF adapter (the model's ONNX graph translated
to a ``tf.Module``); for ``nn.Sequential`` models of Linear, LayerNorm, GELU,
ReLU and Dropout layers a direct TF forward is the fallback.

Dropout cannot draw the same masks in two frameworks, so both continuations
(torch and TF) run with dropout off: the deviation then measures the
frameworks' numerics only. ``one_step_check`` isolates the update rule: the
same gradients go to torch's Adam and to ``TorchAdam``.
"""

from __future__ import annotations

import copy
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import tensorflow as tf

from portability.core import fallbacks
from portability.core.checkpoint import Checkpoint
from portability.core.tensors import as_array
from portability.errors import FormatError, PortabilityError, UnsupportedOpError
from portability.training.tf_adam import TorchAdam, cosine_lr_after, ulp_distance


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


class LrSchedule:
    """The learning rate after each step, as the checkpoint's torch scheduler would set it."""

    def __init__(self, ckpt: Checkpoint, lr: float):
        sched = ckpt.training.scheduler if ckpt.training is not None else None
        self.lr = lr
        self.cosine = sched if sched and "T_max" in sched else None
        if sched and self.cosine is None:
            raise FormatError(f"scheduler with state {sorted(sched)[:6]} has no TF continuation "
                              "(only CosineAnnealingLR is supported)")

    def step(self) -> float:
        """Advance one step; returns the new learning rate."""
        if self.cosine is not None:
            s = self.cosine
            s["last_epoch"] = int(s["last_epoch"]) + 1
            self.lr = cosine_lr_after(self.lr, s["last_epoch"], int(s["T_max"]), float(s["eta_min"]),
                                      float(s["base_lrs"][0]))
        return self.lr


def sequential_forward(model: Any, variables: dict[str, tf.Variable]):
    """A TF forward for an ``nn.Sequential`` of Linear, LayerNorm, GELU, ReLU, Dropout (off).

    Raises:
        UnsupportedOpError: any other layer (names it).
    """
    import torch

    layers = []
    for name, module in model.named_children():
        if not isinstance(module, (torch.nn.Linear, torch.nn.LayerNorm, torch.nn.GELU, torch.nn.ReLU,
                                   torch.nn.Dropout)):
            raise UnsupportedOpError(f"layer {name!r} ({type(module).__name__}) has no direct TF forward")
        layers.append((name, module))

    def forward(x: tf.Tensor) -> tf.Tensor:
        for name, module in layers:
            if isinstance(module, torch.nn.Linear):
                x = tf.matmul(x, variables[f"{name}.weight"], transpose_b=True) + variables[f"{name}.bias"]
            elif isinstance(module, torch.nn.LayerNorm):
                mean, var = tf.nn.moments(x, axes=[-1], keepdims=True)
                x = (x - mean) / tf.sqrt(var + module.eps) * variables[f"{name}.weight"] + variables[f"{name}.bias"]
            elif isinstance(module, torch.nn.GELU):
                x = 0.5 * x * (1.0 + tf.math.erf(x / np.float32(np.sqrt(2.0))))
            elif isinstance(module, torch.nn.ReLU):
                x = tf.nn.relu(x)
        return x

    return forward


@dataclass
class OneStepCheck:
    """The update rule alone: torch's Adam and ``TorchAdam`` given the same gradients."""

    parameters: int
    moments_bitwise: bool
    params_bitwise_fraction: float
    max_abs_diff: float
    max_ulp_diff: int
    bitwise_with_torch_sqrt: bool

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def one_step_check(torch_optimizer: Any, named_params: dict[str, Any], grads: dict[str, np.ndarray],
                   ckpt: Checkpoint) -> OneStepCheck:
    """Apply one step in torch (already loaded from ``ckpt``) and in TF from the same state.

    Args:
        torch_optimizer: the torch Adam, restored from ``ckpt``, not yet stepped.
        named_params: state_dict name -> torch parameter (values as in ``ckpt``).
        grads: name -> gradient, the same for both sides.
        ckpt: the checkpoint both start from.
    """
    import torch

    names = list(named_params)
    runs = []
    for sqrt in (tf.sqrt, lambda x: tf.constant(torch.from_numpy(x.numpy()).sqrt().numpy())):
        variables = {n: tf.Variable(named_params[n].detach().numpy().copy()) for n in names}
        adam = adam_from_checkpoint(ckpt, variables, names)
        adam.sqrt = sqrt
        adam.apply([tf.constant(grads[n]) for n in names], [variables[n] for n in names], names)
        runs.append((variables, adam))
    for n, p in named_params.items():
        p.grad = torch.from_numpy(grads[n].copy())
    torch_optimizer.step()
    state = {n: torch_optimizer.state[p] for n, p in named_params.items()}
    (tf_vars, adam), (sqrt_vars, _) = runs
    diffs = [ulp_distance(named_params[n].detach().numpy(), tf_vars[n].numpy()) for n in names]
    absdiff = max(float(np.abs(named_params[n].detach().numpy() - tf_vars[n].numpy()).max()) for n in names)
    moments = all(np.array_equal(state[n]["exp_avg"].numpy(), adam.slots[n].exp_avg.numpy())
                  and np.array_equal(state[n]["exp_avg_sq"].numpy(), adam.slots[n].exp_avg_sq.numpy())
                  and float(state[n]["step"]) == adam.slots[n].step for n in names)
    total = sum(d.size for d in diffs)
    same = sum(int((d == 0).sum()) for d in diffs)
    with_sqrt = all(np.array_equal(named_params[n].detach().numpy(), sqrt_vars[n].numpy()) for n in names)
    return OneStepCheck(total, moments, same / total, absdiff, int(max(d.max() for d in diffs)), with_sqrt)


def copy_checkpoint(ckpt: Checkpoint) -> Checkpoint:
    """A deep copy (the schedule state is advanced in place)."""
    return copy.deepcopy(ckpt)


def weights_of(ckpt: Checkpoint, names: list[str]) -> dict[str, tf.Variable]:
    """One trainable ``tf.Variable`` per parameter, named by its state_dict name."""
    return {n: tf.Variable(as_array(ckpt.tensors[n]).astype(np.float32), name=n.replace(".", "_"))
            for n in names}


@dataclass
class TFResumeResult:
    """Continuing a torch run in TF: the one-step proof and the loss trajectory deviation."""

    fixture: str
    forward: str
    resumed_from_step: int
    steps: int
    one_step: OneStepCheck
    max_loss_deviation: float
    max_rel_deviation: float
    torch_losses: list[float]
    tf_losses: list[float]
    fallback: str = ""  # why ``auto`` could not use the TF adapter (empty when it did)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["one_step"] = self.one_step.to_dict()
        return out


def _tf_forward(name: str, ckpt: Checkpoint, model: Any, trainable: list[str], output: str,
                forward: str):
    """``(label, forward(inputs) -> logits, variables, fallback)`` through the TF adapter, else
    direct TF ops. ``auto`` falls back to direct ops only when the adapter refuses the model
    with a typed error (an op it cannot translate...) or its ONNX stack is not installed; the
    fallback is recorded and returned. Any other exception is a bug and propagates.

    Raises:
        UnsupportedOpError: ``tf-adapter`` was asked for and the adapter refuses the model.
    """
    weights_only = Checkpoint(tensors=dict(ckpt.tensors), aliases=dict(ckpt.aliases))
    fallback = ""
    if forward in ("auto", "tf-adapter"):
        try:
            from portability.adapters.tf_savedmodel.export_route import onnx_graph_for
            from portability.adapters.tf_savedmodel.graph import translate
            from portability.core.formats import WriteOptions

            graph = onnx_graph_for(weights_only, WriteOptions(model=f"fixture:{name}"))
            module = translate(graph, weights_only)
            return "tf-adapter", (lambda inputs: module(**inputs)[output]), module.weights, fallback
        except (PortabilityError, ImportError) as exc:  # refused, or the ONNX stack is missing
            if forward == "tf-adapter":
                raise UnsupportedOpError(f"TF adapter cannot run {name!r}: {exc}") from exc
            fallback = f"TF adapter cannot run {name!r} ({exc}): continued with direct TF ops"
            fallbacks.record(fallback)
    variables = weights_of(ckpt, trainable)
    direct = sequential_forward(model, variables)
    return "direct-tf", (lambda inputs: direct(inputs[next(iter(inputs))])), variables, fallback


def tf_resume(name: str = "mlp", resume_at: int = 10, steps: int = 10, forward: str = "auto") -> TFResumeResult:
    """Train ``resume_at`` steps in torch, checkpoint, then continue ``steps`` steps in torch and in TF.

    Args:
        name: a recipe trained with cross-entropy on its first output (``mlp``,
            ``toy-mlp``, ``bert-tiny``, ``gpt2-tiny``; sequence logits are flattened).
        resume_at: the step the torch checkpoint is taken at.
        steps: how many steps both continuations take.
        forward: ``auto`` (TF adapter, else direct TF ops when the adapter refuses the
            model; ``fallback`` says why), ``tf-adapter`` or ``direct-tf``.
    """
    import torch

    from portability.training.driver import TrainConfig, train
    from portability.training.torch_recipes import training_recipe

    recipe = training_recipe(name)
    first = recipe.make()
    train(first, TrainConfig(resume_at))
    ckpt = first.capture()

    def resumed() -> Any:
        t = recipe.make()
        t.restore(copy_checkpoint(ckpt))
        for module in t.model.modules():
            if isinstance(module, torch.nn.Dropout):
                module.p = 0.0
        return t

    probe = resumed()
    names = [n for n, _ in probe.model.named_parameters()]
    inputs, targets = probe.numpy_batch(resume_at)
    probe.optimizer.zero_grad(set_to_none=True)
    loss = probe.loss_of(inputs, targets)
    loss.backward()
    params = dict(probe.model.named_parameters())
    grads = {n: params[n].grad.detach().numpy().copy() for n in names}
    one = one_step_check(probe.optimizer, params, grads, ckpt)

    reference = resumed()
    torch_losses = [reference.train_step() for _ in range(steps)]

    label, fwd, variables, fallback = _tf_forward(name, ckpt, probe.model, names, probe.output_name, forward)
    adam = adam_from_checkpoint(ckpt, variables, names)
    schedule = LrSchedule(copy_checkpoint(ckpt), adam.lr)
    tf_losses = []
    for i in range(steps):
        inputs, targets = probe.numpy_batch(resume_at + i)
        with tf.GradientTape() as tape:
            logits = fwd({k: tf.constant(v) for k, v in inputs.items()})
            flat = tf.reshape(logits, [-1, tf.shape(logits)[-1]])  # sequence models: one row per token
            loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(
                labels=tf.constant(targets.astype(np.int64).reshape(-1)), logits=flat))
        g = tape.gradient(loss, [variables[n] for n in names])
        adam.apply(g, [variables[n] for n in names], names)
        adam.lr = schedule.step()
        tf_losses.append(float(loss.numpy()))
    ref, got = np.array(torch_losses), np.array(tf_losses)
    dev = np.abs(got - ref)
    return TFResumeResult(name, label, resume_at, steps, one, float(dev.max()),
                          float((dev / np.abs(ref)).max()), torch_losses, tf_losses, fallback)
