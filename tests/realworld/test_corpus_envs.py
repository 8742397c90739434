"""Real checkpoints in other environments and on Ray.

- all-MiniLM-L6-v2 (a sentence-transformers directory) in onnxruntime 1.16.3: the export
  at the exporter's default opset fails there and the row names the file's IR version and
  opset; with ``--opset 17`` every row passes, the old runtime's included.
- ``--executor ray`` gives the local pool's verdict per route on two corpus models.

Run with ``python -m pytest -m realworld tests/realworld/test_corpus_envs.py``.
"""

from __future__ import annotations

import pytest

from portability import api
from portability.envs import builder

from . import checking, corpus

pytestmark = [pytest.mark.realworld, pytest.mark.slow]
ORT116 = "ort116=onnxruntime==1.16.3,numpy<2"


def _fetch(name: str):
    try:
        return corpus.fetch(corpus.BY_NAME[name])
    except corpus.FetchError as exc:
        pytest.skip(str(exc))


def test_minilm_directory_in_onnxruntime_116(ort116_env, monkeypatch):
    monkeypatch.setattr(builder, "cache_root", lambda: ort116_env[1])
    path = _fetch("minilm-l6-dir")
    default = api.check(path, routes="safetensors->onnx", envs=[ORT116])
    main, old = default.routes
    assert (main.status, old.env, old.status) == ("pass", "ort116", "fail")
    assert "ONNX IR version" in old.reason and "onnxruntime 1.16.3 reads IR <= 9, opset <= 19" in old.reason
    targeted = api.check(path, envs=[ORT116], opset=17)
    rows = [(r.name, r.env, r.status, r.reason) for r in targeted.routes]
    assert all(status == "pass" for _, _, status, _ in rows), rows
    assert {name for name, env, _, _ in rows if env == "ort116"} == {"safetensors->onnx"}


@pytest.mark.parametrize("name", ["mtcnn-onet", "pesto-mir1k"])
def test_ray_gives_the_local_verdicts(name, tmp_path):
    pytest.importorskip("ray")
    try:
        kwargs = checking.subject(corpus.BY_NAME[name], tmp_path)
    except corpus.FetchError as exc:
        pytest.skip(str(exc))
    local = api.check(**kwargs)
    on_ray = api.check(**kwargs, executor="ray")
    assert [(r.id, r.status, r.reason) for r in on_ray.routes] == [(r.id, r.status, r.reason) for r in local.routes]
