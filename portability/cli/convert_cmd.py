"""``portability convert SRC DST``."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from portability.cli import app


@app.command()
def convert(
    src: Path = typer.Argument(..., help="Checkpoint to read (file or directory)."),
    dst: Path = typer.Argument(..., help="Where to write; its extension picks the format unless --to is given."),
    to: Optional[str] = typer.Option(None, "--to", help="Output format: torch, safetensors, onnx, tf-savedmodel."),
    source_format: Optional[str] = typer.Option(None, "--from", help="Input format, when its name does not tell."),
    shard_size: Optional[str] = typer.Option(None, "--shard-size", help="Largest shard, e.g. 500MB or 2GiB (safetensors)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace DST if it exists."),
    trust_pickle: bool = typer.Option(False, "--trust-pickle", help="Allow pickles that need other globals (runs code: only for files you trust)."),
    model: Optional[str] = typer.Option(None, "--model", help="Model spec for graph formats: fixture:NAME, hf:DIR, pkg.module:factory."),
    opset: Optional[int] = typer.Option(None, "--opset", help="ONNX opset for graph exports."),
    inputs: Optional[Path] = typer.Option(None, "--inputs", help="Example inputs (.npz, arrays named after the model's inputs) for graph exports."),
    dynamic: Optional[list[str]] = typer.Option(
        None, "--dynamic", metavar="NAME=AXES",
        help="Keep these input axes symbolic in graph exports, e.g. image=0,2,3 (repeatable; batch, and "
             "the sequence of token ids, are dynamic by default)."),
    weights_key: Optional[str] = typer.Option(
        None, "--weights-key",
        help="Where the weights sit in a nested torch checkpoint, KEY[.SUB] (default: found by search; "
             "`portability inspect` lists the candidates)."),
    weights_only: bool = typer.Option(
        False, "--weights-only",
        help="Write the weights alone: drop the optimizer, scheduler, RNG and step (a conversion that would "
             "drop them otherwise fails), and do not even read training files beside the weights."),
    no_fsync: bool = typer.Option(
        False, "--no-fsync",
        help="Publish without flushing to disk first: runs at page-cache speed; a killed process still "
             "leaves nothing half-written, but a power loss right after may leave a file that fails its checksums."),
) -> int:
    """Convert a checkpoint. The output appears atomically, or not at all."""
    from portability.core.conversion import convert as run_convert

    result = run_convert(src, dst, to=to, source_format=source_format, shard_size=shard_size,
                         overwrite=overwrite, trust_pickle=trust_pickle, model=model, opset=opset,
                         inputs=inputs, weights_key=weights_key, durable=not no_fsync,
                         weights_only=weights_only, dynamic=dynamic)
    typer.echo(result.describe())
    return 0
