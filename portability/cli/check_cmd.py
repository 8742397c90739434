"""``portability check``: judge every conversion route of a checkpoint or fixture.

Its options come from the one table in ``portability.cli.options``, which also
generates the pytest plugin's ``--portability-*`` options.
"""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any, Optional

import typer

from portability.cli import app
from portability.cli.check_options import LiveProgress, build_tolerance, print_report, write_reports
from portability.cli.options import CHECK_OPTIONS, with_options

_CHECKPOINT = inspect.Parameter(
    "checkpoint", inspect.Parameter.KEYWORD_ONLY, annotation=Optional[Path],
    default=typer.Argument(None, help="Checkpoint to check (or use --fixture)."))


@app.command()
@with_options(CHECK_OPTIONS, leading=[_CHECKPOINT])
def check(**values: Any) -> int:
    """Convert through every route and judge weights, output drift and recoverability R.

    Exit status: 0 when every route that ran passed, 1 when any failed or
    errored (or none ran), 2 on usage or input errors.
    """
    from portability.api import plan, run_plan
    from portability.errors import UsageError

    v = values
    if v["checkpoint"] is not None and v["fixture"] is not None:
        raise UsageError("give either CHECKPOINT or --fixture, not both")
    tolerance = build_tolerance(v["atol"], v["rtol"], v["min_r"], v["weights_atol"])
    the_plan = plan(v["checkpoint"], model=v["model"], fixture=v["fixture"], formats=v["formats"],
                    routes=v["routes"], inputs=v["inputs"] or None, tolerance=tolerance, trust_pickle=v["trust_pickle"],
                    metric=v["metric"], higher_is_better=v["higher_is_better"], labels=v["labels"],
                    eval_data=v["eval_data"], envs=v["env"], opset=v["opset"],
                    target_env=v["target_env"], dynamic=v["dynamic"] or None)
    with LiveProgress(v["quiet"]) as progress:
        progress.set_total(len(the_plan.jobs))
        report = run_plan(the_plan, workers=v["workers"], timeout_s=v["timeout"], progress=progress,
                          strict=v["strict"], executor=v["executor"], device=v["device"],
                          max_memory=v["max_memory"])
    print_report(report, v["quiet"])
    for line in write_reports(report, v["json_path"], v["junit_path"], v["markdown_path"], v["html_path"]):
        typer.echo(f"wrote {line}")
    return report.exit_code()
