"""Turn an artifact into a prediction function, in its own runtime.

A format whose adapter has ``runner(path)`` (ONNX, SavedModel) runs there:
onnxruntime, TensorFlow. A weights-only format (torch, safetensors) is loaded
into the model named by the model spec and run eagerly. Every prediction
function takes and returns dicts of numpy arrays by name.

Model specs (``fixture:NAME``, ``hf:DIR``, ``pkg.module:factory``) are
resolved by ``portability.core.model_spec``; torch models run in the torch eager
runner, a TensorFlow fixture's model in Keras.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from portability.core.checkpoint import Checkpoint
from portability.core.formats import ReadOptions, RunOptions, load_adapter
from portability.errors import UsageError

Predict = Callable[[dict[str, np.ndarray]], dict[str, np.ndarray]]


@dataclass
class Subject:
    """What a check runs on: a fixture, or a checkpoint plus a model spec.

    Attributes:
        label: how reports name it (``fixture:mlp`` or the checkpoint path).
        model: model spec, or None (then only weights can be compared).
        checkpoint: path of the checkpoint (None for a fixture).
        fixture: fixture name (None for a checkpoint).
        inputs: ``.npz`` of named inputs, overriding the fixture's batch.
        metric: ``predict -> float`` scoring a model (picklable), or None.
        higher_is_better: direction of ``metric`` (and of a ``module:function`` ``metric_spec``).
        trust_pickle: allow torch pickles that need other globals.
        metric_spec: ``--metric``: a built-in name or ``package.module:function``
            (``portability.harness.metrics``), or None for the default.
        labels: the key of the labels in the inputs and evaluation batches.
        eval_data: a directory of ``.npz`` evaluation batches, or None.
        opset / max_ir: ONNX exports' opset and newest IR version (``--opset``,
            ``--target-env``); None leaves them to the exporter and the graph.
        export_note: how exports were targeted, for every route's notes.
        more_inputs: further ``.npz`` input files (``--inputs`` given again): every
            artifact also runs on each, and its outputs are judged per file.
        dynamic: input axes graph exports keep symbolic besides the defaults, as
            ``(name, axes)`` pairs (``--dynamic``); an artifact fixing one fails.
    """

    label: str
    model: str | None = None
    checkpoint: str | None = None
    fixture: str | None = None
    inputs: str | None = None
    metric: Callable[[Predict], float] | None = None
    metric_name: str = "metric"
    higher_is_better: bool = True
    trust_pickle: bool = False
    metric_spec: str | None = None
    labels: str = "labels"
    eval_data: str | None = None
    opset: int | None = None
    max_ir: int | None = None
    export_note: str = ""
    more_inputs: tuple[str, ...] = ()
    dynamic: tuple[tuple[str, tuple[int, ...]], ...] = ()


def get_fixture(name: str):
    """The registered fixture of that name (imports the zoo lazily)."""
    from portability.fixtures.registry import get_fixture as _get

    return _get(name)


def fixture_of(subject: Subject):
    """The subject's fixture: named directly, or through a ``fixture:NAME`` spec."""
    if subject.fixture:
        return get_fixture(subject.fixture)
    if subject.model and subject.model.startswith("fixture:"):
        return get_fixture(subject.model.split(":", 1)[1])
    return None


def load_inputs(subject: Subject) -> dict[str, np.ndarray]:
    """The input batch: ``--inputs`` if given, else the fixture's fixed batch, else
    (for ``hf:DIR``) the same example inputs the ONNX export uses.

    Raises:
        UsageError: neither exists, or the file cannot be read.
    """
    if subject.inputs:
        from portability.harness.eval_data import read_npz

        return read_npz(subject.inputs)
    fixture = fixture_of(subject)
    if fixture is not None:
        return fixture.eval_batch()
    if subject.model and subject.model.startswith("hf:"):
        return _hf_example_inputs(subject.model)
    raise UsageError(f"{subject.label}: no inputs to run the model on; pass --inputs FILE.npz")


def _hf_example_inputs(spec: str) -> dict[str, np.ndarray]:
    """The inputs the ONNX export uses for an ``hf:DIR`` model: the directory's
    tokenizer on built-in sentences, else ids synthesized from its config."""
    from portability.adapters.torch import model_inputs as torch_model_inputs
    from portability.adapters.torch import models as torch_models

    return torch_model_inputs.example_inputs(spec, torch_models.build_model(spec))


