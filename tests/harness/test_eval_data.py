"""Evaluation data and the default metric: labels kept out of the feed, batches in name order."""

from __future__ import annotations

import json

import numpy as np
import pytest

from portability.errors import UsageError
from portability.harness.eval_data import export_inputs_file, hf_default_metric, load_eval_data, metric_for
from portability.harness.metrics import MetricSpec


def test_labels_stay_out_of_the_feed_and_eval_batches_come_in_name_order(tmp_path):
    x = np.arange(6, dtype=np.float32).reshape(3, 2)
    np.savez(tmp_path / "inputs.npz", x=x, y=np.array([0, 1, 0]))
    (tmp_path / "eval").mkdir()
    for name, rows in (("b.npz", 2), ("a.npz", 1)):
        np.savez(tmp_path / "eval" / name, x=np.zeros((rows, 2), np.float32), y=np.zeros(rows, np.int64))
    (tmp_path / "eval" / "notes.txt").write_text("not a batch")
    data = load_eval_data(str(tmp_path / "inputs.npz"), str(tmp_path / "eval"), "y", lambda: {})
    assert list(data.feed) == ["x"] and np.array_equal(data.feed["x"], x)
    assert [len(b["x"]) for b in data.batches] == [1, 2] and data.has_labels
    assert list(data.model_feed(data.batches[0])) == ["x"]
    assert data.notes[0].startswith("R measured on 2 batch(es) of")


def test_without_eval_data_the_drift_batch_is_the_only_batch_and_its_outputs_are_reused(tmp_path):
    np.savez(tmp_path / "inputs.npz", x=np.ones((2, 2), np.float32), labels=np.array([1, 0]))
    data = load_eval_data(str(tmp_path / "inputs.npz"), None, "labels", lambda: {})
    assert len(data.batches) == 1 and data.feed_is_first_batch() and data.has_labels
    assert data.notes == ["labels read from 'labels', not fed to the model"]


def test_a_file_of_labels_only_is_refused(tmp_path):
    np.savez(tmp_path / "inputs.npz", labels=np.array([1, 0]))
    with pytest.raises(UsageError, match="holds only labels"):
        load_eval_data(str(tmp_path / "inputs.npz"), None, "labels", lambda: {})


def test_exports_trace_on_a_label_free_copy(tmp_path):
    np.savez(tmp_path / "plain.npz", x=np.ones((2, 2), np.float32))
    np.savez(tmp_path / "labelled.npz", x=np.ones((2, 2), np.float32), labels=np.array([1, 0]))
    assert export_inputs_file(str(tmp_path / "plain.npz"), None, "labels") == str(tmp_path / "plain.npz")
    copy = export_inputs_file(str(tmp_path / "labelled.npz"), None, "labels")
    assert copy != str(tmp_path / "labelled.npz")
    with np.load(copy) as data:
        assert data.files == ["x"]
    assert export_inputs_file(None, None, "labels") is None


@pytest.mark.parametrize("arch, labels, expected", [
    ("GPT2LMHeadModel", False, MetricSpec("perplexity")),
    ("BertForTokenClassification", False, MetricSpec("agreement")),
    ("LlamaForCausalLM", False, MetricSpec("perplexity")),
    ("BertForSequenceClassification", True, MetricSpec("accuracy")),
    ("BertForSequenceClassification", False, MetricSpec("agreement")),
    ("BertModel", False, MetricSpec("cosine", output="pooler_output")),
])
def test_hugging_face_defaults_follow_the_config(tmp_path, arch, labels, expected):
    (tmp_path / "config.json").write_text(json.dumps({"architectures": [arch]}))
    assert hf_default_metric(tmp_path, labels) == expected


def test_the_metric_a_subject_gets():
    assert metric_for(None, True, "pkg:build", False, True) == (MetricSpec("accuracy"), False)
    assert metric_for(None, True, "pkg:build", False, False) == (MetricSpec("agreement"), False)
    assert metric_for(None, True, "fixture:mlp", True, False) == (None, False)
    assert metric_for("mse@hidden", True, None, True, False) == (MetricSpec("mse", "hidden"), True)
    with pytest.raises(UsageError, match="--metric top5 needs labels: put them in the inputs file under 'y'"):
        metric_for("top5", True, None, False, False, "y")
