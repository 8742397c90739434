"""Render a ``Report``: terminal table (rich), JUnit XML, Markdown, drift text.

Every writer goes through ``atomic_output``-style temporary files, so a
report file is either complete or absent.
"""

from __future__ import annotations

from pathlib import Path

from portability.reports.check_report import Report, RouteResult
from portability.reports.writers import JunitCase, junit_document, markdown_cell, write_text_atomic

_STYLE = {"pass": "green", "fail": "red", "skipped": "yellow", "error": "magenta"}


def _fmt(value: float | None, spec: str = ".2e") -> str:
    return "-" if value is None else format(value, spec)


def worst_output(result: RouteResult):
    """The output with the largest max abs diff, or None."""
    return max(result.outputs, key=lambda o: (not o.passed, o.max_abs), default=None)


def format_bytes(size: int | None) -> str:
    """``37.1 MB`` (decimal units), ``-`` for None."""
    if size is None:
        return "-"
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if size >= scale:
            return f"{size / scale:.1f} {unit}"
    return f"{size} B"


def cost_cell(result: RouteResult) -> str:
    """``1.21x, 37.1 MB``: inference time against the source's, and the artifact's size."""
    speed = "-" if result.speed_vs_source is None else f"{result.speed_vs_source:.2f}x"
    if result.speed_vs_source is None and result.bytes is None:
        return "-"
    return f"{speed}, {format_bytes(result.bytes)}"


def summary_cells(result: RouteResult) -> dict[str, str]:
    """One row of figures for a route: weights, worst drift, min atol, cosine, top-1, R,
    and what the artifact costs (time against the source's, size)."""
    w, o, r = result.weights, worst_output(result), result.recoverability
    weights = "-" if w is None else f"{w.bitwise_equal}/{w.compared} bitwise" + (
        f", {len(w.missing)} missing" if w.missing else "")
    return {
        "cost": cost_cell(result),
        "weights": weights,
        "max_abs": "-" if o is None else _fmt(o.max_abs),
        "min_atol": "-" if o is None else _fmt(o.min_atol),
        "cosine": "-" if o is None or o.cosine is None else f"{o.cosine:.6f}",
        "top1": "-" if o is None or o.top1_agreement is None else f"{o.top1_agreement:.3f}",
        "R": "-" if r is None or r.value is None else f"{r.value:.4f}",
    }


def rich_table(report: Report):
    """A ``rich.table.Table`` with one row per route."""
    from rich.table import Table

    table = Table(title=f"portability check: {_headline(report)}", show_lines=False)
    for col in ("subject", "route", "env", "status", "weights", "max abs", "min atol", "cosine", "top-1", "R",
                "time, size", "reason"):
        table.add_column(col, overflow="fold")
    for res in report.routes:
        c = summary_cells(res)
        status = f"[{_STYLE[res.status]}]{res.status}[/]"
        table.add_row(res.subject, res.name, env_label(res), status, c["weights"], c["max_abs"], c["min_atol"],
                      c["cosine"], c["top1"], c["R"], c["cost"], res.reason or _pass_remark(res))
    return table


def env_label(result: RouteResult) -> str:
    """The environment column: ``main`` for the one the check ran in, else the ``--env`` name."""
    return result.env or "main"


def _pass_remark(result: RouteResult) -> str:
    """What a passing route was not judged on, for the table's reason column."""
    if result.weights_only:
        return "weights only: outputs not compared"
    if result.fallbacks:
        return f"fell back: {'; '.join(result.fallbacks)}"
    if any(note.startswith("weights not judged") for note in result.notes):
        return "weights not judged (folded by tf2onnx); outputs judged"
    return ""


def _headline(report: Report) -> str:
    parts = [part for part in report.summary_line().split(", ") if not part.startswith("0 ")]
    return ", ".join(parts) + f" in {report.duration_s:.1f} s"


