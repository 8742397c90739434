"""The no-data-lost invariant, checked after every write.

A conversion that exits 0 must not have lost tensors: every tensor name of the
source (tied names and training-state arrays included) must be in the output
with at least as many bytes, and a source that holds tensors never yields an
output that holds none.

Training state is held to the same rule (``check_training_kept``): a conversion
that would drop optimizer, scheduler or RNG state (into a format that cannot store
it) is refused before anything is written unless the caller asked for the weights
alone, and after a write to a format that stores it, every piece the source held
(optimizer, scheduler, each RNG, step, epoch, data position, every other entry)
must be read back.
"""

from __future__ import annotations

from pathlib import Path

from portability.core.checkpoint import Checkpoint, TrainingState
from portability.core.options import ReadOptions
from portability.core.tensors import nbytes
from portability.core.training_codec import pack_training
from portability.errors import WriteError

MAX_NAMED = 8


def tensor_inventory(ckpt: Checkpoint, with_training: bool = True) -> dict[str, int]:
    """Bytes per tensor name: weights (tied names too) and, if asked, training-state arrays."""
    inventory = {name: nbytes(t) for name, t in ckpt.tensors.items()}
    if with_training and ckpt.training is not None:
        inventory.update({name: nbytes(a) for name, a in pack_training(ckpt.training)[1].items()})
    return inventory


def check_nothing_lost(source: Checkpoint, output: Checkpoint, keeps_training: bool, where: str | Path) -> None:
    """Raise unless ``output`` accounts for every tensor byte of ``source``.

    Args:
        source: what was written.
        output: what reading the written artifact gives back.
        keeps_training: whether the output's format stores training state.
        where: the output, for the message.

    Raises:
        WriteError: names the lost tensors and their bytes.
    """
    wanted = tensor_inventory(source, keeps_training)
    got = tensor_inventory(output, keeps_training)
    lost = {name: size for name, size in wanted.items() if got.get(name, -1) < size}
    if not lost:
        return
    total = sum(lost.values())
    names = ", ".join(list(lost)[:MAX_NAMED]) + (f" and {len(lost) - MAX_NAMED} more" if len(lost) > MAX_NAMED else "")
    if wanted and not got:
        head = f"{where}: the output holds no tensors but the source holds {len(wanted)}"
    else:
        head = f"{where}: the output lost {len(lost)} of the source's {len(wanted)} tensors"
    raise WriteError(f"{head} ({total:,} bytes: {names}); nothing was written")


# What a conversion may not drop silently (``--weights-only`` drops it on purpose).
ESSENTIAL = ("optimizer", "scheduler", "rng")


def training_pieces(ts: TrainingState | None) -> list[str]:
    """The pieces of training state ``ts`` holds: ``optimizer``, ``scheduler``, ``rng``
    (with each generator as ``rng:NAME``), ``step``, ``epoch``, ``loss``, ``data position``,
    and every other entry as ``entry:KEY`` (bookkeeping keys starting ``__`` left out)."""
    if ts is None:
        return []
    pieces = [name for name, present in (("optimizer", ts.optimizer is not None),
                                         ("scheduler", ts.scheduler is not None),
                                         ("rng", bool(ts.rng))) if present]
    pieces += [f"rng:{k}" for k in (ts.rng or {})]
    pieces += [name for name, value in (("step", ts.global_step), ("epoch", ts.epoch), ("loss", ts.loss),
                                        ("data position", ts.data_position)) if value is not None]
    return pieces + [f"entry:{k}" for k in ts.extra if not str(k).startswith("__")]


def check_training_kept(source: Checkpoint, output: Checkpoint | None, keeps_training: bool,
                        where: str | Path, fmt: str = "the destination format") -> None:
    """Refuse a conversion that drops training state.

    Args:
        source: what is (about to be) written.
        output: what reading the written artifact gives back; None before the write.
        keeps_training: whether the destination format stores training state.
        where: the output, for the message.
        fmt: the destination format, for the message.

    Raises:
        WriteError: before the write, a destination that cannot store the source's
            optimizer, scheduler or RNG state; after it, pieces that did not come back.
    """
    held = training_pieces(source.training)
    if not keeps_training:
        dropped = [p for p in held if p in ESSENTIAL]
        if dropped:
            raise WriteError(f"{where}: {fmt} does not store training state, and the source holds "
                             f"{', '.join(dropped)} state; pass --weights-only (weights_only=True) to write "
                             "the weights alone; nothing was written")
        return
    if output is None:
        return
    back = set(training_pieces(output.training))
    lost = [p for p in held if p not in back]
    if lost:
        raise WriteError(f"{where}: the output lost the source's training state ({', '.join(lost)}); "
                         "nothing was written")


def check_written(source: Checkpoint, path: Path, fmt: str, where: str | Path | None = None) -> None:
    """Read back what was just written at ``path`` (in format ``fmt``) and check it.

    Raises:
        WriteError: the output lost tensors (see ``check_nothing_lost``) or training
            state (see ``check_training_kept``).
        PortabilityError: the output cannot be read back.
    """
    from portability.core.formats import load_adapter, spec_for

    output = load_adapter(fmt).read(path, ReadOptions(trust_pickle=True))
    keeps = spec_for(fmt).keeps_training_state
    check_nothing_lost(source, output, keeps, where or path)
    check_training_kept(source, output, keeps, where or path, fmt)
