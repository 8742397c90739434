"""The file names of a Hugging Face Trainer checkpoint directory (``checkpoint-N/``), by
name alone (no framework imported, so format detection can use it).

A Trainer checkpoint holds the weights (``model.safetensors`` or
``pytorch_model.bin``, single or sharded with an index) next to its training
files: ``optimizer.pt``, ``scheduler.pt``, ``rng_state.pth`` (one
``rng_state_N.pth`` per process in multi-process runs), ``scaler.pt`` (mixed
precision) and ``trainer_state.json`` (``global_step``, ``epoch``, the log).
``training_args.bin`` is a pickled ``TrainingArguments`` object.
"""

from __future__ import annotations

import re
from pathlib import Path

WEIGHT_FILES = ("model.safetensors.index.json", "model.safetensors", "pytorch_model.bin.index.json",
                "pytorch_model.bin")
OPTIMIZER, SCHEDULER, SCALER, TRAINER_STATE = "optimizer.pt", "scheduler.pt", "scaler.pt", "trainer_state.json"
TRAINING_ARGS = "training_args.bin"
RNG_FILE = re.compile(r"^rng_state(_\d+)?\.pth$")
TRAINER_LAYOUT = "hf-trainer"


def is_training_file(name: str) -> bool:
    """Whether a file name is one of the Trainer's training-state files."""
    return name in (OPTIMIZER, SCHEDULER, SCALER, TRAINER_STATE) or bool(RNG_FILE.match(name))


def is_trainer_directory(path: str | Path) -> bool:
    """A directory with model weights and at least one Trainer training-state file."""
    path = Path(path)
    if not path.is_dir():
        return False
    names = {p.name for p in path.iterdir() if p.is_file()}
    return any(w in names for w in WEIGHT_FILES) and any(is_training_file(n) for n in names)


def weights_file(path: Path) -> Path:
    """The weights entry point of a Trainer directory (an index file wins over a single file)."""
    for name in WEIGHT_FILES:
        if (path / name).is_file():
            return path / name
    raise FileNotFoundError(f"{path}: no {' or '.join(WEIGHT_FILES)}")


def rng_files(path: Path) -> list[Path]:
    """``rng_state.pth`` or ``rng_state_N.pth`` files, in process order."""
    found = [p for p in path.iterdir() if p.is_file() and RNG_FILE.match(p.name)]

    def rank(p: Path) -> int:
        m = RNG_FILE.match(p.name)
        return int(m.group(1)[1:]) if m and m.group(1) else -1

    return sorted(found, key=rank)
