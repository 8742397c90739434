"""``check`` on graphs other tools wrote (ONNX, SavedModel) with no model spec, honest
verdicts for weights-only routes, and ``--strict``."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import toy_models
from foreign_graphs import image_batch, keras_functional, paddle_style_classifier

from portability.api import check
from portability.cli import main
from portability.reports.schema import validate


@pytest.fixture(scope="module")
def toy_pt(tmp_path_factory):
    path = tmp_path_factory.mktemp("weights-only") / "toy.pt"
    torch.save(toy_models.mlp().state_dict(), path)
    return path


def test_weights_only_route_passes_with_a_note_and_is_counted(toy_pt):
    report = check(toy_pt, routes="torch->safetensors", workers=0)
    (route,) = report.routes
    assert route.status == "pass" and route.weights_only and route.outputs == []
    assert route.weights.bitwise_equal == route.weights.compared == 8
    assert any("judged on weights only" in n for n in route.notes)
    assert report.summary_line() == "1 pass (1 on weights only), 0 fail, 0 skipped, 0 error"
    data = report.to_dict()
    assert data["summary"]["weights_only"] == 1 and data["routes"][0]["weights_only"] is True
    validate(data)


def test_strict_fails_weights_only_and_skipped_routes(toy_pt):
    report = check(toy_pt, routes="torch->safetensors,torch->onnx", workers=0, strict=True)
    weights_only, graph = report.routes
    assert (weights_only.status, graph.status) == ("fail", "fail")
    assert weights_only.reason == "strict: judged on weights only, outputs not compared (pass --model SPEC)"
    assert graph.reason.startswith("strict: route did not run (writing 'onnx' from 'torch' needs a model spec")
    assert not report


def test_cli_strict_exit_code_and_summary_line(toy_pt, capsys):
    assert main(["check", str(toy_pt), "--routes", "torch->safetensors", "--workers", "0", "-q"]) == 0
    assert capsys.readouterr().out.strip().endswith("PASSED: 1 pass (1 on weights only), 0 fail, 0 skipped, 0 error")
    assert main(["check", str(toy_pt), "--routes", "torch->safetensors", "--workers", "0", "-q", "--strict"]) == 1
    assert "FAILED: 0 pass, 1 fail" in capsys.readouterr().out


@pytest.mark.slow
def test_check_an_onnx_file_from_another_producer(tmp_path, capsys):
    pytest.importorskip("tensorflow")
    pytest.importorskip("tf2onnx")
    source = paddle_style_classifier(tmp_path / "cls.onnx")
    inputs = image_batch(tmp_path / "x.npz")
    code = main(["check", str(source), "--inputs", str(inputs), "--json", str(tmp_path / "r.json"), "-q"])
    routes = {"->".join(r["route"]): r for r in json.loads((tmp_path / "r.json").read_text())["routes"]}
    status = {name: r["status"] for name, r in routes.items()}
    assert status == {"onnx->torch": "pass", "onnx->safetensors": "pass", "onnx->tf-savedmodel": "pass",
                      "onnx->torch->onnx": "skipped", "onnx->safetensors->onnx": "skipped",
                      "onnx->tf-savedmodel->onnx": "pass", "onnx->dcp": "pass",
                      "onnx->dcp->onnx": "skipped"}, routes
    assert code == 0
    assert routes["onnx->torch"]["weights_only"] and routes["onnx->torch"]["weights"]["bitwise_equal"] == 10
    translated = routes["onnx->tf-savedmodel"]
    assert not translated["weights_only"] and translated["weights"]["bitwise_equal"] == 10
    assert translated["outputs"][0]["max_abs"] <= 1e-5
    assert routes["onnx->dcp"]["weights_only"] and routes["onnx->dcp"]["weights"]["bitwise_equal"] == 10
    assert "PASSED: 5 pass (3 on weights only), 0 fail, 3 skipped, 0 error" in capsys.readouterr().out


@pytest.mark.slow
def test_check_a_keras3_savedmodel(tmp_path):
    pytest.importorskip("tf2onnx")
    keras_functional(tmp_path / "sm")
    np.savez(tmp_path / "x.npz", image=np.random.default_rng(0).standard_normal((2, 8, 8, 3)).astype(np.float32))
    report = check(tmp_path / "sm", inputs=tmp_path / "x.npz", workers=0,
                   routes="tf-savedmodel->onnx,tf-savedmodel->onnx->tf-savedmodel,tf-savedmodel->torch")
    to_onnx, round_trip, weights = report.routes
    assert [r.status for r in report.routes] == ["pass", "pass", "pass"], [r.reason for r in report.routes]
    assert to_onnx.outputs[0].max_abs <= 1e-5 and round_trip.outputs[0].max_abs <= 1e-5
    assert any("tf2onnx folds" in n for n in to_onnx.notes)
    assert weights.weights_only and weights.weights.bitwise_equal == weights.weights.compared == 9


@pytest.mark.slow
def test_keras_cnn_runs_every_route():
    pytest.importorskip("tf2onnx")
    report = check(fixture="keras-cnn", workers=0)
    assert {r.name: r.status for r in report.routes} == {
        "tf-savedmodel->torch": "pass", "tf-savedmodel->safetensors": "pass", "tf-savedmodel->onnx": "pass",
        "tf-savedmodel->torch->tf-savedmodel": "pass", "tf-savedmodel->safetensors->tf-savedmodel": "pass",
        "tf-savedmodel->onnx->tf-savedmodel": "pass", "tf-savedmodel->dcp": "pass",
        "tf-savedmodel->dcp->tf-savedmodel": "pass"}, [r.reason for r in report.routes]
    assert all(r.recoverability.value >= 0.99 for r in report.routes)


def test_a_graph_source_without_inputs_is_a_usage_error(tmp_path):
    from portability.errors import UsageError

    source = paddle_style_classifier(tmp_path / "cls.onnx")
    with pytest.raises(UsageError, match=r"cls.onnx: checking a onnx graph runs it on your inputs; pass --inputs"):
        check(source, workers=0)
