"""Every corpus checkpoint through ``inspect``, ``convert`` and ``check``, as a new user would.

``inspect`` must find the weights where their authors put them; ``convert`` to
safetensors must give a file that ``safetensors`` + ``load_state_dict(strict=True)``
accepts, and converting back must give the original object; ``check`` must pass
every route, or fail it for a reason that names an op (``checking.ACCEPTED_FAILURE``).
Run with ``python -m pytest -m realworld tests/realworld`` (see the README).
"""

from __future__ import annotations

import pytest
import torch
from nested_asserts import assert_same

from portability import api
from portability.core.conversion import convert
from portability.core.inspection import inspect_checkpoint

from . import checking, corpus

pytestmark = pytest.mark.realworld
TORCH_FILES = [e for e in checking.CHECKED if e.is_torch]


def _fetch(entry):
    try:
        return corpus.fetch(entry)
    except corpus.FetchError as exc:
        pytest.skip(str(exc))


def _param(entry):
    slow = entry.size > 50_000_000
    return pytest.param(entry, id=entry.name, marks=[pytest.mark.slow] if slow else [])


@pytest.mark.parametrize("entry", [_param(e) for e in TORCH_FILES])
def test_inspect_finds_the_weights(entry):
    info = inspect_checkpoint(_fetch(entry))
    assert info["weights_key"] == (entry.state_key or "(top level)")
    assert len(info["tensors"]) == entry.tensors
    if entry.name == "resemblyzer-lstm":  # pickled on a GPU, legacy format, with Adam state
        assert info["training_state"]["optimizer"] == {"kind": "Adam", "param_groups": 1, "parameters_with_state": 16}
        assert info["training_state"]["global_step"] == 1564501
    if entry.name == "pesto-mir1k":  # a Lightning .ckpt whose optimizer state was stripped before release
        ts = info["training_state"]
        assert (ts["optimizer"], ts["epoch"], ts["global_step"]) == (None, 49, 54800)
        assert {"loops", "hparams", "pytorch-lightning_version"} <= set(ts["extra_keys"])


@pytest.mark.parametrize("entry", [_param(e) for e in TORCH_FILES])
def test_convert_gives_loadable_weights_and_the_original_back(entry, tmp_path):
    from safetensors.torch import load_file

    path = _fetch(entry)
    result = convert(path, tmp_path / "out.safetensors")
    assert result.tensors == entry.tensors
    weights = {k: v for k, v in load_file(tmp_path / "out.safetensors").items() if not k.startswith("__training__")}
    module, name = checking.factory_module(entry)
    getattr(module, name)().load_state_dict(weights, strict=True)
    if entry.format == "safetensors":
        return
    convert(tmp_path / "out.safetensors", tmp_path / "back.pt")
    original = torch.load(path, map_location="cpu", weights_only=True)
    back = torch.load(tmp_path / "back.pt", weights_only=True)
    assert_same(original, back)



def test_check_on_the_hugging_face_directory_implies_its_model():
    directory = _fetch(corpus.BY_NAME["minilm-l6-dir"])
    plan = api.plan(directory)
    assert {job.subject.model for job in plan.jobs} == {f"hf:{directory}"}


@pytest.mark.slow
@pytest.mark.parametrize("entry", [_param(e) for e in checking.CHECKED])
def test_every_route_passes_or_names_an_op(entry, tmp_path):
    try:
        report = checking.check_entry(entry, tmp_path)
    except corpus.FetchError as exc:
        pytest.skip(str(exc))
    assert checking.tooling_gaps(report) == []
    assert sum(r.status == "pass" for r in report.routes) >= 4
    if entry.name == "minilm-l6-dir":  # transformers' BertModel: the legacy position_ids buffer is a note
        assert all(any("position_ids" in n for n in r.notes) for r in report.routes if r.status == "pass")
