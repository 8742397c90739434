"""Self-contained HTML reports: one file, inline CSS and SVG, no script, no network.

``check_html`` shows a check or compare ``Report``: R per route as a chart, the
route table (verdict, R, worst drift against its floor, first divergence,
weights), and per route the drift of each output against its float64 floor,
the per-layer drift chart and the notes. ``faults_html`` renders a faults
report's JSON generically: every list of rows becomes a table, every other
value a line, so sections added to that report show up without changes here.
A Content-Security-Policy forbids the page any request of its own.
"""

from __future__ import annotations

from html import escape
from pathlib import Path
from typing import Any

from portability.reports.check_report import Report, RouteResult
from portability.reports.render import cost_cell
from portability.reports.svg_chart import bar_chart, drift_chart
from portability.reports.writers import write_text_atomic

_CSS = """
body{font-family:system-ui,sans-serif;margin:1.5em;color:#222}
table{border-collapse:collapse;margin:.6em 0}th,td{border:1px solid #ccc;padding:3px 7px;text-align:left;
vertical-align:top;font-size:13px}th{background:#f3f3f3}.pass{color:#2e7d32}.fail,.error{color:#c62828}
.skipped{color:#a66b00}code{font-size:12px}section.route{border-top:2px solid #ddd;margin-top:1.2em}
.muted{color:#666;font-size:12px}
"""
_CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"


def _page(title: str, body: list[str]) -> str:
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<meta http-equiv=\"Content-Security-Policy\" content=\"{_CSP}\">"
            f"<title>{escape(title)}</title><style>{_CSS}</style></head><body>\n"
            + "\n".join(body) + "\n</body></html>\n")


def _fmt(value: Any, spec: str = ".3g") -> str:
    if value is None:
        return "-"
    try:
        return format(float(value), spec)
    except (TypeError, ValueError):
        return escape(str(value))


def _r(result: RouteResult) -> float | None:
    rec = result.recoverability
    return None if rec is None or rec.value is None else rec.value


def _weights(result: RouteResult) -> str:
    w = result.weights
    if w is None:
        return "-"
    text = f"{w.bitwise_equal}/{w.compared} bitwise"
    for label, items in (("missing", w.missing), ("unexpected", w.unexpected), ("renamed", w.renamed)):
        if items:
            text += f", {len(items)} {label}"
    return escape(text + f", max abs diff {w.max_abs_diff:.3g}")


def _worst(result: RouteResult) -> str:
    outs = [o for o in result.outputs]
    if not outs:
        return "-"
    o = max(outs, key=lambda x: (not x.passed, x.max_abs))
    if o.floor is not None:
        return f"{_fmt(o.error_vs_float64)} vs float64 (floor {_fmt(o.floor)})"
    return f"{_fmt(o.max_abs)} (atol {_fmt(o.atol, 'g')})"


def _divergence(result: RouteResult) -> str:
    d = result.first_divergence
    if not d:
        return "-"
    return (f"<code>{escape(str(d['at']))}</code> ({escape(str(d['op']))}): {_fmt(d['max_abs'])} "
            f"&gt; floor {_fmt(d['floor'])}")


def _route_table(report: Report) -> list[str]:
    rows = ['<table id="routes"><thead><tr><th>subject</th><th>route</th><th>env</th><th>verdict</th><th>R</th>'
            '<th>worst output drift</th><th>first divergence</th><th>weights</th><th>time vs source, size</th>'
            '<th>reason</th></tr></thead><tbody>']
    for i, res in enumerate(report.routes):
        rec = res.recoverability
        r_cell = "-" if rec is None else f"{_fmt(rec.value, '.4f')} <span class=\"muted\">{escape(rec.metric)}</span>"
        rows.append(f'<tr class="route-row" data-route="{escape(res.name)}" data-status="{res.status}">'
                    f"<td>{escape(res.subject)}</td><td><a href=\"#route-{i}\"><code>{escape(res.name)}</code></a></td>"
                    f"<td>{escape(res.env or 'main')}</td>"
                    f'<td class="{res.status}">{res.status}</td><td>{r_cell}</td><td>{_worst(res)}</td>'
                    f"<td>{_divergence(res)}</td><td>{_weights(res)}</td><td>{escape(cost_cell(res))}</td>"
                    f"<td>{escape(res.reason)}</td></tr>")
    rows.append("</tbody></table>")
    return rows


def _outputs_table(result: RouteResult) -> list[str]:
    if not result.outputs:
        return ['<p class="muted">outputs not compared</p>']
    rows = ['<table class="outputs"><thead><tr><th>output</th><th>shape</th><th>max abs vs reference</th>'
            "<th>error vs float64</th><th>source's own error</th><th>floor</th><th>cosine</th><th>top-1</th>"
            "<th>verdict</th></tr></thead><tbody>"]
    for o in result.outputs:
        floor = _fmt(o.floor) if o.floor is not None else f"atol {_fmt(o.atol, 'g')}"
        verdict = "pass" if o.passed else "fail"
        where = "" if o.inputs is None else f' <span class="muted">on {escape(o.inputs)}</span>'
        rows.append(f"<tr><td><code>{escape(o.name)}</code>{where}</td><td>{o.shape}</td><td>{_fmt(o.max_abs)}</td>"
                    f"<td>{_fmt(o.error_vs_float64)}</td><td>{_fmt(o.source_error)}</td><td>{floor}</td>"
                    f"<td>{_fmt(o.cosine, '.6f')}</td><td>{_fmt(o.top1_agreement, '.3f')}</td>"
                    f'<td class="{verdict}">{verdict}</td></tr>')
    rows.append("</tbody></table>")
    return rows


