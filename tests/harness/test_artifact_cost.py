"""Each route reports what its artifact costs: inference time against the source's, and bytes."""

from __future__ import annotations

import json

import numpy as np
import pytest
import toy_models

from portability.api import check
from portability.harness.speed import artifact_bytes, best_call_s, speed_ratio
from portability.reports.check_report import Report, RouteResult
from portability.reports.html_report import check_html
from portability.reports.render import drift_text, markdown


def test_artifact_bytes_counts_a_file_or_every_file_of_a_directory(tmp_path):
    (tmp_path / "m.onnx").write_bytes(b"x" * 10)
    saved = tmp_path / "sm"
    (saved / "variables").mkdir(parents=True)
    (saved / "saved_model.pb").write_bytes(b"y" * 7)
    (saved / "variables" / "variables.data-00000-of-00001").write_bytes(b"z" * 5)
    assert artifact_bytes(tmp_path / "m.onnx") == 10
    assert artifact_bytes(saved) == 12
    assert artifact_bytes(tmp_path / "missing") is None


def test_the_best_call_is_timed_within_the_budget():
    calls = []
    assert best_call_s(calls.append, "feed", calls=3) >= 0 and calls == ["feed"] * 3
    slow = []
    best_call_s(slow.append, "feed", calls=3, budget_s=0.0)  # the budget is spent after one call
    assert slow == ["feed"]
    assert speed_ratio(2.0, 1.0) == 2.0 and speed_ratio(None, 1.0) is None and speed_ratio(1.0, 0.0) is None


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    import torch

    root = tmp_path_factory.mktemp("cost")
    torch.save(toy_models.mlp().state_dict(), root / "toy.pt")
    np.savez(root / "inputs.npz", **toy_models.inputs())
    return root


@pytest.mark.slow
def test_every_judged_route_reports_its_speed_against_the_source_and_its_bytes(toy, tmp_path):
    report = check(toy / "toy.pt", model="toy_models:mlp", inputs=toy / "inputs.npz",
                   routes="torch->safetensors,torch->onnx", workers=0, workdir=tmp_path)
    assert [r.status for r in report.routes] == ["pass", "pass"], [r.reason for r in report.routes]
    # The harness writes ONNX steps as a directory: the graph and its external data.
    for route, pattern in zip(report.routes, ["*/step1-safetensors.safetensors", "*/step1-onnx"], strict=True):
        (artifact,) = tmp_path.glob(pattern)
        files = [artifact] if artifact.is_file() else [f for f in artifact.rglob("*") if f.is_file()]
        assert route.bytes == sum(f.stat().st_size for f in files)
        assert route.speed_vs_source is not None and route.speed_vs_source > 0
        times = route.timings
        assert route.speed_vs_source == pytest.approx(times["inference_best"] / times["source_inference_best"])
    back = Report.from_json(report.to_json())
    assert [(r.speed_vs_source, r.bytes) for r in back.routes] == [(r.speed_vs_source, r.bytes)
                                                                  for r in report.routes]
    assert json.loads(report.to_json())["schema_version"] == "1.6"


def test_reports_show_the_cost_column_and_line():
    route = RouteResult("toy.pt", ["torch", "onnx"], "pass", speed_vs_source=1.5, bytes=37_100_000)
    plain = RouteResult("toy.pt", ["torch", "dcp"], "skipped", "no dcp")
    report = Report([route, plain])
    table = markdown(report)
    assert "| time, size |" in table and "| 1.50x, 37.1 MB |" in table and "| - | no dcp |" in table
    assert "cost: inference time 1.50x the source's, 37.1 MB on disk" in drift_text(route)
    assert "<th>time vs source, size</th>" in check_html(report) and "1.50x, 37.1 MB" in check_html(report)
