"""``portability compare REFERENCE CANDIDATE``: judge one artifact against another."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from portability.cli import app
from portability.cli.check_options import (ATOL_HELP, MIN_R_HELP, RTOL_HELP, WEIGHTS_HELP, LiveProgress,
                                           build_tolerance, print_report, write_reports)


@app.command()
def compare(
    reference: Path = typer.Argument(..., help="The reference artifact (any format)."),
    candidate: Path = typer.Argument(..., help="The artifact to judge (any format), e.g. an ONNX made by another tool."),
    model: Optional[str] = typer.Option(None, "--model", help="Model spec to run weights-only artifacts."),
    candidate_model: Optional[str] = typer.Option(None, "--candidate-model", help="Model spec for the candidate, if it differs."),
    fixture: Optional[str] = typer.Option(None, "--fixture", help="Use this fixture's batch and task metric."),
    inputs: Optional[Path] = typer.Option(None, "--inputs", help=".npz of named inputs."),
    json_path: Optional[Path] = typer.Option(None, "--json", help="Write the JSON report here."),
    junit_path: Optional[Path] = typer.Option(None, "--junit", help="Write JUnit XML here."),
    markdown_path: Optional[Path] = typer.Option(None, "--markdown", help="Write a Markdown summary here."),
    atol: Optional[list[str]] = typer.Option(None, "--atol", help=ATOL_HELP),
    rtol: Optional[list[str]] = typer.Option(None, "--rtol", help=RTOL_HELP),
    min_r: Optional[list[str]] = typer.Option(None, "--min-r", help=MIN_R_HELP),
    weights_atol: Optional[str] = typer.Option(None, "--weights-atol", help=WEIGHTS_HELP),
    timeout: float = typer.Option(600.0, "--timeout", min=1.0, help="Seconds before the worker is killed."),
    trust_pickle: bool = typer.Option(False, "--trust-pickle", help="Allow torch pickles that need other globals (runs code)."),
    in_process: bool = typer.Option(False, "--in-process", help="Run in this process instead of an isolated worker."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No table or progress; one summary line."),
) -> int:
    """Run two artifacts on the same inputs: weights, drift, R and a verdict.

    Exit status: 0 pass, 1 fail or error, 2 on usage or input errors.
    """
    from portability.api import compare as run_compare

    tolerance = build_tolerance(atol, rtol, min_r, weights_atol)
    with LiveProgress(quiet) as progress:
        report = run_compare(reference, candidate, model=model, candidate_model=candidate_model, inputs=inputs,
                             fixture=fixture, tolerance=tolerance, timeout_s=timeout, trust_pickle=trust_pickle,
                             workers=0 if in_process else None, progress=progress)
    print_report(report, quiet)
    for line in write_reports(report, json_path, junit_path, markdown_path):
        typer.echo(f"wrote {line}")
    return report.exit_code()
