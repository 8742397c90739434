"""The faults report: verdict, JSON sections, JUnit and Markdown, from hand-made rows."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET

import pytest

from portability.reports.faults_report import FaultsReport, Row, junit_xml, markdown, write_reports

FAULT = {"kind": "truncated-file", "detected": True, "recovered": True, "recovered_from_step": 10,
         "steps_lost": 7, "recoverability": 1.0, "time_to_recover_s": 0.05}


COMPONENTS = [
    {"fixture": "mypkg.train:recipe", "component": "rng", "applicable": True, "bitwise": False,
     "loss_deviation": 0.125, "R": 0.9875, "resumed_from_step": 20, "final_metric": 0.79,
     "reference_metric": 0.8, "reason": ""},
    {"fixture": "mypkg.train:recipe", "component": "scaler", "applicable": False, "bitwise": None,
     "loss_deviation": None, "R": None, "resumed_from_step": None, "final_metric": None,
     "reference_metric": None, "reason": "the recipe has no scaler"},
]


def _report(*extra: Row) -> FaultsReport:
    rows = [Row("mlp", "fault", "truncated-file", "pass", dict(FAULT)),
            Row("mlp", "resume", "torch", "pass", {"name": "torch", "route": ["torch"], "dtype": None,
                                                   "bitwise": True, "max_loss_deviation": 0.0,
                                                   "max_rel_deviation": 0.0, "resumed_from_step": 10}),
            Row("keras-cnn", "fault", "all", "skipped", reason="no training recipe for a tensorflow fixture")]
    return FaultsReport(rows + list(extra), duration_s=1.5)


def test_skipped_rows_neither_pass_nor_fail():
    report = _report()
    assert report and report.exit_code() == 0
    doc = report.to_dict()
    assert [f["kind"] for f in doc["faults"]] == ["truncated-file"]
    assert doc["skipped"] == [{"fixture": "keras-cnn", "section": "fault", "name": "all",
                               "reason": "no training recipe for a tensorflow fixture"}]


def test_one_failed_row_fails_the_report():
    bad = Row("mlp", "fault", "bitflip-header", "fail", {**FAULT, "detected": False}, "damage not detected")
    report = _report(bad)
    assert not report and report.exit_code() == 1
    suite = ET.fromstring(junit_xml(report)).find("testsuite")
    assert suite.get("failures") == "1" and suite.get("skipped") == "1" and suite.get("tests") == "4"
    assert "| mlp | fault:bitflip-header | fail | 1.0000 | NO | 10 | 7 |" in markdown(report)


def test_report_of_only_skipped_rows_does_not_pass():
    assert not FaultsReport([Row("keras-cnn", "fault", "all", "skipped")])


def test_write_reports_writes_every_file_atomically(tmp_path):
    paths = [tmp_path / "r.json", tmp_path / "r.xml", tmp_path / "r.md"]
    written = write_reports(_report(), *paths)
    assert written == [f"JSON {paths[0]}", f"JUnit {paths[1]}", f"Markdown {paths[2]}"]
    assert json.loads(paths[0].read_text())["resume"][0]["bitwise"] is True
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.json", "r.md", "r.xml"]


@pytest.mark.slow
def test_tf_continuation_is_a_resume_route_with_its_one_step_proof():
    pytest.importorskip("torch")
    pytest.importorskip("tensorflow")
    from portability.reports.faults_report import _tf_row

    entry = FaultsReport([_tf_row("toy-mlp", 4, 3)]).to_dict()["resume"][0]
    assert entry["route"] == ["torch", "tf-savedmodel"] and entry["dtype"] is None and entry["status"] == "pass"
    assert isinstance(entry["bitwise"], bool) and entry["max_loss_deviation"] < 1e-5
    assert entry["one_step"]["moments_bitwise"] and entry["one_step"]["bitwise_with_torch_sqrt"]
    skipped = _tf_row("cnn", 4, 3)
    assert skipped.status == "skipped" and "BatchNorm" in skipped.reason


def test_json_validates_against_the_faults_schema_with_routes_as_format_lists(tmp_path):
    from portability.reports.schema import load_schema, validate

    write_reports(_report(), tmp_path / "r.json")
    doc = json.loads((tmp_path / "r.json").read_text())
    assert doc["schema_version"] == "2.1"
    assert validate(doc, load_schema("faults")) == []
    doc["resume"][0]["route"] = "torch->safetensors"  # the old string form is refused
    assert validate(doc, load_schema("faults"))


def test_non_finite_figures_follow_the_report_json_rule(tmp_path):
    row = Row("mlp", "fault", "kill-mid-step", "pass", {**FAULT, "kind": "kill-mid-step",
                                                         "recoverability": float("nan")})
    write_reports(_report(row), tmp_path / "r.json")
    doc = json.loads((tmp_path / "r.json").read_text())
    assert doc["faults"][-1]["recoverability"] == "nan"


def test_state_components_inform_without_failing_and_validate(tmp_path):
    from portability.reports.schema import load_schema, validate

    report = _report()
    report.components = [dict(c) for c in COMPONENTS]
    assert report and report.exit_code() == 0  # a component that breaks bitwise resume fails nothing
    write_reports(report, tmp_path / "r.json", markdown_path=tmp_path / "r.md")
    doc = json.loads((tmp_path / "r.json").read_text())
    assert [(c["component"], c["applicable"], c["bitwise"]) for c in doc["state_components"]] == [
        ("rng", True, False), ("scaler", False, None)]
    assert validate(doc, load_schema("faults")) == []
    doc["state_components"][0]["component"] = "weights"
    assert validate(doc, load_schema("faults")) == ["$.state_components[0].component: 'weights' is not one of "
                                                   "['rng', 'data-position', 'scheduler', 'optimizer', 'scaler', "
                                                   "'model-buffers']"]
    text = (tmp_path / "r.md").read_text()
    assert "| mypkg.train:recipe | rng | DIVERGES | 1.25e-01 | 0.9875 | 20 | keep it in every checkpoint |" in text
    assert "| mypkg.train:recipe | scaler | not applicable | - | - | - | the recipe has no scaler |" in text


def test_terminal_table_shows_the_state_components(capsys):
    from portability.reports.faults_report import print_table

    report = _report()
    report.components = [dict(c) for c in COMPONENTS]
    print_table(report)
    out = capsys.readouterr().out
    assert "what each piece of training state is worth" in out
    assert "not applicable" in out and "DIVERGES" in out and "the recipe has no scaler" in out
