"""``portability compare REFERENCE CANDIDATE``: judge one artifact against another.

The tolerance, report and runtime options are the check's (``portability.cli.options``).
"""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any, Optional

import typer

from portability.cli import app
from portability.cli.check_options import LiveProgress, build_tolerance, print_report, write_reports
from portability.cli.options import select, with_options

_KW = inspect.Parameter.KEYWORD_ONLY
_LEADING = [
    inspect.Parameter("reference", _KW, annotation=Path,
                      default=typer.Argument(..., help="The reference artifact (any format).")),
    inspect.Parameter("candidate", _KW, annotation=Path, default=typer.Argument(
        ..., help="The artifact to judge (any format), e.g. an ONNX made by another tool.")),
    inspect.Parameter("model", _KW, annotation=Optional[str], default=typer.Option(
        None, "--model", help="Model spec to run weights-only artifacts.")),
    inspect.Parameter("candidate_model", _KW, annotation=Optional[str], default=typer.Option(
        None, "--candidate-model", help="Model spec for the candidate, if it differs.")),
    inspect.Parameter("fixture", _KW, annotation=Optional[str], default=typer.Option(
        None, "--fixture", help="Use this fixture's batch and task metric.")),
    inspect.Parameter("inputs", _KW, annotation=Optional[list[Path]], default=typer.Option(
        None, "--inputs", help=".npz of named inputs; repeatable: both run on each file, judged per file.")),
    inspect.Parameter("in_process", _KW, annotation=bool, default=typer.Option(
        False, "--in-process", help="Run in this process instead of an isolated worker.")),
]
_SHARED = select("json", "junit", "markdown", "html", "metric", "higher-is-better", "labels", "eval-data",
                 "atol", "rtol", "min-r", "weights-atol", "timeout", "trust-pickle", "quiet", "env",
                 "max-memory")


@app.command()
@with_options(_SHARED, leading=_LEADING)
def compare(**values: Any) -> int:
    """Run two artifacts on the same inputs: weights, drift, R and a verdict.

    Exit status: 0 pass, 1 fail or error, 2 on usage or input errors.
    """
    from portability.api import compare as run_compare

    v = values
    tolerance = build_tolerance(v["atol"], v["rtol"], v["min_r"], v["weights_atol"])
    with LiveProgress(v["quiet"]) as progress:
        report = run_compare(v["reference"], v["candidate"], model=v["model"], candidate_model=v["candidate_model"],
                             inputs=v["inputs"] or None, fixture=v["fixture"], tolerance=tolerance, timeout_s=v["timeout"],
                             trust_pickle=v["trust_pickle"], workers=0 if v["in_process"] else None,
                             progress=progress, metric=v["metric"], higher_is_better=v["higher_is_better"],
                             labels=v["labels"], eval_data=v["eval_data"], envs=v["env"],
                             max_memory=v["max_memory"])
    print_report(report, v["quiet"])
    for line in write_reports(report, v["json_path"], v["junit_path"], v["markdown_path"], v["html_path"]):
        typer.echo(f"wrote {line}")
    return report.exit_code()
