"""Built-in metrics and the user's own: exact values on small hand-made outputs."""

from __future__ import annotations

import math
import sys
import types

import numpy as np
import pytest

from portability.errors import UsageError
from portability.harness.metrics import MetricSpec, parse_metric, score

LOGITS = np.array([[2.0, 1.0, 0.0], [0.0, 3.0, 1.0], [1.0, 0.0, 4.0], [5.0, 4.0, 3.0]])


def _score(name, cand, ref, batch, **kw):
    spec = parse_metric(name)
    return score(spec, [cand], [ref], [batch], **kw)


def test_accuracy_and_top5_against_labels_ignore_negative_labels():
    batch = {"x": np.zeros((4, 2)), "labels": np.array([0, 2, 2, -100])}
    got = _score("accuracy", {"logits": LOGITS}, {"logits": LOGITS}, batch)
    assert (got.name, got.value, got.reference, got.higher_is_better) == ("accuracy", 2 / 3, 2 / 3, True)
    assert _score("top5", {"logits": LOGITS}, {"logits": LOGITS}, batch).value == 1.0


def test_agreement_is_relative_to_the_reference_whose_own_score_is_one():
    flipped = LOGITS.copy()
    flipped[0] = [0.0, 1.0, 2.0]
    got = _score("agreement", {"logits": flipped}, {"logits": LOGITS}, {"x": np.zeros((4, 1))})
    assert (got.value, got.reference) == (0.75, 1.0)


def test_mse_and_mae_against_labels_are_lower_is_better_and_relative_without():
    ref = {"output": np.array([[1.0, 2.0], [3.0, 4.0]])}
    cand = {"output": np.array([[1.0, 2.0], [3.0, 5.0]])}
    labelled = {"x": np.zeros((2, 1)), "labels": np.array([[1.0, 2.0], [3.0, 3.0]])}
    mse = _score("mse", cand, ref, labelled)
    assert (mse.name, mse.higher_is_better, mse.value, mse.reference) == ("mse", False, 1.0, 0.25)
    rel = _score("mae", cand, ref, {"x": np.zeros((2, 1))})
    assert rel.name == "1-nmae" and rel.higher_is_better and rel.reference == 1.0
    assert rel.value == pytest.approx(1 - 1 / 10)
    nmse = _score("mse", cand, ref, {"x": np.zeros((2, 1))})
    assert nmse.value == pytest.approx(1 - 1 / 30)


def test_cosine_per_row_against_the_reference():
    ref = {"pooler_output": np.array([[1.0, 0.0], [0.0, 2.0]])}
    cand = {"pooler_output": np.array([[1.0, 1.0], [0.0, 3.0]])}
    got = score(MetricSpec("cosine", output="pooler_output"), [cand], [ref], [{"x": np.zeros((2, 1))}])
    assert got.value == pytest.approx((1 / math.sqrt(2) + 1.0) / 2) and got.reference == 1.0


def test_perplexity_from_logits_and_input_ids_with_the_mask():
    vocab = 4
    ids = np.array([[0, 1, 2, 3]])
    logits = np.zeros((1, 4, vocab))  # uniform: perplexity = vocab
    batch = {"input_ids": ids, "attention_mask": np.array([[1, 1, 1, 0]])}
    got = _score("perplexity", {"logits": logits}, {"logits": logits}, batch)
    assert got.value == pytest.approx(4.0) and not got.higher_is_better
    sharp = logits.copy()
    sharp[0, 0, 1] = sharp[0, 1, 2] = 50.0  # predicts the next two tokens; the padded third is ignored
    assert _score("perplexity", {"logits": sharp}, {"logits": logits}, batch).value == pytest.approx(1.0)


def test_exact_match_of_time_major_argmax_sequences():
    ref = np.zeros((3, 2, 5))  # (time, batch, classes), as a CTC head returns
    ref[:, 0, 1] = 1.0
    ref[:, 1, 2] = 1.0
    cand = ref.copy()
    cand[2, 1, 4] = 9.0  # the second sequence's last step differs
    got = _score("exact-match", {"output": cand}, {"output": ref}, {"image": np.zeros((2, 1, 8, 8))})
    assert (got.value, got.reference) == (0.5, 1.0)
    labels = np.array([[1, 2], [1, 2], [1, -1]])
    assert _score("exact-match", {"output": cand}, {"output": ref},
                  {"image": np.zeros((2, 1, 8, 8)), "labels": labels}).value == 1.0


def test_custom_metric_is_averaged_over_batches_by_rows(monkeypatch):
    module = types.ModuleType("user_metrics_for_test")
    module.mean_first = lambda outputs, batch: float(outputs["y"][:, 0].mean() + 0 * len(batch))
    monkeypatch.setitem(sys.modules, "user_metrics_for_test", module)
    spec = parse_metric("user_metrics_for_test:mean_first", higher_is_better=False)
    cand = [{"y": np.ones((1, 2))}, {"y": np.full((3, 2), 3.0)}]
    got = score(spec, cand, cand, [{"x": np.zeros((1, 1))}, {"x": np.zeros((3, 1))}])
    assert (got.value, got.reference, got.higher_is_better) == (2.5, 2.5, False)


@pytest.mark.parametrize("text, message", [
    ("f1", "not a built-in metric (accuracy, top5, agreement"),
    ("no_such_module_xyz:fn", "cannot import no_such_module_xyz"),
])
def test_bad_metrics_are_usage_errors(text, message):
    from portability.harness.metrics import load_custom

    with pytest.raises(UsageError, match=message.replace("(", r"\(")):
        load_custom(parse_metric(text))


def test_accuracy_without_labels_and_labels_of_the_wrong_shape_name_the_problem():
    with pytest.raises(UsageError, match="needs labels"):
        _score("accuracy", {"logits": LOGITS}, {"logits": LOGITS}, {"x": np.zeros((4, 1))})
    with pytest.raises(UsageError, match=r"labels of shape \[3\] do not fit outputs scored as \[4\]"):
        _score("accuracy", {"logits": LOGITS}, {"logits": LOGITS}, {"labels": np.array([0, 1, 2])})
    with pytest.raises(UsageError, match="has no output 'pooled'"):
        _score("cosine@pooled", {"logits": LOGITS}, {"logits": LOGITS}, {"x": np.zeros((4, 1))})
