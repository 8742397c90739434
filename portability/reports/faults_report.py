"""The recoverability report: fault campaign, resume parity, TF continuation and the worth
of each piece of training state, per task.

One row per fault kind and one per resume route. JSON carries a ``faults``
list (kind, detected, recovered, recovered_from_step, steps_lost,
recoverability, time_to_recover_s...), a ``resume`` list (route, bitwise,
max_loss_deviation, max_rel_deviation), where each route is a list of format
names like the check's (the dtype of a cast variant is its own field) and the
TF continuation (``["torch", "tf-savedmodel"]``) also carries the one-step
optimizer comparison, and a ``state_components`` list (component, applicable,
bitwise, loss_deviation, R) that informs without failing the report. The JSON
is versioned (``SCHEMA_VERSION``) and described by ``schemas/faults.schema.json``;
files are written with the shared writers (``portability.reports.writers``),
under the same JSON float rule as the check.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from portability.reports.writers import JunitCase, json_text, junit_document, markdown_table, write_text_atomic

SCHEMA_VERSION = "2.1"  # 2.1 added state_components
SCHEMA_PATH = Path(__file__).parent / "schemas" / "faults.schema.json"
TF_ROUTE = ["torch", "tf-savedmodel"]
TF_ROUTE_NAME = "torch->tf-savedmodel"
# Routes that must resume bit for bit; the others only measure the deviation.
EXACT_ROUTES = ("torch", "torch->safetensors->torch", "safetensors")
# Tasks whose torch training forward equals the exported (eval-mode) graph once dropout is off.
TF_SUPPORTED = ("mlp", "toy-mlp", "toy-sgd", "bert-tiny", "gpt2-tiny")
TF_UNSUPPORTED_WHY = {
    "cnn": "BatchNorm trains on batch statistics, the exported graph uses running ones",
    "keras-cnn": "trains natively in TensorFlow: a torch->tf continuation does not apply",
}


@dataclass
class Row:
    """One line of the report: a fault kind or a resume route of one fixture."""

    fixture: str
    section: str  # "fault", "resume" or "tf-resume"
    name: str
    status: str  # "pass", "fail", "skipped"
    figures: dict[str, Any] = field(default_factory=dict)
    reason: str = ""


@dataclass
class FaultsReport:
    """Everything ``portability faults`` measured; truthy iff every row passed or was skipped."""

    rows: list[Row] = field(default_factory=list)
    duration_s: float = 0.0
    environment: dict[str, str] = field(default_factory=dict)
    components: list[dict[str, Any]] = field(default_factory=list)  # informative: never fails the report

    def __bool__(self) -> bool:
        return any(r.status == "pass" for r in self.rows) and not any(r.status == "fail" for r in self.rows)

    def exit_code(self) -> int:
        """0 when the report passed, 1 otherwise."""
        return 0 if self else 1

    def section(self, name: str) -> list[dict[str, Any]]:
        """The rows of one section as JSON entries."""
        return [{"fixture": r.fixture, "status": r.status, "reason": r.reason, **r.figures}
                for r in self.rows if r.section == name and r.status != "skipped"]

    def to_dict(self) -> dict[str, Any]:
        return {"schema_version": SCHEMA_VERSION, "passed": bool(self), "duration_s": self.duration_s,
                "environment": self.environment, "faults": self.section("fault"),
                "resume": self.section("resume") + self.section("tf-resume"),
                "state_components": self.components,
                "skipped": [{"fixture": r.fixture, "section": r.section, "name": r.name, "reason": r.reason}
                            for r in self.rows if r.status == "skipped"]}


def run_faults(fixtures: list[str], kinds: tuple[str, ...] | None = None, steps: int | None = None,
               every: int | None = None, resume: bool = True, tf: bool = True,
               skipped: dict[str, str] | None = None, components: bool = True) -> FaultsReport:
    """Run the fault campaign, the resume routes, the state components and the TF continuation
    for each task.

    Args:
        fixtures: task names or recipe references (``portability.training.tasks.get_task``).
        kinds: fault kinds (default: all).
        steps / every: run length and checkpoint interval K (default: the task's).
        resume / tf: also measure resume parity / the TF continuation.
        skipped: tasks not run, with the reason, reported as skipped rows.
        components: also measure what each piece of state is worth (recipes only).

    Raises:
        UsageError: an unknown task or fault kind, or a recipe that breaks the contract.
    """
    from portability.faults.campaign import KINDS, run_campaign
    from portability.reports.check_report import environment
    from portability.training.tasks import get_task

    start = time.perf_counter()
    report = FaultsReport(environment=environment())
    for name, why in (skipped or {}).items():
        report.rows.append(Row(name, "fault", "all", "skipped", reason=why))
    for ref in fixtures:
        task = get_task(ref)
        name, n, k = task.name, steps or task.steps, every or task.every
        campaign = run_campaign(task, kinds or KINDS, n, k)
        for f in campaign.faults:
            report.rows.append(Row(name, "fault", f.kind, "pass" if f else "fail", f.to_dict(),
                                   "" if f else _fault_reason(f)))
        if resume:
            from portability.faults.resume_parity import resume_parity

            for r in resume_parity(task.make, n, 2 * k, reference=campaign.reference_run):
                ok = r.bitwise or r.route not in EXACT_ROUTES
                report.rows.append(Row(name, "resume", r.route, "pass" if ok else "fail", r.to_dict(),
                                       "" if ok else "resumed losses differ from the uninterrupted run"))
        if components:
            from portability.faults.state_components import state_components

            for c in state_components(task, n, 2 * k, campaign.reference_run, campaign.reference_state):
                report.components.append({"fixture": name, **c.to_dict()})
        if tf:
            report.rows.append(_tf_row(name, 2 * k, n - 2 * k))
    report.duration_s = round(time.perf_counter() - start, 2)
    return report


def _fault_reason(f) -> str:
    if not f.detected:
        return "damage not detected"
    if not f.recovered:
        return "did not recover"
    return f"R {f.recoverability} below the minimum"


def _tf_row(name: str, resume_at: int, steps: int) -> Row:
    if name not in TF_SUPPORTED:
        why = TF_UNSUPPORTED_WHY.get(name, f"TF continuation covers {', '.join(TF_SUPPORTED)} "
                                     "(a recipe's loss is torch code)")
        return Row(name, "tf-resume", TF_ROUTE_NAME, "skipped", reason=why)
    try:
        from portability.training.tf_resume import tf_resume
    except ImportError as exc:
        return Row(name, "tf-resume", TF_ROUTE_NAME, "skipped", reason=f"TensorFlow unavailable ({exc})")
    result = tf_resume(name, resume_at, steps)
    ok = result.one_step.moments_bitwise and result.one_step.bitwise_with_torch_sqrt
    figures = result.to_dict()
    figures.update(name=TF_ROUTE_NAME, route=TF_ROUTE, dtype=None)
    figures["bitwise"] = result.torch_losses == result.tf_losses
    return Row(name, "tf-resume", TF_ROUTE_NAME, "pass" if ok else "fail", figures,
               result.fallback if ok
               else f"TF {result.one_step.optimizer} step differs from torch's beyond the sqrt rounding")


def _cells(r: Row) -> list[str]:
    f = r.figures
    if r.status == "skipped":
        return ["", "", "", "", ""]
    if r.section == "fault":
        return [_num(f.get("recoverability"), ".4f"), "yes" if f.get("detected") else "NO",
                str(f.get("recovered_from_step")), str(f.get("steps_lost")), _num(f.get("time_to_recover_s"), ".3f")]
    if r.section == "resume":
        return ["bitwise" if f.get("bitwise") else f"max {_num(f.get('max_loss_deviation'))}",
                "", str(f.get("resumed_from_step")), "", ""]
    one = f["one_step"]
    return [f"max {_num(f['max_loss_deviation'])}",
            f"1-step {one['params_bitwise_fraction']:.4f} bitwise", str(f["resumed_from_step"]), "", ""]


HEADERS = ["fixture", "kind / route", "status", "R / parity", "detected", "from step", "steps lost",
           "recover s", "reason"]


def _num(value: Any, spec: str = ".2e") -> str:
    return "-" if value is None else format(value, spec)


def table_rows(report: FaultsReport) -> list[list[str]]:
    """The report as rows of text cells, in ``HEADERS`` order."""
    return [[r.fixture, f"{r.section}:{r.name}", r.status, *_cells(r), r.reason] for r in report.rows]


COMPONENT_HEADERS = ["fixture", "state dropped", "resume", "loss deviation", "R", "from step", "note"]


def component_rows(report: FaultsReport) -> list[list[str]]:
    """The state components as rows of text cells, in ``COMPONENT_HEADERS`` order."""
    rows = []
    for c in report.components:
        if not c["applicable"]:
            rows.append([c["fixture"], c["component"], "not applicable", "-", "-", "-", c["reason"]])
            continue
        resume = "bitwise" if c["bitwise"] else "DIVERGES"
        note = "losing it did not change this run" if c["bitwise"] else "keep it in every checkpoint"
        rows.append([c["fixture"], c["component"], resume, _num(c["loss_deviation"]), _num(c["R"], ".4f"),
                     str(c["resumed_from_step"]), note])
    return rows


def print_table(report: FaultsReport) -> None:
    """The rows as a rich table on stdout, then what each piece of state is worth."""
    from rich.console import Console
    from rich.table import Table

    console = Console(width=200)
    for title, headers, rows in (("portability faults", HEADERS, table_rows(report)),
                                 ("what each piece of training state is worth (resumed without it)",
                                  COMPONENT_HEADERS, component_rows(report))):
        if not rows:
            continue
        table = Table(title=title)
        for h in headers:
            table.add_column(h, overflow="fold")
        for cells in rows:
            table.add_row(*cells)
        console.print(table)


def junit_xml(report: FaultsReport) -> str:
    """JUnit XML: one testcase per row."""
    cases = [JunitCase(f"fixture:{r.fixture}", f"{r.section}:{r.name}", r.status, r.reason,
                       json_text(r.figures, indent=None)) for r in report.rows]
    return junit_document("portability-faults", cases, report.duration_s)


def markdown(report: FaultsReport) -> str:
    """A Markdown table of every row."""
    lines = [f"## portability faults: {'passed' if report else 'FAILED'}", "",
             *markdown_table(HEADERS, table_rows(report))]
    if report.components:
        lines += ["", "### What each piece of training state is worth", "",
                  *markdown_table(COMPONENT_HEADERS, component_rows(report))]
    return "\n".join(lines) + "\n"


def write_reports(report: FaultsReport, json_path: Path | None = None, junit_path: Path | None = None,
                  markdown_path: Path | None = None) -> list[str]:
    """Write the requested files atomically; returns what was written."""
    written = []
    for path, text, kind in ((json_path, lambda: json_text(report.to_dict()) + "\n", "JSON"),
                             (junit_path, lambda: junit_xml(report), "JUnit"),
                             (markdown_path, lambda: markdown(report), "Markdown")):
        if path is not None:
            write_text_atomic(path, text())
            written.append(f"{kind} {path}")
    return written
