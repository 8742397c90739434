"""``portability fixtures [NAME...] [--json] [--export DIR]``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from portability.cli import app

EXPORT_RECORD = "fixture.json"
EXPORT_CHECKPOINT = "model.safetensors"
EXPORT_INPUTS = "eval_batch.npz"


@app.command()
def fixtures(
    names: Optional[list[str]] = typer.Argument(None, help="Fixtures to show (default: all)."),
    as_json: bool = typer.Option(False, "--json", help="Print a JSON list instead of a table."),
    export: Optional[Path] = typer.Option(None, "--export", help="Write each fixture's pretrained checkpoint "
                                          "and fixture.json under DIR/NAME/."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace existing DIR/NAME folders."),
) -> int:
    """List the fixture zoo: framework, family, parameters, metric, reference value, threshold.

    The first use trains each fixture (seconds) and caches it; later calls read the cache.
    Exit 1 if a fixture's reference value misses its threshold.
    """
    from portability.errors import UsageError
    from portability.fixtures.registry import all_fixtures, get_fixture

    if export is not None and export.exists() and not export.is_dir():
        raise UsageError(f"--export {export}: not a directory (fixtures are written to DIR/NAME/)")
    chosen = [get_fixture(n) for n in names] if names else all_fixtures()
    rows = []
    for fixture in chosen:
        ckpt = _pretrained(fixture)
        rows.append(fixture.describe(ckpt))
        if export is not None:
            _export(fixture, ckpt, rows[-1], export, overwrite)
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
    else:
        _render(rows, export)
    return 0 if all(r["passes"] for r in rows) else 1


def _pretrained(fixture):
    path = fixture.cache_path()
    if not path.is_file():
        typer.echo(f"training fixture {fixture.name} (first use; cached in {path.parent})", err=True)
    return fixture.pretrained()


def _export(fixture, ckpt, row: dict, root: Path, overwrite: bool) -> None:
    """Write ``root/NAME/{model.safetensors, eval_batch.npz, fixture.json}`` atomically."""
    import numpy as np

    from portability.adapters.safetensors import format as safetensors_format
    from portability.core.atomic import atomic_output

    with atomic_output(root / fixture.name, overwrite=overwrite) as tmp:
        tmp.mkdir(parents=True)
        safetensors_format.write(ckpt, tmp / EXPORT_CHECKPOINT)
        with open(tmp / EXPORT_INPUTS, "wb") as f:
            np.savez(f, **fixture.eval_batch())
        record = {**row, "model": f"fixture:{fixture.name}", "checkpoint": EXPORT_CHECKPOINT,
                  "eval_batch": EXPORT_INPUTS}
        (tmp / EXPORT_RECORD).write_text(json.dumps(record, indent=2) + "\n")


def _render(rows: list[dict], export: Path | None) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table("name", "framework", "family", "parameters", "metric", "reference", "threshold", "ok")
    for r in rows:
        direction = ">=" if r["higher_is_better"] else "<="
        table.add_row(r["name"], r["framework"], r["family"], f"{r['parameters']:,}", r["metric"],
                      f"{r['reference_value']:.4g}", f"{direction} {r['threshold']:g}",
                      "yes" if r["passes"] else "NO")
    console = Console()
    if not console.is_terminal:
        console = Console(width=120)
    console.print(table)
    if export is not None:
        console.print(f"exported {len(rows)} fixture(s) to {export}")
