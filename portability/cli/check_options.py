"""Options shared by ``portability check`` and ``portability compare``: the
tolerance overrides and the report files.

Tolerance overrides take ``[ROUTE@][OUTPUT=]VALUE`` and repeat:
``--atol 1e-4`` (every output), ``--atol logits=1e-3`` (one output),
``--atol 'torch->onnx@1e-4'`` or ``--atol torch:onnx@logits=1e-3`` (one route).
"""

from __future__ import annotations

from pathlib import Path

from portability.errors import UsageError
from portability.harness.drift import Tolerance
from portability.harness.routes import parse_route
from portability.reports.check_report import Report


def _number(text: str, option: str) -> float:
    try:
        value = float(text)
    except ValueError as exc:
        raise UsageError(f"{option} {text!r}: {text.split('=')[-1]!r} is not a number") from exc
    if value < 0:
        raise UsageError(f"{option} {text!r}: must not be negative")
    return value


def _split(item: str, option: str) -> tuple[str | None, str | None, float]:
    route, _, rest = item.rpartition("@")
    output, eq, value = rest.rpartition("=")
    route_name = parse_route(route).name if route else None
    if eq and not output:
        raise UsageError(f"{option} {item!r}: empty output name before '='")
    try:
        number = _number(value, option)
    except UsageError as exc:
        raise UsageError(f"{option} {item!r}: {value!r} is not a non-negative number") from exc
    return route_name, (output if eq else None), number


def _put(target: Tolerance, field: str, output: str | None, value: float) -> None:
    current = getattr(target, field)
    if output is None:
        if isinstance(current, dict):
            current[""] = value
        else:
            setattr(target, field, value)
        return
    table = {} if current is None else ({"": current} if isinstance(current, float) else current)
    table[output] = value
    setattr(target, field, table)


def build_tolerance(atol: list[str] | None, rtol: list[str] | None, min_r: list[str] | None,
                    weights_atol: str | None) -> Tolerance:
    """Turn the CLI's override strings into a ``Tolerance``.

    Raises:
        UsageError: a malformed value (the message quotes it).
    """
    tol = Tolerance()
    for field, items, option in (("atol", atol, "--atol"), ("rtol", rtol, "--rtol")):
        for item in items or []:
            route, output, value = _split(item, option)
            target = tol if route is None else tol.routes.setdefault(route, Tolerance())
            _put(target, field, output, value)
    for item in min_r or []:
        route, output, value = _split(item, "--min-r")
        if output is not None:
            raise UsageError(f"--min-r {item!r}: R is per route, not per output")
        target = tol if route is None else tol.routes.setdefault(route, Tolerance())
        target.min_recoverability = value
    if weights_atol is not None:
        tol.weights_atol = None if weights_atol.lower() == "none" else _number(weights_atol, "--weights-atol")
    return tol


def write_reports(report: Report, json_path: Path | None, junit_path: Path | None,
                  markdown_path: Path | None, html_path: Path | None = None) -> list[str]:
    """Write the requested report files; returns what was written, for the log line."""
    from portability.reports.html_report import write_html
    from portability.reports.render import write_json, write_junit, write_markdown

    written = []
    for path, writer, kind in ((json_path, write_json, "JSON"), (junit_path, write_junit, "JUnit"),
                               (markdown_path, write_markdown, "Markdown"), (html_path, write_html, "HTML")):
        if path is not None:
            writer(report, path)
            written.append(f"{kind} {path}")
    return written


class LiveProgress:
    """A rich progress bar on stderr while routes run (only on a terminal, and not when ``quiet``)."""

    def __init__(self, quiet: bool) -> None:
        self.quiet = quiet
        self.progress = None
        self.task = None

    def __enter__(self) -> LiveProgress:
        from rich.console import Console

        console = Console(stderr=True)
        if not self.quiet and console.is_terminal:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            self.progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                     TimeElapsedColumn(), console=console, transient=True)
            self.progress.__enter__()
            self.task = self.progress.add_task("checking routes", total=None)
        return self

    def __call__(self, event: str, job, result) -> None:
        if self.progress is None:
            return
        if event == "start":
            self.progress.update(self.task, description=f"running {job.subject.label} {job.name}")
        else:
            done = self.progress.tasks[0].completed + 1
            self.progress.update(self.task, completed=done)

    def set_total(self, total: int) -> None:
        if self.progress is not None:
            self.progress.update(self.task, total=total)

    def __exit__(self, *exc) -> None:
        if self.progress is not None:
            self.progress.__exit__(*exc)


def print_report(report: Report, quiet: bool) -> None:
    """The route table on stdout (one summary line when ``quiet``)."""
    from rich.console import Console

    from portability.reports.render import rich_table

    console = Console(width=200) if not quiet else None
    if console is not None:
        console.print(rich_table(report))
    print(f"{'PASSED' if report else 'FAILED'}: {report.summary_line()}")
