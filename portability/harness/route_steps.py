"""How a route's steps are written, and what a route can be judged on.

A graph format is written from a checkpoint through a model spec, except from
the other graph format: ONNX -> SavedModel translates the ONNX file, SavedModel
-> ONNX runs tf2onnx on the SavedModel. Without a model spec, an artifact that
holds only weights cannot run, and its route is judged on its weights.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from portability.core.checkpoint import Checkpoint
from portability.core.formats import WriteOptions, load_adapter, spec_for, unavailable
from portability.harness.evaluate import Subject, fixture_of


def write_options(subject: Subject) -> WriteOptions:
    """Options for every write of a route: the model spec and, for graph exports,
    the user's (first) inputs without their labels as example inputs, the axes declared
    dynamic, and the targeted opset and IR version."""
    from portability.harness.eval_data import export_inputs_file

    return WriteOptions(model=subject.model, dynamic=subject.dynamic,
                        inputs=export_inputs_file(subject.inputs, subject.eval_data, subject.labels),
                        opset=subject.opset, max_ir=subject.max_ir)


GRAPH_TO_GRAPH = {("onnx", "tf-savedmodel"), ("tf-savedmodel", "onnx")}
# The suffix of each step's artifact. ONNX is always a directory (model.onnx plus its weights as
# external data in model.onnx.data), so no model is refused for protobuf's 2 GiB limit.
STEP_SUFFIX = {"torch": ".pt", "safetensors": ".safetensors", "onnx": "", "tf-savedmodel": "", "dcp": ""}


def applicability(route: tuple[str, ...], subject: Subject) -> str | None:
    """Why a route cannot apply, or None. Imports each format's adapter (in the worker).

    A graph format needs a model spec to be written, except from the other graph
    format: ONNX -> SavedModel translates the ONNX file, SavedModel -> ONNX runs tf2onnx.
    """
    for fmt in dict.fromkeys(route):
        why = unavailable(fmt)
        if why:
            return why
    for prev, fmt in zip(route, route[1:], strict=False):
        if spec_for(fmt).needs_model_spec and not subject.model and (prev, fmt) not in GRAPH_TO_GRAPH:
            return f"writing {fmt!r} from {prev!r} needs a model spec (--model SPEC)"
        if (prev, fmt) == ("tf-savedmodel", "onnx") and importlib.util.find_spec("tf2onnx") is None:
            return "tf-savedmodel->onnx needs tf2onnx, which is not installed (pip install 'portability[tf]')"
    return None


def write_step(fmt: str, ckpt: Checkpoint, dst: Path, subject: Subject,
               previous: tuple[str, Path] | None = None) -> None:
    """Write one step. After the other graph format (``previous``), the graph itself is
    converted: an ONNX file is translated, a SavedModel goes through tf2onnx. A
    TensorFlow fixture's SavedModel is otherwise written the way Keras users write
    one: its weights loaded into the Keras model, then ``export``."""
    fixture = fixture_of(subject)
    if previous is not None and (previous[0], fmt) in GRAPH_TO_GRAPH:
        from portability.core.conversion import graph_source

        options = WriteOptions(inputs=write_options(subject).inputs,
                               **graph_source(previous[1], previous[0], fmt, None))
        load_adapter(fmt).write(ckpt, dst, options)
    elif fmt == "tf-savedmodel" and getattr(fixture, "framework", "torch") == "tensorflow":
        fixture.load(ckpt).export(str(dst), verbose=False)
    else:
        load_adapter(fmt).write(ckpt, dst, write_options(subject))


def runs_nowhere(fmt: str, subject: Subject, model: str | None) -> bool:
    """A weights-only artifact with nothing to run it: no model spec (nor a Keras fixture)."""
    return not spec_for(fmt).stores_graph and not model and fixture_of(subject) is None


def folded_by_tf2onnx(ckpt: Checkpoint) -> bool:
    """Whether the artifact's weights went through tf2onnx (directly or translated back)."""
    from portability.adapters.onnx.reader import KEY_PRODUCER

    return ckpt.metadata.get(KEY_PRODUCER) == "tf2onnx"
