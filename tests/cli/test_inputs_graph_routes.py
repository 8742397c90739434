"""``--inputs`` reaches the graph export on every graph route, in ``check`` and in ``convert``.

The model is a ``package.module:factory`` whose forward takes ``x`` of shape
(batch, 4): nothing but ``--inputs`` can tell the exporter that, so a route that
dropped the option would fail asking for a config (``vocab_size``).
"""

from __future__ import annotations

import fitting_models
import numpy as np
import pytest
import torch

pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

SPEC = "fitting_models:generator"
GRAPH_ROUTES = {
    "onnx": ["torch->onnx", "torch->onnx->torch"],
    "tf-savedmodel": ["torch->tf-savedmodel", "torch->tf-savedmodel->torch"],
}


@pytest.fixture
def files(tmp_path):
    torch.save(fitting_models.generator().state_dict(), tmp_path / "gen.pt")
    np.savez(tmp_path / "x.npz", **fitting_models.vec_inputs())
    return tmp_path / "gen.pt", tmp_path / "x.npz"


def _needs(fmt: str) -> None:
    if fmt == "tf-savedmodel":
        pytest.importorskip("tensorflow")


@pytest.mark.slow
@pytest.mark.parametrize("fmt", sorted(GRAPH_ROUTES))
def test_check_passes_inputs_to_every_graph_route(files, fmt, cli):
    _needs(fmt)
    checkpoint, inputs = files
    result = cli("check", checkpoint, "--model", SPEC, "--inputs", inputs, "--routes", ",".join(GRAPH_ROUTES[fmt]),
                 "--workers", "0", "--quiet")
    assert result.code == 0, result.out + result.err
    assert "PASSED: 2 pass, 0 fail, 0 skipped, 0 error" in result.out


@pytest.mark.slow
@pytest.mark.parametrize("fmt", sorted(GRAPH_ROUTES))
def test_convert_passes_inputs_to_the_export_and_back(files, fmt, cli, tmp_path):
    _needs(fmt)
    checkpoint, inputs = files
    graph = tmp_path / ("gen.onnx" if fmt == "onnx" else "gen_savedmodel")
    result = cli("convert", checkpoint, graph, "--to", fmt, "--model", SPEC, "--inputs", inputs)
    assert result.code == 0, result.err
    assert "4 tensors" in result.out
    back = cli("convert", graph, tmp_path / "back.pt")
    assert back.code == 0, back.err
    restored = torch.load(tmp_path / "back.pt", weights_only=True)
    for name, value in fitting_models.generator().state_dict().items():
        assert torch.equal(restored[name], value), name


def test_without_inputs_the_export_says_what_it_needs(files, cli, tmp_path):
    checkpoint, _ = files
    result = cli("convert", checkpoint, tmp_path / "gen.onnx", "--model", SPEC)
    assert result.code == 2 and not (tmp_path / "gen.onnx").exists()
    assert "--inputs" in result.err