def drift_text(result: RouteResult) -> str:
    """Plain-text drift table of one route (for JUnit failures and pytest)."""
    lines = [f"{result.id}: {result.status}" + (f" - {result.reason}" if result.reason else "")]
    if result.weights is not None:
        w = result.weights
        lines.append(f"  weights: {w.compared} compared, {w.bitwise_equal} bitwise equal, "
                     f"{len(w.missing)} missing, {len(w.unexpected)} unexpected, {len(w.renamed)} renamed, "
                     f"max abs diff {w.max_abs_diff:.3g}")
    if result.outputs:
        lines.append(f"  {'output':<16} {'max abs':>10} {'max rel':>10} {'mean abs':>10} {'min atol':>10} "
                     f"{'min rtol':>10} {'cosine':>10} {'top-1':>7} {'padded':>10}  verdict")
    for o in result.outputs:
        name = o.name if o.inputs is None else f"{o.name} [{o.inputs}]"
        cos = "-" if o.cosine is None else f"{o.cosine:.6f}"
        top1 = "-" if o.top1_agreement is None else f"{o.top1_agreement:.3f}"
        pad = "-" if o.padded_max_abs is None else f"{o.padded_max_abs:.2e}"
        bound = f"atol {o.atol:g}" if o.floor is None else \
            f"vs float64 {o.error_vs_float64:.2e}, floor {o.floor:.2e}, source's own {o.source_error:.2e}"
        lines.append(f"  {name:<16} {o.max_abs:>10.2e} {o.max_rel:>10.2e} {o.mean_abs:>10.2e} "
                     f"{o.min_atol:>10.2e} {o.min_rtol:>10.2e} {cos:>10} {top1:>7} {pad:>10}  "
                     f"{'pass' if o.passed else 'FAIL'} ({bound}, rtol {o.rtol:g})")
    r = result.recoverability
    if r is not None:
        value = "undefined" if r.value is None else f"{r.value:.4f}"
        lines.append(f"  recoverability: R = {value} ({r.metric}: {r.converted:.4g} vs reference "
                     f"{r.reference:.4g}; minimum {r.minimum})")
    if result.speed_vs_source is not None or result.bytes is not None:
        speed = "-" if result.speed_vs_source is None else f"{result.speed_vs_source:.2f}x the source's"
        lines.append(f"  cost: inference time {speed}, {format_bytes(result.bytes)} on disk")
    d = result.first_divergence
    if d:
        lines.append(f"  first divergence: {d['at']} ({d['op']}): max abs {float(d['max_abs']):.3g} > floor "
                     f"{float(d['floor']):.3g}")
    lines.extend(f"  note: {n}" for n in result.notes)
    return "\n".join(lines)


def write_json(report: Report, path: str | Path) -> None:
    """Write the report's JSON (schema ``report.schema.json``)."""
    write_text_atomic(path, report.to_json() + "\n")


def junit_xml(report: Report) -> str:
    """JUnit XML: one testsuite, one testcase per route and environment; drift in failure messages."""
    cases = [JunitCase(res.subject, res.name + (f" [env {res.env}]" if res.env else ""), res.status, res.reason,
                       drift_text(res), res.timings.get("total", 0.0)) for res in report.routes]
    return junit_document("portability", cases, report.duration_s)


def write_junit(report: Report, path: str | Path) -> None:
    """Write ``junit_xml`` to a file."""
    write_text_atomic(path, junit_xml(report))


def markdown(report: Report) -> str:
    """A Markdown summary (for a CI job summary): a table and the failures' drift."""
    icon = {"pass": "✅", "fail": "❌", "skipped": "⏭️", "error": "💥"}
    lines = [f"## portability check: {'passed' if report else 'FAILED'}", "",
             _headline(report), "",
             "| subject | route | env | status | weights | max abs | min atol | cosine | top-1 | R | time, size "
             "| reason |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for res in report.routes:
        c = summary_cells(res)
        lines.append(f"| {markdown_cell(res.subject)} | `{res.name}` | {env_label(res)} | "
                     f"{icon[res.status]} {res.status} | "
                     f"{c['weights']} | "
                     f"{c['max_abs']} | {c['min_atol']} | {c['cosine']} | {c['top1']} | {c['R']} | "
                     f"{c['cost']} | {markdown_cell(res.reason)} |")
    failures = report.failures()
    if failures:
        lines += ["", "### Failures", ""]
        for res in failures:
            lines += ["```", drift_text(res), "```", ""]
    return "\n".join(lines).rstrip() + "\n"


def write_markdown(report: Report, path: str | Path) -> None:
    """Write ``markdown`` to a file."""
    write_text_atomic(path, markdown(report))
