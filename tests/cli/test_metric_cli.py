"""``--metric``, ``--labels``, ``--eval-data`` and ``--html`` on check and compare: R on the user's model."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/: the toy_models:NAME specs live there
import toy_models

from portability.reports.schema import validate


def _labelled(model, x: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return model(torch.from_numpy(x)).argmax(-1).numpy()


@pytest.fixture(scope="module")
def classifier(tmp_path_factory):
    """A classifier checkpoint, a labelled inputs file, four labelled evaluation batches, and a
    copy whose ``square.weight`` is 3% smaller."""
    root = tmp_path_factory.mktemp("metric-cli")
    model = toy_models.mlp()
    ckpt = root / "model.pt"
    torch.save(model.state_dict(), ckpt)
    x = toy_models.inputs()["x"]
    np.savez(root / "labelled.npz", x=x, target=_labelled(model, x))
    eval_dir = root / "eval"
    eval_dir.mkdir()
    big = (np.random.default_rng(1).standard_normal((256, 8)) * 2).astype(np.float32)
    for i in range(4):
        part = big[i * 64:(i + 1) * 64]
        np.savez(eval_dir / f"batch{i}.npz", x=part, labels=_labelled(model, part))
    state = {k: v.clone() for k, v in model.state_dict().items()}
    state["square.weight"] *= 0.97
    bad = root / "perturbed.pt"
    torch.save(state, bad)
    changed = toy_models.mlp()
    changed.load_state_dict(state)
    expected_r = float((_labelled(changed, big) == _labelled(model, big)).mean())
    return ckpt, root / "labelled.npz", eval_dir, bad, expected_r


@pytest.mark.slow
def test_a_labelled_classifier_gets_r_on_every_route_with_metric_accuracy(classifier, cli, tmp_path):
    ckpt, labelled, _, _, _ = classifier
    result = cli("check", ckpt, "--model", "toy_models:mlp", "--inputs", labelled, "--labels", "target",
                 "--metric", "accuracy", "--workers", "0",
                 "--json", tmp_path / "r.json", "--html", tmp_path / "r.html", "--markdown", tmp_path / "r.md")
    assert result.code == 0, result.out
    data = json.loads((tmp_path / "r.json").read_text())
    assert validate(data) == []
    routes = data["routes"]
    assert len(routes) == 8 and all(r["status"] == "pass" for r in routes)
    for route in routes:
        rec = route["recoverability"]
        assert (rec["metric"], rec["reference"], rec["converted"], rec["value"]) == ("accuracy", 1.0, 1.0, 1.0)
        assert route["outputs"][0]["floor"] == 1e-5 and route["outputs"][0]["source_error"] < 1e-6
        assert "reference: labels read from 'target', not fed to the model" in route["notes"]
    assert "| 1.0000 |" in (tmp_path / "r.md").read_text()
    assert 'data-route="torch-&gt;onnx-&gt;torch"' in (tmp_path / "r.html").read_text()


def test_a_weight_three_percent_off_gives_r_below_0_99_and_exit_1_in_compare(classifier, cli, tmp_path):
    ckpt, _, eval_dir, bad, expected_r = classifier
    result = cli("compare", ckpt, bad, "--model", "toy_models:mlp", "--eval-data", eval_dir, "--metric",
                 "accuracy", "--in-process", "-q", "--json", tmp_path / "c.json")
    assert result.code == 1
    (route,) = json.loads((tmp_path / "c.json").read_text())["routes"]
    rec = route["recoverability"]
    assert rec["reference"] == 1.0 and rec["value"] == pytest.approx(expected_r) and rec["value"] < 0.99
    assert f"recoverability R={round(expected_r, 4)} < 0.99 (accuracy" in route["reason"]
    assert "reference: R measured on 4 batch(es) of" in " ".join(route["notes"])


def test_agreement_is_the_default_without_labels_and_min_r_applies(classifier, cli, tmp_path):
    ckpt, _, _, bad, _ = classifier
    inputs = tmp_path / "x.npz"
    np.savez(inputs, **toy_models.inputs(64))
    args = ["compare", ckpt, bad, "--model", "toy_models:mlp", "--inputs", inputs, "--in-process", "-q",
            "--weights-atol", "none", "--atol", "10", "--json", tmp_path / "c.json"]
    assert cli(*args).code == 1
    (route,) = json.loads((tmp_path / "c.json").read_text())["routes"]
    rec = route["recoverability"]
    assert rec["metric"] == "agreement" and rec["reference"] == 1.0 and rec["value"] < 0.99
    assert cli(*args, "--min-r", "0.5").code == 0


def test_the_users_own_metric_with_its_direction(classifier, cli, tmp_path, monkeypatch):
    ckpt, labelled, _, _, _ = classifier
    (tmp_path / "my_metrics.py").write_text(
        "import numpy as np\n\ndef loss(outputs, batch):\n"
        "    return float(np.abs(outputs['output']).mean()) + 0.0 * len(batch['target'])\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    result = cli("compare", ckpt, ckpt, "--model", "toy_models:mlp", "--inputs", labelled, "--labels", "target",
                 "--metric", "my_metrics:loss", "--lower-is-better", "--in-process", "-q",
                 "--json", tmp_path / "c.json")
    assert result.code == 0
    (route,) = json.loads((tmp_path / "c.json").read_text())["routes"]
    rec = route["recoverability"]
    assert rec["metric"] == "my_metrics:loss" and rec["higher_is_better"] is False and rec["value"] == 1.0


@pytest.mark.parametrize("extra, message", [
    (["--metric", "accuracy"], "--metric accuracy needs labels: put them in the inputs file under 'labels'"),
    (["--metric", "f1"], "--metric 'f1': not a built-in metric"),
    (["--metric", "nowhere_xyz:fn"], "--metric nowhere_xyz:fn: cannot import nowhere_xyz"),
    (["--eval-data", "{empty}"], "holds no .npz batch"),
])
def test_bad_metric_options_are_one_line_usage_errors(classifier, cli, assert_clean_failure, tmp_path, extra,
                                                       message):
    ckpt, _, _, _, _ = classifier
    (tmp_path / "empty").mkdir()
    inputs = tmp_path / "x.npz"
    np.savez(inputs, **toy_models.inputs())
    extra = [e.replace("{empty}", str(tmp_path / "empty")) for e in extra]
    result = cli("check", ckpt, "--model", "toy_models:mlp", "--inputs", inputs, "--workers", "0", *extra)
    assert_clean_failure(result, code=2, names=(message,))