def keras_predict(model: Any, input_names: list[str]) -> Predict:
    """Call a Keras model on inputs in ``input_names`` order; outputs keep the model's names."""

    def predict(feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        args = [feed[n] for n in input_names]
        out = model(args[0] if len(args) == 1 else args, training=False)
        if isinstance(out, dict):
            return {k: np.asarray(v) for k, v in out.items()}
        items = list(out) if isinstance(out, (list, tuple)) else [out]
        names = list(getattr(model, "output_names", None) or [])
        if len(names) != len(items):
            names = ["output"] if len(items) == 1 else [f"output_{i}" for i in range(len(items))]
        return {n: np.asarray(v) for n, v in zip(names, items, strict=False)}
    return predict


@dataclass
class Loaded:
    """A prediction function and how long loading took.

    ``notes`` say how the weights were fitted to the model (prefixes stripped,
    names ignored or re-tied); ``weights_key`` is the checkpoint's candidate
    that was loaded when it is not its default weights. ``module`` is the torch
    module when the artifact runs in torch eager mode (for the float64 run and
    the intermediate tensors), with the ``output_names`` it is run with.
    ``input_dims`` are a graph runtime's input shapes by input name (None for a
    dynamic axis), or None where the model runs eagerly.
    """

    predict: Predict
    session_s: float
    close: Callable[[], None] = lambda: None
    checkpoint: Checkpoint | None = None
    notes: list[str] = field(default_factory=list)
    weights_key: str | None = None
    module: Any = None
    output_names: tuple[str, ...] | None = None
    input_dims: dict[str, list[int | None]] | None = None


def load_artifact(path: Path, fmt: str, subject: Subject, model: str | None,
                  input_names: list[str]) -> Loaded:
    """Load an artifact for inference in its runtime (or eagerly, via the model spec).

    Raises:
        UsageError: a weights-only artifact and no model spec.
        PortabilityError: the adapter refused the artifact (message names it).
    """
    adapter = load_adapter(fmt)
    start = time.perf_counter()
    fixture = get_fixture(model.split(":", 1)[1]) if model and model.startswith("fixture:") else None
    if not adapter.stores_graph and fixture is not None and fixture.framework == "tensorflow":
        # A Keras fixture's weights run in the Keras model, not in torch.
        ckpt = adapter.read(path, ReadOptions(trust_pickle=subject.trust_pickle))
        keras_model = fixture.load(ckpt)
        predict = fixture.predictor(keras_model) if hasattr(fixture, "predictor") else \
            keras_predict(keras_model, input_names)
        return Loaded(predict, time.perf_counter() - start, checkpoint=ckpt)
    names = tuple(fixture.output_names) if fixture is not None else None
    runner = adapter.runner(path, RunOptions(model=model, trust_pickle=subject.trust_pickle, output_names=names))
    runner.activate()
    ckpt = getattr(runner, "checkpoint", None)
    torch_run = getattr(runner, "name", "") == "torch"
    return Loaded(runner.infer, time.perf_counter() - start, runner.deactivate, checkpoint=ckpt,
                  notes=list(getattr(runner, "fit_notes", [])), weights_key=getattr(runner, "weights_key", None),
                  module=getattr(runner, "model", None) if torch_run else None,
                  output_names=getattr(runner, "output_names", None) if torch_run else None,
                  input_dims=getattr(runner, "input_dims", None))


def evaluation_inputs(subject: Subject, inputs: dict[str, np.ndarray]) -> list[str]:
    """Input names in call order: the fixture's, else the ``.npz`` order."""
    fixture = fixture_of(subject)
    names = list(getattr(fixture, "input_names", None) or [])
    if names and all(n in inputs for n in names):
        return names
    return list(inputs)


def aligned(predict: Predict, reference_names: list[str], notes: list[str]) -> Predict:
    """Rename a runtime's outputs to the reference's names, by position, when the
    names differ but the counts agree (a Keras export calls ``logits`` ``output_0``).
    The renaming is recorded in ``notes``."""

    def run(feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        out = predict(feed)
        if set(out) == set(reference_names) or len(out) != len(reference_names):
            return out
        pairs = list(zip(out, reference_names, strict=False))
        note = "outputs matched by position: " + ", ".join(f"{a} -> {b}" for a, b in pairs)
        if note not in notes:
            notes.append(note)
        return {b: out[a] for a, b in pairs}
    return run
