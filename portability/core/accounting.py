"""The no-data-lost invariant, checked after every write.

A conversion that exits 0 must not have lost tensors: every tensor name of the
source (tied names and training-state arrays included) must be in the output
with at least as many bytes, and a source that holds tensors never yields an
output that holds none. Training state is excused only for a destination
format that does not store it (ONNX), which ``ConvertResult`` already reports.
"""

from __future__ import annotations

from pathlib import Path

from portability.core.checkpoint import Checkpoint
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


def check_written(source: Checkpoint, path: Path, fmt: str, where: str | Path | None = None) -> None:
    """Read back what was just written at ``path`` (in format ``fmt``) and check it.

    Raises:
        WriteError: the output lost tensors (see ``check_nothing_lost``).
        PortabilityError: the output cannot be read back.
    """
    from portability.core.formats import load_adapter, spec_for

    output = load_adapter(fmt).read(path, ReadOptions(trust_pickle=True))
    check_nothing_lost(source, output, spec_for(fmt).keeps_training_state, where or path)