def _route_section(i: int, res: RouteResult) -> list[str]:
    env = f" in env {escape(res.env)}" if res.env else ""
    out = [f'<section class="route" id="route-{i}"><h2><code>{escape(res.name)}</code>{env} '
           f'<span class="{res.status}">{res.status}</span></h2>',
           f"<p>{escape(res.subject)}</p>"]
    if res.reason:
        out.append(f"<p>{escape(res.reason)}</p>")
    rec = res.recoverability
    if rec is not None:
        out.append(f"<p>R = {_fmt(rec.value, '.4f')} ({escape(rec.metric)}: {_fmt(rec.converted, '.4g')} vs "
                   f"reference {_fmt(rec.reference, '.4g')}; minimum {rec.minimum:g})</p>")
    out.append(f"<p>weights: {_weights(res)}</p>")
    out += _outputs_table(res)
    if res.first_divergence:
        out.append(f"<p>first divergence: {_divergence(res)}</p>")
    if res.layer_drift:
        out.append(drift_chart(res.layer_drift, f"drift per layer of {res.name}"))
    if res.notes:
        out.append("<ul class=\"notes\">" + "".join(f"<li>{escape(n)}</li>" for n in res.notes) + "</ul>")
    out.append("</section>")
    return out


def check_html(report: Report) -> str:
    """The HTML page of a check or compare report."""
    verdict = "passed" if report else "FAILED"
    body = [f"<h1>portability check: {verdict}</h1>",
            f"<p>{escape(report.summary_line())} in {report.duration_s:.1f} s</p>"]
    with_r = [(f"{r.subject} {r.name}" if len({x.subject for x in report.routes}) > 1 else r.name, _r(r))
              for r in report.routes if r.recoverability is not None]
    if with_r:
        minimum = min(r.recoverability.minimum for r in report.routes if r.recoverability is not None)
        body += ["<h2>Recoverability R per route</h2>", bar_chart(with_r, minimum, "R per route")]
    body += ["<h2>Routes</h2>", *_route_table(report)]
    for i, res in enumerate(report.routes):
        body += _route_section(i, res)
    env = ", ".join(f"{k} {v}" for k, v in report.environment.items())
    body.append(f'<p class="muted">{escape(env)}</p>')
    return _page(f"portability check: {verdict}", body)


def write_html(report: Report, path: str | Path) -> None:
    """Write ``check_html`` to a file (atomically)."""
    write_text_atomic(path, check_html(report))


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return _fmt(value, ".4g")
    if isinstance(value, (list, tuple)):
        return escape("->".join(map(str, value)) if all(isinstance(v, str) for v in value) else str(value))
    if isinstance(value, dict):
        return escape(", ".join(f"{k}: {v}" for k, v in value.items()))
    return escape("-" if value is None else str(value))


def _rows_table(name: str, rows: list[dict[str, Any]]) -> list[str]:
    columns = list(dict.fromkeys(k for row in rows for k in row))
    out = [f'<table class="section" id="section-{escape(name)}"><thead><tr>'
           + "".join(f"<th>{escape(c)}</th>" for c in columns) + "</tr></thead><tbody>"]
    for row in rows:
        status = str(row.get("status", ""))
        out.append(f'<tr data-status="{escape(status)}">' + "".join(
            f'<td class="{escape(status) if c == "status" else ""}">{_cell(row.get(c))}</td>' for c in columns)
            + "</tr>")
    out.append("</tbody></table>")
    return out


def faults_html(data: dict[str, Any]) -> str:
    """The HTML page of a faults report's JSON: a table per list of rows, a line per other value."""
    verdict = "passed" if data.get("passed") else "FAILED"
    body = [f"<h1>portability faults: {verdict}</h1>"]
    scalars = [(k, v) for k, v in data.items() if not isinstance(v, (list, dict)) and k != "passed"]
    body.append("<p>" + ", ".join(f"{escape(k)}: {_cell(v)}" for k, v in scalars) + "</p>")
    for key, value in data.items():
        if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
            body += [f"<h2>{escape(key)}</h2>", *_rows_table(key, value)]
        elif isinstance(value, list):
            body.append(f"<h2>{escape(key)}</h2><p>{_cell(value) if value else 'none'}</p>")
        elif isinstance(value, dict) and key != "environment":
            body += [f"<h2>{escape(key)}</h2>", *_rows_table(key, [value])]
    env = data.get("environment") or {}
    body.append(f'<p class="muted">{escape(", ".join(f"{k} {v}" for k, v in env.items()))}</p>')
    return _page(f"portability faults: {verdict}", body)


def write_faults_html(data: dict[str, Any], path: str | Path) -> None:
    """Write ``faults_html`` of a faults report's ``to_dict()`` to a file (atomically)."""
    write_text_atomic(path, faults_html(data))
