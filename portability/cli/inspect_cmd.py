"""``portability inspect PATH``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from portability.cli import app

MAX_ROWS = 40


@app.command()
def inspect(
    path: Path = typer.Argument(..., help="Checkpoint file or directory."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
    trust_pickle: bool = typer.Option(False, "--trust-pickle", help="Allow pickles that need other globals."),
    all_rows: bool = typer.Option(False, "--all", help=f"List every tensor (default: first {MAX_ROWS})."),
    weights_key: Optional[str] = typer.Option(
        None, "--weights-key",
        help="Where the weights sit in a nested torch checkpoint, KEY[.SUB] (default: found by search)."),
) -> int:
    """Show format, tensors, parameter count, training state and integrity. Exit 1 if integrity fails."""
    from portability.core.inspection import inspect_checkpoint

    info = inspect_checkpoint(path, trust_pickle=trust_pickle, weights_key=weights_key)
    failed = info["integrity"]["status"] == "failed"
    if as_json:
        typer.echo(json.dumps(info, indent=2))
    else:
        _render(info, all_rows)
    return 1 if failed else 0


def _render(info: dict, all_rows: bool) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    integrity = info["integrity"]
    if integrity["status"] == "failed":
        console.print(f"[bold]{info['path']}[/] ({info['format']})")
        console.print(f"integrity: [red]FAILED[/] {integrity['message']}")
        return
    console.print(f"[bold]{info['path']}[/]  format: {info['format']}  layout: {info['layout']}  "
                  f"weights: {info['weights_key']}")
    if len(info["weight_candidates"]) > 1:
        listed = ", ".join(f"{c['key']} ({c['tensors']} tensors, {c['parameters']:,} parameters)"
                           for c in info["weight_candidates"])
        console.print(f"weight candidates: {listed}; pick another with --weights-key KEY")
    table = Table("name", "dtype", "shape", "bytes", "tied to")
    rows = info["tensors"] if all_rows else info["tensors"][:MAX_ROWS]
    for t in rows:
        table.add_row(t["name"], t["dtype"], str(tuple(t["shape"])), f"{t['bytes']:,}", t["alias_of"] or "")
    console.print(table)
    if len(rows) < len(info["tensors"]):
        console.print(f"... {len(info['tensors']) - len(rows)} more (--all lists them)")
    console.print(f"tensors: {len(info['tensors'])}  parameters: {info['parameters']:,}  "
                  f"bytes: {info['total_bytes']:,}")
    ts = info["training_state"]
    if ts["present"]:
        opt = ts["optimizer"]
        opt_text = ("none" if opt is None
                    else f"{opt['kind'] or 'unknown'} ({opt['parameters_with_state']} params with state)")
        console.print(f"training state: optimizer {opt_text}, scheduler {'yes' if ts['scheduler'] else 'no'}, "
                      f"epoch {ts['epoch']}, step {ts['global_step']}, loss {ts['loss']}, rng {ts['rng'] or 'none'}"
                      f"{', grad scaler' if ts['scaler'] else ''}")
        if ts["carried_files"]:
            console.print("carried files: " + ", ".join(f"{n} ({size:,} bytes)" for n, size in ts["carried_files"].items()))
        for note in ts["notes"]:
            console.print(f"note: {note}")
    else:
        console.print("training state: none")
    colour = "green" if integrity["status"] == "ok" else "yellow"
    console.print(f"integrity: [{colour}]{integrity['status']}[/] ({integrity['message']})")
