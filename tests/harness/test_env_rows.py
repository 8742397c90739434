"""Rows per (route, environment) on a real Hugging Face model directory: the export
torch writes does not load in onnxruntime 1.16.3, and the row says which IR version
and opset; ``--opset 17`` and ``--target-env`` make every row pass, the old runtime's
included, judged with the same drift rules as the main row."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET

import pytest

from portability import api
from portability.envs import builder
from portability.reports.check_report import SCHEMA_VERSION
from portability.reports.render import junit_xml, markdown
from portability.reports.schema import validate

transformers = pytest.importorskip("transformers")
torch = pytest.importorskip("torch")
pytest.importorskip("onnxruntime")

ORT116 = "ort116=onnxruntime==1.16.3,numpy<2"


@pytest.fixture
def bert_dir(tmp_path):
    """A 2-layer BERT written with ``save_pretrained``, as a user's model directory is."""
    config = transformers.BertConfig(vocab_size=64, hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
                                     intermediate_size=32, max_position_embeddings=32)
    torch.manual_seed(0)
    transformers.BertModel(config).save_pretrained(tmp_path / "bert")
    return tmp_path / "bert"


@pytest.fixture
def env_cache(ort116_env, monkeypatch):
    """Plans build their environments in the session's cache (already built there)."""
    _, cache = ort116_env
    monkeypatch.setattr(builder, "cache_root", lambda: cache)
    return cache


@pytest.mark.slow
def test_the_exporters_file_fails_in_onnxruntime_116_and_says_why(bert_dir, env_cache):
    report = api.check(bert_dir, routes="safetensors->onnx", envs=[ORT116], workers=1)
    main, old = report.routes
    assert (main.env, main.status, old.env, old.status) == (None, "pass", "ort116", "fail")
    assert old.reason.startswith("onnx artifact cannot run: in env 'ort116': onnxruntime 1.16.3 cannot load the model:")
    assert old.reason.endswith("(ONNX IR version 9, opset ai.onnx 20; onnxruntime 1.16.3 reads IR <= 9, opset <= 19)")
    assert "Opset 20 is under development" in old.reason
    assert old.weights is not None and old.weights.bitwise_equal == main.weights.bitwise_equal  # same artifact
    assert not report
    data = json.loads(report.to_json())
    assert validate(data) == [] and data["schema_version"] == SCHEMA_VERSION == "1.6"
    assert [r["env"] for r in data["routes"]] == [None, "ort116"]
    assert data["environment"]["env:ort116"].startswith("onnxruntime 1.16.3, numpy 1.26.")
    cases = ET.fromstring(junit_xml(report)).iter("testcase")
    assert [(c.get("name"), c.find("failure") is not None) for c in cases] == [
        ("safetensors->onnx", False), ("safetensors->onnx [env ort116]", True)]
    assert "| `safetensors->onnx` | ort116 | ❌ fail |" in markdown(report)


@pytest.mark.slow
@pytest.mark.parametrize("how", ["opset", "target"])
def test_opset_17_or_the_target_env_passes_every_row(bert_dir, env_cache, how):
    kwargs = {"opset": 17} if how == "opset" else {"target_env": "ort116"}
    report = api.check(bert_dir, routes="safetensors->onnx", envs=[ORT116], workers=1, **kwargs)
    main, old = report.routes
    assert [r.status for r in report.routes] == ["pass", "pass"], [r.reason for r in report.routes]
    header = "ONNX IR version 8, opset ai.onnx 17" if how == "opset" else "ONNX IR version 9, opset ai.onnx 19"
    assert header in old.notes
    if how == "target":
        assert ("exported for env 'ort116': onnxruntime 1.16.3 reads ONNX IR <= 9 and opset <= 19; opset 19, "
                "IR at most 9") in old.notes
    assert any(n.startswith("ran in env ort116 (onnxruntime 1.16.3") for n in old.notes)
    assert [o.name for o in old.outputs] == [o.name for o in main.outputs]
    for ours, theirs in zip(main.outputs, old.outputs, strict=True):
        assert theirs.passed and (theirs.atol, theirs.rtol) == (ours.atol, ours.rtol)
        assert theirs.max_abs < 1e-5


def test_rows_only_for_environments_that_run_the_final_format(env_cache):
    plan = api.plan(fixture="mlp", formats="torch,onnx,safetensors", envs=[ORT116])
    rows = [(job.name, None if job.env is None else job.env.name) for job in plan.jobs]
    assert rows == [("torch->onnx", None), ("torch->onnx", "ort116"), ("torch->safetensors", None),
                    ("torch->onnx->torch", None), ("torch->safetensors->torch", None)]


def test_target_env_must_name_an_env(env_cache):
    from portability.errors import UsageError

    with pytest.raises(UsageError, match=r"^--target-env prod: no --env of that name \(given: ort116\)$"):
        api.plan(fixture="mlp", formats="torch,onnx", envs=[ORT116], target_env="prod")
    with pytest.raises(UsageError, match=r"^--opset 20 is newer than onnxruntime 1.16.3 in 'ort116' reads"):
        api.plan(fixture="mlp", formats="torch,onnx", envs=[ORT116], target_env="ort116", opset=20)


@pytest.mark.slow
def test_compare_runs_the_candidate_in_the_environment(tmp_path, env_cache):
    from portability.adapters.onnx.export import export_model

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.Tanh())
    import numpy as np

    feed = {"input": np.random.default_rng(0).normal(size=(2, 4)).astype(np.float32)}
    np.savez(tmp_path / "in.npz", **feed)
    export_model(model, feed, tmp_path / "a.onnx", opset=17)
    report = api.compare(tmp_path / "a.onnx", tmp_path / "a.onnx", inputs=tmp_path / "in.npz", envs=[ORT116])
    assert [(r.env, r.status) for r in report.routes] == [(None, "pass"), ("ort116", "pass")]
