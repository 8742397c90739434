"""A small training driver that checkpoints the full training state, and the loader that resumes.

The core knows no framework. A framework supplies a ``Trainable``: something
that takes one optimizer step on a batch, captures its whole state (weights,
optimizer, RNG states, data position) as a ``Checkpoint`` and restores from one.
``portability.training.recipe_trainable`` builds one from a user's
``portability.TrainingRecipe`` (the documented interface for user models).

Checkpoints go through the format adapters' checksummed writers inside
``atomic_output``, so a killed process leaves either no checkpoint or a complete
one. Each checkpoint also records a content digest over every name, dtype,
shape, byte, metadata value and the training state, so damage that a format's
own checks would let through is still refused on load.
"""

from __future__ import annotations

import dataclasses
import json
import re
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from portability.core.atomic import TMP_MARKER, atomic_output
from portability.core.checkpoint import Checkpoint
from portability.core.formats import ReadOptions, WriteOptions, load_adapter
from portability.core.integrity import new_hasher
from portability.core.tensors import as_array, iter_bytes
from portability.core.training_codec import pack_training
from portability.errors import FormatError, IntegrityError, PortabilityError, UsageError

DIGEST_KEY = "portability.content_digest"
CHECKPOINT_NAME = re.compile(r"^step-(\d{6})(\.pt|\.safetensors)?$")
SUFFIX = {"torch": ".pt", "safetensors": ".safetensors", "safetensors-sharded": ""}


class Trainable(Protocol):
    """What the driver needs from a framework-specific training setup."""

    def train_step(self) -> float:
        """Draw the next batch, take one optimizer step, return the loss."""

    def capture(self) -> Checkpoint:
        """The full training state (weights, optimizer, RNG, data position, step) as a copy."""

    def restore(self, ckpt: Checkpoint) -> None:
        """Put the state of ``capture()`` back; the next ``train_step`` continues the run."""

    def evaluate(self) -> float:
        """The task metric on held-out data (does not disturb the training state)."""

    @property
    def step(self) -> int:
        """Optimizer steps taken so far."""


@dataclass
class TrainConfig:
    """How long to train and how to checkpoint.

    Attributes:
        total_steps: train until this many optimizer steps are done.
        checkpoint_every: K; a checkpoint after every K-th step.
        directory: where checkpoints go (``step-000005.pt`` ...); None for none.
        fmt: ``torch``, ``safetensors`` or ``safetensors-sharded`` (a directory per
            checkpoint, split into shards of ``shard_size`` bytes).
        shard_size: largest shard for ``safetensors-sharded``.
    """

    total_steps: int
    checkpoint_every: int = 5
    directory: Path | None = None
    fmt: str = "torch"
    shard_size: int = 4096


@dataclass
class TrainResult:
    """What a run did: loss per step (1-based step -> loss) and the final metric."""

    losses: dict[int, float] = field(default_factory=dict)
    final_metric: float | None = None
    checkpoints: list[Path] = field(default_factory=list)


def checkpoint_path(directory: Path, step: int, fmt: str) -> Path:
    """The final name of the checkpoint taken after ``step``."""
    if fmt not in SUFFIX:
        raise UsageError(f"unknown checkpoint format {fmt!r} (supported: {', '.join(SUFFIX)})")
    return Path(directory) / f"step-{step:06d}{SUFFIX[fmt]}"


def content_digest(ckpt: Checkpoint) -> str:
    """xxh3 over everything a resume depends on, in order; ``DIGEST_KEY`` left out."""
    h = new_hasher()
    header: dict[str, Any] = {
        "layout": ckpt.layout, "aliases": ckpt.aliases,
        "metadata": {k: v for k, v in sorted(ckpt.metadata.items()) if k != DIGEST_KEY},
        "tensors": [[n, str(np.dtype(t.dtype)), list(t.shape)] for n, t in ckpt.tensors.items()],
    }
    arrays: dict[str, np.ndarray] = {}
    if ckpt.training is not None:
        # Adapter bookkeeping (``__keys__``...) describes the file, not the state, and is
        # rebuilt on read; a damaged key there shows up in the state it describes.
        ts = dataclasses.replace(ckpt.training, extra={k: v for k, v in ckpt.training.extra.items()
                                                       if not k.startswith("__")})
        header["training"], arrays = pack_training(ts)
    h.update(json.dumps(header, sort_keys=True).encode())
    for name in ckpt.canonical_names():
        for piece in iter_bytes(ckpt.tensors[name]):
            h.update(piece)
    for name in sorted(arrays):
        h.update(name.encode())
        for piece in iter_bytes(np.asarray(arrays[name])):
            h.update(piece)
    return h.hexdigest()


def save_checkpoint(ckpt: Checkpoint, path: Path, fmt: str, shard_size: int = 4096,
                    before_publish: Callable[[Path], None] | None = None) -> Path:
    """Write a training checkpoint atomically through the format's checksummed writer.

    Args:
        ckpt: the state to save; a content digest is added to its metadata.
        path: the final name (see ``checkpoint_path``).
        fmt: ``torch``, ``safetensors`` or ``safetensors-sharded``.
        shard_size: largest shard in bytes for ``safetensors-sharded``.
        before_publish: called with the temporary path once it is fully written,
            before it is renamed into place (fault injection uses it).

    Returns:
        ``path``.

    Raises:
        WriteError: writing failed; nothing is left under ``path``.
    """
    ckpt.metadata["format"] = "pt"
    ckpt.metadata[DIGEST_KEY] = content_digest(ckpt)
    adapter = load_adapter("torch" if fmt == "torch" else "safetensors")
    options = WriteOptions(shard_size=shard_size if fmt == "safetensors-sharded" else None)
    with atomic_output(path, overwrite=True) as tmp:
        adapter.write(ckpt, tmp, options)
        if before_publish is not None:
            before_publish(tmp)
    return path


