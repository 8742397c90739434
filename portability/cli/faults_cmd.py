"""``portability faults --recipe MODULE:FUNCTION | --fixture NAME|all``: crash and corrupt
training runs, prove recovery, and measure what each piece of training state is worth."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from portability.cli import app


@app.command()
def faults(
    recipe: Optional[str] = typer.Option(None, "--recipe", help="Your training recipe: MODULE:FUNCTION or FILE.py:FUNCTION, a function returning a portability.TrainingRecipe."),
    fixture: Optional[str] = typer.Option(None, "--fixture", help="Built-in task or fixture name(s), comma-separated, or 'all'."),
    kinds: Optional[str] = typer.Option(None, "--kinds", help="Fault kinds, comma-separated (default: all)."),
    steps: Optional[int] = typer.Option(None, "--steps", min=1, help="Training steps per run (default: the recipe's)."),
    every: Optional[int] = typer.Option(None, "--every", min=1, help="Checkpoint every K steps (default: the recipe's)."),
    resume: bool = typer.Option(True, "--resume/--no-resume", help="Also measure resume parity per route."),
    components: bool = typer.Option(True, "--components/--no-components", help="Also resume without each piece of state in turn (rng, data position, scheduler, optimizer, scaler, buffers)."),
    tf: bool = typer.Option(True, "--tf/--no-tf", help="Also continue training in TensorFlow (mlp, toy-mlp, toy-sgd, bert-tiny, gpt2-tiny)."),
    json_path: Optional[Path] = typer.Option(None, "--json", help="Write the JSON report here."),
    junit_path: Optional[Path] = typer.Option(None, "--junit", help="Write JUnit XML here (one testcase per row)."),
    markdown_path: Optional[Path] = typer.Option(None, "--markdown", help="Write a Markdown summary here."),
    html_path: Optional[Path] = typer.Option(None, "--html", help="Write a self-contained HTML report here."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No table; one summary line."),
) -> int:
    """Inject every fault kind into short training runs and check detection and recovery.

    Exit status: 0 when every fault was detected and recovered with R >= 0.99 and
    every exact resume route was bitwise; 1 otherwise; 2 on usage errors.
    """
    from portability.errors import UsageError
    from portability.faults.campaign import KINDS
    from portability.reports.faults_report import print_table, run_faults, write_reports
    from portability.training.tasks import get_task, task_names

    if (recipe is None) == (fixture is None):
        raise UsageError("give --recipe MODULE:FUNCTION (your training recipe) or --fixture NAME|all")
    if recipe is not None:
        names = [recipe]
    else:
        names = task_names() if fixture == "all" else [n.strip() for n in str(fixture).split(",") if n.strip()]
        if fixture == "all" and len(names) > 1:
            names = [n for n in names if n not in ("toy-mlp", "toy-sgd")]  # built-ins stand in only without a zoo
    if not names:
        raise UsageError("--fixture names no fixture")
    for name in names:
        get_task(name)  # unknown names and broken recipes fail here, before any run
    chosen = tuple(k.strip() for k in kinds.split(",")) if kinds else KINDS
    report = run_faults(names, chosen, steps, every, resume=resume, tf=tf, components=components,
                        skipped=_untrainable() if fixture == "all" else None)
    if not quiet:
        print_table(report)
    fails = sum(r.status == "fail" for r in report.rows)
    typer.echo(f"{'PASSED' if report else 'FAILED'}: {len(report.rows)} rows, {fails} failed, "
               f"{report.duration_s:.1f} s")
    for line in write_reports(report, json_path, junit_path, markdown_path):
        typer.echo(f"wrote {line}")
    if html_path is not None:
        from portability.reports.html_report import write_faults_html

        write_faults_html(report.to_dict(), html_path)
        typer.echo(f"wrote HTML {html_path}")
    return report.exit_code()


def _untrainable() -> dict[str, str]:
    """Zoo fixtures with no training recipe, and why."""
    from portability.training.tasks import task_names

    try:
        from portability.fixtures.registry import all_fixtures
    except ImportError:
        return {}
    known = set(task_names())
    return {f.name: f"no training recipe for a {f.framework} fixture" for f in all_fixtures() if f.name not in known}
