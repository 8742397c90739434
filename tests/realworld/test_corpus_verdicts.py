"""Verdicts on real pretrained models: R on a chosen metric, the float64 floor, the first
divergence of a planted break, and the HTML report.

Two real models carry each claim: the khmer-ocr-ocm CRNN (a 2-layer BiLSTM whose float32
rounding alone crosses atol 1e-5, scored by exact match of its CTC argmax sequences) and the
resemblyzer speaker encoder (a 3-layer LSTM embedding, scored by cosine).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from portability.api import check, compare
from portability.reports.html_report import check_html

from . import checking, corpus

pytestmark = [pytest.mark.realworld, pytest.mark.slow]
# entry -> (metric, weight to perturb, the module where the drift must be found to begin)
CASES = {"khmer-crnn": ("exact-match", "rnn.weight_hh_l0", "rnn"),
         "resemblyzer-lstm": ("cosine", "lstm.weight_hh_l2", "lstm")}


def _subject(name, tmp_path):
    try:
        return checking.subject(corpus.BY_NAME[name], tmp_path)
    except corpus.FetchError as exc:
        pytest.skip(str(exc))


@pytest.mark.parametrize("name", list(CASES))
def test_graph_routes_pass_within_the_float64_floor_with_r_on_the_metric(name, tmp_path):
    subject = _subject(name, tmp_path)
    metric = CASES[name][0]
    report = check(**subject, metric=metric, routes="torch->onnx,torch->tf-savedmodel", workers=0)
    assert [r.status for r in report.routes] == ["pass", "pass"], [r.reason for r in report.routes]
    for route in report.routes:
        (out,) = route.outputs
        assert out.source_error > 0 and out.floor == max(1e-5, 4 * out.source_error)
        assert out.error_vs_float64 <= out.floor
        rec = route.recoverability
        assert rec.metric == metric and rec.reference == 1.0 and rec.value > 0.99
    if name == "khmer-crnn":  # a fixed atol = rtol = 1e-5 fails the ONNX output, though it is
        out = report.routes[0].outputs[0]  # closer to the float64 truth than its float32 source
        assert out.min_atol > 1e-5 and out.error_vs_float64 < out.source_error
    page = check_html(report)
    assert page.count('class="route-row"') == 2 and 'class="r-chart"' in page


@pytest.mark.parametrize("name", list(CASES))
def test_a_weight_two_percent_off_fails_and_the_divergence_is_located(name, tmp_path):
    subject = _subject(name, tmp_path)
    metric, weight, module = CASES[name]
    loaded = torch.load(subject["checkpoint"], map_location="cpu", weights_only=True)
    state = {k: v.clone() for k, v in corpus.state_dict_of(corpus.BY_NAME[name], loaded).items()}
    state[weight] = state[weight] * 1.02
    bad = tmp_path / "perturbed.pt"
    torch.save(state, bad)
    report = compare(subject["checkpoint"], bad, model=subject["model"], inputs=subject["inputs"],
                     metric=metric, workers=0)
    (route,) = report.routes
    assert route.status == "fail" and not report
    assert route.first_divergence["at"] == module
    assert route.first_divergence["max_abs"] > 100 * route.first_divergence["floor"]
    assert f"first divergence at {module}" in route.reason
    upstream = [d for d in route.layer_drift[: [d["at"] for d in route.layer_drift].index(module)]]
    assert not any(d["exceeded"] for d in upstream)
    if name == "khmer-crnn":  # the perturbed weights exported to ONNX: matched by the exporter's scopes
        from portability.adapters.onnx.export import export_checkpoint
        from portability.core.formats import load_adapter

        export_checkpoint(load_adapter("torch").read(bad), subject["model"], tmp_path / "bad.onnx",
                          inputs=subject["inputs"])
        (route,) = compare(subject["checkpoint"], tmp_path / "bad.onnx", model=subject["model"],
                           inputs=subject["inputs"], workers=0).routes
        assert route.status == "fail"
        assert route.first_divergence["at"] == "rnn" and route.first_divergence["op"] == "LSTM"
        assert np.isfinite(route.first_divergence["max_abs"])
