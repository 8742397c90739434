"""Continue a PyTorch training run in TensorFlow from its checkpoint.

The weights become ``tf.Variable``s named by their state_dict names, the
optimizer state becomes torch's own update rule in TF ops: Adam's
``exp_avg``/``exp_avg_sq``/``step`` as ``TorchAdam`` slots, SGD's
``momentum_buffer`` as ``TorchSGD`` slots. The learning rate follows the
checkpoint's cosine or step schedule (when it has one). The forward pass comes
from the TF adapter (the model's ONNX graph translated to a ``tf.Module``);
for ``nn.Sequential`` models of Linear, LayerNorm, GELU, ReLU and Dropout
layers a direct TF forward is the fallback.

Dropout cannot draw the same masks in two frameworks, so both continuations
(torch and TF) run with dropout off: the deviation then measures the
frameworks' numerics only. The TF run takes the same batches, in the same
order, as the torch continuation. ``one_step_check`` isolates the update rule:
the same gradients go to torch's optimizer and to its TF twin.
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
from portability.errors import PortabilityError, UnsupportedOpError
from portability.training.tf_one_step import OneStepCheck, one_step_check
from portability.training.tf_optimizers import LrSchedule, optimizer_from_checkpoint


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
        name: a task trained with cross-entropy on its first output and Adam or SGD
            (``mlp``, ``toy-mlp``, ``toy-sgd``, ``bert-tiny``, ``gpt2-tiny``; sequence
            logits are flattened).
        resume_at: the step the torch checkpoint is taken at.
        steps: how many steps both continuations take.
        forward: ``auto`` (TF adapter, else direct TF ops when the adapter refuses the
            model; ``fallback`` says why), ``tf-adapter`` or ``direct-tf``.

    Raises:
        FormatError: an optimizer or schedule with no TF twin here.
        UnsupportedOpError: no TF forward for the model.
    """
    import torch

    from portability.training.driver import TrainConfig, train
    from portability.training.tasks import get_task

    task = get_task(name)
    first = task.make()
    train(first, TrainConfig(resume_at))
    ckpt = first.capture()

    def resumed() -> Any:
        t = task.make()
        t.restore(copy_checkpoint(ckpt))
        for module in t.model.modules():
            if isinstance(module, torch.nn.Dropout):
                module.p = 0.0
        return t

    reference = resumed()
    torch_losses, batches = [], []
    for _ in range(steps):
        torch_losses.append(reference.train_step())
        batches.append(reference.last_batch)  # the TF run takes the same batches in the same order

    probe = resumed()
    names = [n for n, _ in probe.model.named_parameters()]
    probe.optimizer.zero_grad(set_to_none=True)
    probe.model.train()
    probe.recipe.loss(probe.model, batches[0]).backward()
    params = dict(probe.model.named_parameters())
    grads = {n: params[n].grad.detach().numpy().copy() for n in names}
    one = one_step_check(probe.optimizer, params, grads, ckpt)

    label, fwd, variables, fallback = _tf_forward(name, ckpt, probe.model, names, _output_name(name), forward)
    twin = optimizer_from_checkpoint(ckpt, variables, names)
    schedule = LrSchedule(copy_checkpoint(ckpt), twin.lr)
    tf_losses = []
    for batch in batches:
        inputs, targets = numpy_batch(batch)
        with tf.GradientTape() as tape:
            logits = fwd({k: tf.constant(v) for k, v in inputs.items()})
            flat = tf.reshape(logits, [-1, tf.shape(logits)[-1]])  # sequence models: one row per token
            loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(
                labels=tf.constant(targets.astype(np.int64).reshape(-1)), logits=flat))
        g = tape.gradient(loss, [variables[n] for n in names])
        twin.apply(g, [variables[n] for n in names], names)
        twin.lr = schedule.step()
        tf_losses.append(float(loss.numpy()))
    ref, got = np.array(torch_losses), np.array(tf_losses)
    dev = np.abs(got - ref)
    return TFResumeResult(name, label, resume_at, steps, one, float(dev.max()),
                          float((dev / np.abs(ref)).max()), torch_losses, tf_losses, fallback)


def numpy_batch(batch: Any) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """A recipe's ``(inputs, targets)`` batch as numpy: inputs by name (``input`` for a lone tensor)."""
    inputs, targets = batch[0], batch[1]
    feed = {k: v.numpy() for k, v in inputs.items()} if isinstance(inputs, dict) else {"input": inputs.numpy()}
    return feed, targets.numpy()


def _output_name(name: str) -> str:
    """The zoo fixture's first output (what the TF adapter's module returns), else ``output``."""
    from portability.errors import UsageError

    try:
        from portability.fixtures.registry import get_fixture

        return get_fixture(name).output_names[0]
    except (ImportError, UsageError):  # not a zoo fixture (a built-in task): the direct forward needs no name
        return "output"
