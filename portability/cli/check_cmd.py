"""``portability check``: judge every conversion route of a checkpoint or fixture."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from portability.cli import app
from portability.cli.check_options import (ATOL_HELP, MIN_R_HELP, RTOL_HELP, WEIGHTS_HELP, LiveProgress,
                                           build_tolerance, print_report, write_reports)


@app.command()
def check(
    checkpoint: Optional[Path] = typer.Argument(None, help="Checkpoint to check (or use --fixture)."),
    model: Optional[str] = typer.Option(None, "--model", help="Model spec: fixture:NAME, hf:DIR, pkg.module:factory."),
    fixture: Optional[str] = typer.Option(None, "--fixture", help="Built-in fixture name(s), comma-separated, or 'all'."),
    formats: Optional[str] = typer.Option(None, "--formats", help="Formats in play, e.g. torch,safetensors,onnx (default: all)."),
    routes: Optional[str] = typer.Option(None, "--routes", help="Routes to run, e.g. 'torch->onnx,torch:onnx:torch' (overrides --formats)."),
    inputs: Optional[Path] = typer.Option(None, "--inputs", help=".npz of named inputs (default: the fixture's batch)."),
    json_path: Optional[Path] = typer.Option(None, "--json", help="Write the JSON report here."),
    junit_path: Optional[Path] = typer.Option(None, "--junit", help="Write JUnit XML here (one testcase per route)."),
    markdown_path: Optional[Path] = typer.Option(None, "--markdown", help="Write a Markdown summary here."),
    atol: Optional[list[str]] = typer.Option(None, "--atol", help=ATOL_HELP),
    rtol: Optional[list[str]] = typer.Option(None, "--rtol", help=RTOL_HELP),
    min_r: Optional[list[str]] = typer.Option(None, "--min-r", help=MIN_R_HELP),
    weights_atol: Optional[str] = typer.Option(None, "--weights-atol", help=WEIGHTS_HELP),
    workers: Optional[int] = typer.Option(None, "--workers", min=0, help="Worker processes (default: the cores; 0 = in-process)."),
    timeout: float = typer.Option(600.0, "--timeout", min=1.0, help="Seconds per route before its worker is killed."),
    trust_pickle: bool = typer.Option(False, "--trust-pickle", help="Allow torch pickles that need other globals (runs code)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No table or progress; one summary line."),
) -> int:
    """Convert through every route and judge weights, output drift and recoverability R.

    Exit status: 0 when every route that ran passed, 1 when any failed or
    errored (or none ran), 2 on usage or input errors.
    """
    from portability.api import plan, run_plan

    if checkpoint is not None and fixture is not None:
        from portability.errors import UsageError

        raise UsageError("give either CHECKPOINT or --fixture, not both")
    tolerance = build_tolerance(atol, rtol, min_r, weights_atol)
    the_plan = plan(checkpoint, model=model, fixture=fixture, formats=formats, routes=routes, inputs=inputs,
                    tolerance=tolerance, trust_pickle=trust_pickle)
    with LiveProgress(quiet) as progress:
        progress.set_total(len(the_plan.jobs))
        report = run_plan(the_plan, workers=workers, timeout_s=timeout, progress=progress)
    print_report(report, quiet)
    for line in write_reports(report, json_path, junit_path, markdown_path):
        typer.echo(f"wrote {line}")
    return report.exit_code()
