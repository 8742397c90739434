"""``portability faults``: reports, exit codes and usage errors."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET

import pytest

pytest.importorskip("torch")


@pytest.mark.slow
def test_faults_writes_json_junit_markdown_and_exits_0(cli, tmp_path):
    paths = [tmp_path / n for n in ("r.json", "r.xml", "r.md")]
    res = cli("faults", "--fixture", "toy-mlp", "--kinds", "truncated-file,missing-optimizer-state",
              "--steps", "22", "--no-tf", "--json", paths[0], "--junit", paths[1], "--markdown", paths[2])
    assert res.code == 0, res.err
    assert "PASSED" in res.out
    doc = json.loads(paths[0].read_text())
    assert doc["passed"] is True
    assert [f["kind"] for f in doc["faults"]] == ["truncated-file", "missing-optimizer-state"]
    for entry in doc["faults"]:
        assert entry["detected"] and entry["recovered"] and entry["recoverability"] >= 0.99
        assert entry["recovered_from_step"] == 10 and entry["steps_lost"] == 7
        assert entry["time_to_recover_s"] >= 0
    routes = {(tuple(r["route"]), r["dtype"]): r for r in doc["resume"]}
    assert routes[("torch",), None]["bitwise"] and routes[("torch", "safetensors", "torch"), None]["bitwise"]
    assert routes[("torch",), "float16"]["max_loss_deviation"] > 0
    from portability.reports.schema import load_schema, validate

    assert validate(doc, load_schema("faults")) == []
    suite = ET.parse(paths[1]).getroot().find("testsuite")
    assert suite.get("tests") == "6" and suite.get("failures") == "0"
    assert "| toy-mlp | fault:truncated-file | pass |" in paths[2].read_text()


def test_undetected_fault_fails_the_run(cli, monkeypatch):
    from portability.faults import campaign as faults

    def undetected(self, kind):
        return faults.FaultResult(kind, False, True, 15, 2, 1.0, 0.1)

    monkeypatch.setattr(faults._Campaign, "recover", undetected)
    res = cli("faults", "--fixture", "toy-mlp", "--kinds", "bitflip-header", "--steps", "22",
              "--no-tf", "--no-resume")
    assert res.code == 1
    assert "damage not detected" in res.out and "FAILED" in res.out


def test_low_recoverability_fails_the_run(cli, monkeypatch):
    from portability.faults import campaign as faults

    monkeypatch.setattr(faults._Campaign, "recover",
                        lambda self, kind: faults.FaultResult(kind, True, True, 10, 7, 0.98, 0.1))
    res = cli("faults", "--fixture", "toy-mlp", "--kinds", "truncated-file", "--steps", "22",
              "--no-tf", "--no-resume", "-q")
    assert res.code == 1


@pytest.mark.parametrize("args, message", [
    (("--fixture", "nope"), "no training recipe for 'nope'"),
    (("--fixture", "toy-mlp", "--kinds", "meteor"), "unknown fault kind"),
])
def test_usage_errors_exit_2_with_one_line(cli, args, message):
    res = cli("faults", *args, "--no-tf", "--no-resume")
    assert res.code == 2
    assert message in res.err and res.err.count("\n") == 1
