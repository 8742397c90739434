"""``portability faults --fixture NAME|all``: crash and corrupt training runs, prove recovery."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from portability.cli import app


@app.command()
def faults(
    fixture: str = typer.Option(..., "--fixture", help="Fixture or task name(s), comma-separated, or 'all'."),
    kinds: Optional[str] = typer.Option(None, "--kinds", help="Fault kinds, comma-separated (default: all)."),
    steps: Optional[int] = typer.Option(None, "--steps", min=1, help="Training steps per run (default: the recipe's, 30)."),
    every: int = typer.Option(5, "--every", min=1, help="Checkpoint every K steps."),
    resume: bool = typer.Option(True, "--resume/--no-resume", help="Also measure resume parity per route."),
    tf: bool = typer.Option(True, "--tf/--no-tf", help="Also continue training in TensorFlow (mlp, bert-tiny, gpt2-tiny)."),
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
    from portability.training.torch_recipes import recipe_names, training_recipe

    names = recipe_names() if fixture == "all" else [n.strip() for n in fixture.split(",") if n.strip()]
    if fixture == "all" and len(names) > 1:
        names = [n for n in names if n != "toy-mlp"]  # the built-in task stands in only without a zoo
    if not names:
        raise UsageError("--fixture names no fixture")
    for name in names:
        training_recipe(name)  # unknown names fail here, before any run
    chosen = tuple(k.strip() for k in kinds.split(",")) if kinds else KINDS
    report = run_faults(names, chosen, steps, every, resume=resume, tf=tf,
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
    """Zoo fixtures with no PyTorch training recipe, and why."""
    from portability.training.torch_recipes import recipe_names

    try:
        from portability.fixtures.registry import all_fixtures
    except ImportError:
        return {}
    known = set(recipe_names())
    return {f.name: f"no training recipe for a {f.framework} fixture" for f in all_fixtures() if f.name not in known}