def load_checkpoint(path: str | Path, require_optimizer: bool = True) -> Checkpoint:
    """Load a training checkpoint fully and prove it is intact and resumable.

    Every tensor is read (so each format checksum is checked), the content
    digest is recomputed, and the training state must be complete.

    Raises:
        FormatError: unreadable or damaged structure, or incomplete training state
            (no optimizer state, no step, no RNG states).
        IntegrityError: a checksum or the content digest does not match.
    """
    from portability.core.conversion import read_checkpoint

    path = Path(path)
    try:
        ckpt, _fmt = read_checkpoint(path, options=ReadOptions(verify=True))
        ckpt.tensors = {n: as_array(t) for n, t in ckpt.tensors.items()}
    except PortabilityError:
        raise
    except (ValueError, KeyError, TypeError, AttributeError, IndexError, OSError) as exc:
        # Damage a reader did not anticipate still means "do not resume from this".
        raise FormatError(f"{path}: damaged checkpoint ({type(exc).__name__}: {exc})") from exc
    recorded = ckpt.metadata.get(DIGEST_KEY)
    if recorded is None or not ckpt.checksummed:
        raise IntegrityError(f"{path}: no checksums or content digest recorded: cannot prove it is intact; "
                             "refusing to resume from it")
    actual = content_digest(ckpt)
    if actual != recorded:
        raise IntegrityError(f"{path}: content digest mismatch (recorded {recorded}, got {actual}): "
                             "the checkpoint is damaged")
    ts = ckpt.training
    if require_optimizer and (ts is None or ts.optimizer is None or not ts.optimizer.state):
        raise FormatError(f"{path}: checkpoint has no optimizer state: it holds weights only and "
                          "cannot resume training")
    if ts is None or ts.global_step is None or not ts.rng:
        raise FormatError(f"{path}: checkpoint lacks its step counter or RNG states: cannot resume exactly")
    return ckpt


@dataclass
class Rejection:
    """A checkpoint the scan refused, and why."""

    path: Path
    step: int
    error: str
    error_type: str


@dataclass
class ScanResult:
    """What ``find_latest_valid`` saw in a checkpoint directory."""

    latest: Checkpoint | None = None
    latest_path: Path | None = None
    latest_step: int = 0
    rejected: list[Rejection] = field(default_factory=list)
    stale_temporaries: list[Path] = field(default_factory=list)
    seconds: float = 0.0


def stale_temporaries(directory: Path) -> list[Path]:
    """Temporary outputs left by an interrupted atomic write (never valid checkpoints)."""
    return sorted(p for p in Path(directory).iterdir() if p.name.startswith(".") and TMP_MARKER in p.name)


def list_checkpoints(directory: Path) -> list[tuple[int, Path]]:
    """Published checkpoints in a directory as ``(step, path)``, newest first."""
    found = []
    for p in Path(directory).iterdir():
        match = CHECKPOINT_NAME.match(p.name)
        if match:
            found.append((int(match.group(1)), p))
    return sorted(found, reverse=True)


def find_latest_valid(directory: str | Path, require_optimizer: bool = True,
                      remove_stale: bool = False) -> ScanResult:
    """Newest checkpoint that loads intact, and the reasons every newer one was refused.

    Args:
        directory: the checkpoint directory of a run.
        require_optimizer: refuse checkpoints that cannot resume training.
        remove_stale: delete temporary files left by interrupted writes.
    """
    start = time.perf_counter()
    directory = Path(directory)
    result = ScanResult()
    if not directory.is_dir():
        result.seconds = time.perf_counter() - start
        return result
    result.stale_temporaries = stale_temporaries(directory)
    if remove_stale:
        for p in result.stale_temporaries:
            if p.is_dir():
                shutil.rmtree(p, ignore_errors=True)
            else:
                p.unlink(missing_ok=True)
    for step, path in list_checkpoints(directory):
        try:
            ckpt = load_checkpoint(path, require_optimizer)
        except PortabilityError as exc:
            result.rejected.append(Rejection(path, step, str(exc), type(exc).__name__))
            continue
        result.latest, result.latest_path, result.latest_step = ckpt, path, step
        break
    result.seconds = time.perf_counter() - start
    return result


def train(trainable: Trainable, config: TrainConfig,
          on_step: Callable[[int], None] | None = None,
          before_publish: Callable[[int, Path], None] | None = None) -> TrainResult:
    """Train ``trainable`` from its current step to ``config.total_steps``.

    Args:
        trainable: the framework-specific setup, fresh or restored.
        config: length and checkpoint policy.
        on_step: called with the step number after each step (before its checkpoint).
        before_publish: called with ``(step, temporary path)`` inside each checkpoint write.

    Returns:
        Losses per step, the final metric and the checkpoints written.
    """
    result = TrainResult()
    if config.directory is not None:
        Path(config.directory).mkdir(parents=True, exist_ok=True)
    while trainable.step < config.total_steps:
        loss = trainable.train_step()
        step = trainable.step
        result.losses[step] = loss
        if on_step is not None:
            on_step(step)
        if config.directory is not None and step % config.checkpoint_every == 0:
            hook = (lambda tmp, s=step: before_publish(s, tmp)) if before_publish else None
            path = checkpoint_path(Path(config.directory), step, config.fmt)
            result.checkpoints.append(save_checkpoint(trainable.capture(), path, config.fmt,
                                                      config.shard_size, hook))
    result.final_metric = trainable.evaluate()
    return result
