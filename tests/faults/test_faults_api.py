"""``portability.faults(recipe=...)``: the library entry point of the campaign."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
import portability
from portability.errors import UsageError
from portability.training.torch_recipes import toy_sgd


def test_the_faults_package_is_the_callable_entry_point():
    import portability.faults.campaign  # importing a submodule keeps the name callable

    assert callable(portability.faults) and portability.faults.campaign.KINDS[0] == "kill-mid-step"
    with pytest.raises(UsageError, match="give a recipe"):
        portability.faults()
    with pytest.raises(UsageError, match="module-level function"):
        portability.faults(recipe=lambda: None)


@pytest.mark.slow
def test_faults_on_a_recipe_function_returns_a_truthy_report():
    report = portability.faults(recipe=toy_sgd, kinds=["truncated-file", "missing-optimizer-state"], steps=22)
    assert report and report.exit_code() == 0
    assert [(r.fixture, r.section, r.name, r.status) for r in report.rows if r.section == "fault"] == [
        ("portability.training.torch_recipes:toy_sgd", "fault", "truncated-file", "pass"),
        ("portability.training.torch_recipes:toy_sgd", "fault", "missing-optimizer-state", "pass")]
    worth = {c["component"]: c for c in report.components}
    assert worth["scheduler"]["bitwise"] is False and worth["scaler"]["applicable"] is False
    assert report.to_dict()["state_components"] == report.components
