"""A TensorFlow two minor versions back runs the SavedModel routes: a torch fixture's
SavedModel (written by this TensorFlow) and a Keras fixture's, loaded and run by
tensorflow-cpu 2.19 in its own environment, judged like the main rows.

TensorFlow is about 250 MB to download and install: with an empty uv cache the test took
98 s on 2 cores (under CI's two-minute allowance for it), so it is only marked slow.
"""

from __future__ import annotations

import pytest

from portability import api
from portability.envs import builder
from portability.errors import EnvError

pytestmark = pytest.mark.slow
pytest.importorskip("tensorflow")
pytest.importorskip("uv")
TF219 = "tf219=tensorflow-cpu==2.19.1"


def test_savedmodel_routes_run_in_tensorflow_2_19(tmp_path_factory, monkeypatch):
    cache = tmp_path_factory.getbasetemp() / "deployment-envs"
    monkeypatch.setattr(builder, "cache_root", lambda: cache)
    try:
        report = api.check(fixture="mlp,keras-cnn", routes=None, formats="torch,tf-savedmodel", envs=[TF219])
    except EnvError as exc:
        if "no network" in str(exc):
            pytest.skip(str(exc))
        raise
    rows = [(r.subject, r.name, r.env, r.status, r.reason) for r in report.routes]
    old = [r for r in report.routes if r.env == "tf219"]
    assert {(r.subject, r.name) for r in old} == {("fixture:mlp", "torch->tf-savedmodel"),
                                                   ("fixture:keras-cnn", "tf-savedmodel->torch->tf-savedmodel")}
    assert all(status == "pass" for *_, status, _ in rows), rows
    import tensorflow as tf

    for row in old:
        assert f"SavedModel written by TensorFlow {tf.__version__}" in row.notes
        assert any(n.startswith("ran in env tf219 (tensorflow 2.19.1") for n in row.notes)
        assert row.recoverability is not None and row.recoverability.value == 1.0
