"""Report objects, their JSON (validated against the shipped schema), JUnit XML and Markdown."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET

import numpy as np
import pytest

from portability.core.checkpoint import Checkpoint
from portability.harness.drift import Tolerance, compare_outputs
from portability.harness.recoverability import judge_recoverability
from portability.harness.weights import compare_weights
from portability.reports.check_report import SCHEMA_VERSION, Report, RouteResult
from portability.reports.render import drift_text, junit_xml, markdown, write_json, write_junit, write_markdown
from portability.reports.schema import load_schema, validate


def _report() -> Report:
    ref = {"logits": np.array([[0.0, 1.0], [2.0, 0.5]], np.float32)}
    good = compare_outputs(ref, {"logits": ref["logits"].copy()})
    bad = compare_outputs(ref, {"logits": ref["logits"] + np.array([[0, 0.3], [0, np.nan]], np.float32)})
    w = Checkpoint(tensors={"w": np.eye(3, dtype=np.float32)})
    routes = [
        RouteResult("fixture:mlp", ["torch", "safetensors"], "pass", weights=compare_weights(w, w), outputs=good,
                    recoverability=judge_recoverability("accuracy", True, 0.9, 0.9, 0.99),
                    timings={"convert": 0.1, "total": 0.5}),
        RouteResult("fixture:mlp", ["torch", "onnx", "torch"], "fail", reason=bad[0].reason, outputs=bad,
                    recoverability=judge_recoverability("perplexity", False, 10.0, float("inf"), 0.99)),
        RouteResult("fixture:mlp", ["torch", "tf-savedmodel"], "skipped",
                    reason="format 'tf-savedmodel' not available: tensorflow is not installed"),
        RouteResult("model.pt", ["torch", "onnx"], "error", reason="worker crashed: killed by SIGSEGV"),
    ]
    tol = Tolerance(atol={"": 1e-5, "logits": 1e-4}, routes={"torch->onnx": Tolerance(rtol=1e-3)})
    return Report(routes, tol, duration_s=1.5, environment={"python": "3.11"})


def test_report_is_truthy_only_when_nothing_failed_and_something_passed():
    rep = _report()
    assert not rep and rep.exit_code() == 1
    assert rep.counts() == {"pass": 1, "fail": 1, "skipped": 1, "error": 1}
    assert [r.name for r in rep.failures()] == ["torch->onnx->torch", "torch->onnx"]
    assert Report(rep.routes[:1]) and Report(rep.routes[:1]).exit_code() == 0
    assert Report(rep.routes[:1] + rep.routes[2:3])  # a skipped route does not fail a report
    assert not Report(rep.routes[2:3])  # ...but nothing checked is not a pass
    assert rep.routes[0] and not rep.routes[1]


def test_json_round_trips_and_validates_against_the_schema(tmp_path):
    rep = _report()
    path = tmp_path / "report.json"
    write_json(rep, path)
    data = json.loads(path.read_text())
    assert data["schema_version"] == SCHEMA_VERSION
    assert validate(data) == []
    assert data["routes"][1]["route"] == ["torch", "onnx", "torch"]
    assert data["routes"][1]["outputs"][0]["max_abs"] == "inf"  # NaN drift is infinite, spelled for JSON
    assert data["routes"][1]["recoverability"]["converted"] == "inf"
    again = Report.from_json(path.read_text())
    assert again.to_dict() == rep.to_dict()
    assert [r.status for r in again.routes] == ["pass", "fail", "skipped", "error"]


def test_schema_validator_reports_each_violation():
    data = json.loads(_report().to_json())
    data["routes"][0]["status"] = "passed"
    del data["routes"][1]["reason"]
    data["routes"][2]["route"] = ["torch"]
    data["surprise"] = 1
    errors = validate(data)
    assert "$.routes[0].status: 'passed' is not one of ['pass', 'fail', 'skipped', 'error']" in errors
    assert "$.routes[1]: required property 'reason' is missing" in errors
    assert "$.routes[2].route: has 1 items, fewer than 2" in errors
    assert "$: unexpected property 'surprise'" in errors
    assert load_schema()["properties"]["schema_version"]["enum"] == [SCHEMA_VERSION]


def test_a_newer_major_schema_version_is_refused():
    data = json.loads(_report().to_json())
    data["schema_version"] = "2.0"
    with pytest.raises(ValueError, match="schema_version '2.0'"):
        Report.from_dict(data)


def test_junit_has_one_testcase_per_route_with_drift_in_failures(tmp_path):
    rep = _report()
    path = tmp_path / "junit.xml"
    write_junit(rep, path)
    suite = ET.parse(path).getroot().find("testsuite")
    assert suite.get("tests") == "4" and suite.get("failures") == "1" and suite.get("errors") == "1"
    assert suite.get("skipped") == "1"
    cases = suite.findall("testcase")
    assert [c.get("name") for c in cases] == ["torch->safetensors", "torch->onnx->torch", "torch->tf-savedmodel",
                                              "torch->onnx"]
    failure = cases[1].find("failure")
    assert failure.get("message").startswith("output 'logits': 2 of 4 elements outside")
    assert "max abs" in failure.text and "recoverability: R = 0.0000" in failure.text
    assert cases[2].find("skipped").get("message").startswith("format 'tf-savedmodel' not available")
    assert cases[3].find("error").get("message") == "worker crashed: killed by SIGSEGV"
    assert junit_xml(rep) == path.read_text()


def test_markdown_summary_has_a_row_per_route_and_the_failures_drift(tmp_path):
    rep = _report()
    path = tmp_path / "summary.md"
    write_markdown(rep, path)
    text = path.read_text()
    assert text == markdown(rep)
    assert text.startswith("## portability check: FAILED")
    assert "| fixture:mlp | `torch->onnx->torch` | main | ❌ fail |" in text
    assert "| model.pt | `torch->onnx` | main | 💥 error |" in text
    assert "### Failures" in text and drift_text(rep.routes[1]) in text


def test_drift_text_lists_weights_outputs_and_r():
    text = drift_text(_report().routes[0])
    assert text.splitlines()[0] == "fixture:mlp torch->safetensors: pass"
    assert "weights: 1 compared, 1 bitwise equal, 0 missing" in text
    assert "logits" in text and "recoverability: R = 1.0000 (accuracy: 0.9 vs reference 0.9" in text


def test_env_rows_round_trip_and_name_their_environment():
    from portability.reports.render import junit_xml

    rows = [RouteResult("model.pt", ["torch", "onnx"], "pass"),
            RouteResult("model.pt", ["torch", "onnx"], "fail", reason="onnx artifact cannot run: in env 'ort116': ...",
                        env="ort116")]
    rep = Report(rows, Tolerance(), duration_s=1.0)
    data = json.loads(rep.to_json())
    assert validate(data) == [] and [r["env"] for r in data["routes"]] == [None, "ort116"]
    assert [r.env for r in Report.from_json(rep.to_json()).routes] == [None, "ort116"]
    assert [r.id for r in rows] == ["model.pt torch->onnx", "model.pt torch->onnx [env ort116]"]
    names = [case.get("name") for case in ET.fromstring(junit_xml(rep)).iter("testcase")]
    assert names == ["torch->onnx", "torch->onnx [env ort116]"]
    assert "| model.pt | `torch->onnx` | ort116 | ❌ fail |" in markdown(rep)
    from portability.reports.html_report import check_html

    page = check_html(rep)
    assert "<th>route</th><th>env</th>" in page and "<td>ort116</td>" in page and "<td>main</td>" in page
    assert "<code>torch-&gt;onnx</code> in env ort116 " in page
