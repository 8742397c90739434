"""Seeded input batches for the graph entries of the corpus (ONNX, SavedModel).

``inputs(name)`` returns arrays named after the graph's inputs, with the fixed
sizes below for the dynamic dimensions; ``write_inputs(name, path)`` saves them
as ``.npz`` for ``portability check FILE --inputs``.
"""

from __future__ import annotations

import numpy as np

from .models import rng, save_npz


def _silero(with_sr: bool) -> dict[str, np.ndarray]:
    audio = rng(10).normal(0.0, 0.1, size=(2, 576)).astype(np.float32)
    arrays = {"input": audio, "state": np.zeros((2, 2, 128), dtype=np.float32)}
    if with_sr:
        arrays["sr"] = np.array(16000, dtype=np.int64)
    return arrays


def _image(seed: int, shape: tuple[int, ...], name: str = "x", low: float = -1.0) -> dict[str, np.ndarray]:
    return {name: rng(seed).uniform(low, 1.0, size=shape).astype(np.float32)}


_BATCHES = {
    "silero-vad-onnx": lambda: _silero(True),
    "silero-vad-onnx-op15": lambda: _silero(True),
    "silero-vad-onnx-half": lambda: _silero(False),
    "paddleocr-det": lambda: _image(11, (1, 3, 64, 64)),
    "paddleocr-rec": lambda: _image(12, (1, 3, 48, 160)),
    "paddleocr-cls": lambda: _image(13, (1, 3, 48, 192)),
    "nudenet-yolov8n": lambda: _image(14, (1, 3, 320, 320), "images", 0.0),
    # 2 s of audio at 22050 Hz, the window basic-pitch feeds its model
    "basic-pitch-onnx": lambda: {"serving_default_input_2:0":
                                 rng(15).normal(0.0, 0.1, size=(1, 43844, 1)).astype(np.float32)},
}

NAMES = tuple(_BATCHES)


def inputs(name: str) -> dict[str, np.ndarray]:
    return _BATCHES[name]()


def write_inputs(name: str, path):
    return save_npz(path, inputs(name))
