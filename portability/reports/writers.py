"""What every report shares: atomic text files, the JSON float rule, JUnit and Markdown.

One rule for JSON numbers in every report: non-finite floats are written as the
strings ``"inf"``, ``"-inf"`` and ``"nan"`` (JSON has no such numbers), numpy
scalars as plain numbers, paths as strings.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path
from typing import Any


def json_safe(value: Any) -> Any:
    """``value`` with the report JSON rule applied, recursively."""
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):  # numpy scalar
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    if isinstance(value, Path):
        return str(value)
    return value


def json_text(data: Any, indent: int | None = 2) -> str:
    """Serialise a report dictionary under the JSON rule (refuses anything else non-JSON)."""
    return json.dumps(json_safe(data), indent=indent, allow_nan=False)


def write_text_atomic(path: str | Path, text: str) -> None:
    """Write ``text`` under a temporary sibling name, then rename: a reader never sees half a report."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@dataclass
class JunitCase:
    """One JUnit testcase: ``status`` is pass, fail, error or skipped."""

    classname: str
    name: str
    status: str
    message: str = ""
    text: str = ""
    time_s: float = 0.0


def junit_document(suite_name: str, cases: list[JunitCase], duration_s: float) -> str:
    """A JUnit XML document with one testsuite."""
    count = {s: sum(c.status == s for c in cases) for s in ("fail", "error", "skipped")}
    suite = ET.Element("testsuite", name=suite_name, tests=str(len(cases)), failures=str(count["fail"]),
                       errors=str(count["error"]), skipped=str(count["skipped"]), time=f"{duration_s:.3f}")
    for c in cases:
        case = ET.SubElement(suite, "testcase", classname=c.classname, name=c.name, time=f"{c.time_s:.3f}")
        if c.status == "fail":
            ET.SubElement(case, "failure", message=c.message).text = c.text
        elif c.status == "error":
            ET.SubElement(case, "error", message=c.message).text = c.text
        elif c.status == "skipped":
            ET.SubElement(case, "skipped", message=c.message)
        else:
            ET.SubElement(case, "system-out").text = c.text
    suites = ET.Element("testsuites")
    suites.append(suite)
    ET.indent(suites)
    return '<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(suites, encoding="unicode") + "\n"


def markdown_cell(text: str) -> str:
    """Text safe inside a Markdown table cell."""
    return text.replace("|", "\\|").replace("\n", " ")


def markdown_table(headers: list[str], rows: list[list[str]]) -> list[str]:
    """The lines of a Markdown table (cells escaped)."""
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(markdown_cell(c) for c in row) + " |" for row in rows]
    return lines
