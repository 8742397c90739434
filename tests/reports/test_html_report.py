"""The HTML reports: one self-contained file, and a real browser renders the route table and charts."""

from __future__ import annotations

import os
import shutil
from html.parser import HTMLParser

import numpy as np
import pytest

from portability.core.checkpoint import Checkpoint
from portability.harness.drift import compare_outputs
from portability.harness.noise_floor import apply_floors
from portability.harness.recoverability import judge_recoverability
from portability.harness.weights import compare_weights
from portability.reports.check_report import Report, RouteResult
from portability.reports.html_report import check_html, faults_html, write_faults_html, write_html

LAYERS = [{"at": "fc1", "op": "Gemm", "max_abs": 2e-7, "floor": 1e-5, "exceeded": False},
          {"at": "act", "op": "Gelu", "max_abs": 3.9e-4, "floor": 1e-5, "exceeded": True},
          {"at": "head", "op": "Gemm", "max_abs": 1.4e-4, "floor": 1e-5, "exceeded": True}]


def _report() -> Report:
    ref = {"logits": np.array([[0.0, 1.0], [2.0, 0.5]], np.float32)}
    truth = {"logits": ref["logits"].astype(np.float64) + 1e-8}
    cand = {"logits": ref["logits"] + np.float32(3e-4)}
    bad = compare_outputs(ref, cand)
    apply_floors(bad, ref, truth, cand, None)
    w = Checkpoint(tensors={"w": np.eye(3, dtype=np.float32)})
    routes = [
        RouteResult("model.pt", ["torch", "safetensors"], "pass", weights=compare_weights(w, w),
                    outputs=compare_outputs(ref, ref), recoverability=judge_recoverability("accuracy", True,
                                                                                           0.9, 0.9, 0.99)),
        RouteResult("model.pt", ["torch", "onnx"], "fail", reason=bad[0].reason + " <script>x</script>",
                    outputs=bad, recoverability=judge_recoverability("accuracy", True, 0.9, 0.8, 0.99),
                    first_divergence={k: LAYERS[1][k] for k in ("at", "op", "max_abs", "floor")},
                    layer_drift=LAYERS, notes=["outputs judged against the reference's float64 run"]),
        RouteResult("model.pt", ["torch", "tf-savedmodel"], "skipped", reason="tensorflow is not installed"),
    ]
    return Report(routes, duration_s=1.5, environment={"python": "3.11"})


class _Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict]] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))


def _tags(text: str) -> list[tuple[str, dict]]:
    parser = _Tags()
    parser.feed(text)
    return parser.tags


def test_check_page_is_self_contained_with_the_route_table_and_charts(tmp_path):
    path = tmp_path / "report.html"
    write_html(_report(), path)
    text = path.read_text(encoding="utf-8")
    tags = _tags(text)
    assert not [t for t, a in tags if t in ("script", "link", "img", "iframe")]
    assert not [a for _, a in tags if any(k in a for k in ("src", "href")) and
                not (a.get("href") or "#").startswith("#")]
    assert "default-src 'none'" in text and "&lt;script&gt;x&lt;/script&gt;" in text
    rows = [a for t, a in tags if t == "tr" and a.get("class") == "route-row"]
    assert [(r["data-route"], r["data-status"]) for r in rows] == [
        ("torch->safetensors", "pass"), ("torch->onnx", "fail"), ("torch->tf-savedmodel", "skipped")]
    drift_bars = [a for t, a in tags if t == "rect" and "bar" in a.get("class", "")]
    assert len(drift_bars) == 2 + 3  # R per route (two routes have R) + three layers
    assert [a for t, a in tags if t == "rect" and a.get("class") == "bar first"]
    assert "act</code> (Gelu): 0.00039 &gt; floor 1e-05" in text
    assert "R = 0.8889 (accuracy: 0.8 vs reference 0.9; minimum 0.99)" in text


def test_faults_page_renders_every_section_it_is_given(tmp_path):
    data = {"schema_version": "2.1", "passed": False, "duration_s": 3.5, "environment": {"python": "3.11"},
            "faults": [{"fixture": "mlp", "kind": "truncated-file", "status": "pass", "detected": True}],
            "resume": [{"fixture": "mlp", "route": ["torch", "safetensors", "torch"], "status": "fail",
                        "bitwise": False}],
            "state_components": [{"fixture": "mlp", "component": "rng", "status": "pass"}],
            "skipped": []}
    write_faults_html(data, tmp_path / "faults.html")
    text = (tmp_path / "faults.html").read_text(encoding="utf-8")
    ids = [a.get("id") for t, a in _tags(text) if t == "table"]
    assert ids == ["section-faults", "section-resume", "section-state_components"]
    assert "torch-&gt;safetensors-&gt;torch" in text and "portability faults: FAILED" in text
    assert faults_html(data) == text


def _browser():
    """A headless Chromium driven by Selenium, or the reason it cannot run here."""
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        return None, "selenium is not installed (pip install 'portability[test]')"
    binary, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if not binary or not driver:
        return None, "no chromium/chromedriver on PATH (apt-get install chromium chromium-driver)"
    return (webdriver, Service, binary, driver), ""


@pytest.fixture
def browser(tmp_path):
    found, why = _browser()
    if found is None:
        if os.environ.get("PORTABILITY_REQUIRE_BROWSER"):  # .ci/run sets it: CI must run this test
            pytest.fail(f"PORTABILITY_REQUIRE_BROWSER is set but {why}")
        pytest.skip(why)
    webdriver, service_cls, binary, driver_path = found
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run",
                 f"--user-data-dir={tmp_path / 'chromium-profile'}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=service_cls(executable_path=driver_path), options=options)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.mark.slow
def test_a_real_browser_renders_the_route_table_and_the_drift_chart(browser, tmp_path):
    from selenium.webdriver.common.by import By

    path = tmp_path / "report.html"
    path.write_text(check_html(_report()), encoding="utf-8")
    browser.get(path.as_uri())
    assert browser.title == "portability check: FAILED"
    rows = browser.find_elements(By.CSS_SELECTOR, "#routes tr.route-row")
    assert [r.get_attribute("data-status") for r in rows] == ["pass", "fail", "skipped"]
    assert "torch->onnx" in rows[1].text and "0.8889" in rows[1].text
    chart = browser.find_element(By.CSS_SELECTOR, "svg.drift-chart")
    assert chart.size["width"] > 300 and chart.size["height"] > 100  # laid out, not collapsed
    bars = chart.find_elements(By.CSS_SELECTOR, "rect.bar")
    assert len(bars) == 3 and all(b.size["height"] > 0 for b in bars)
    assert browser.find_element(By.CSS_SELECTOR, "svg.r-chart").is_displayed()
    assert browser.execute_script("return performance.getEntriesByType('resource').length") == 0
