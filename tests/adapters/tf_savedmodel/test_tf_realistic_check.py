"""PyTorch models exported to ONNX with LSTM, Pad, Resize and ConvTranspose pass `portability check`.

Runs the CLI in-process on the torch and tf-savedmodel routes at default
tolerances, with the models of ``realistic_models`` and a fixed input batch.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("tensorflow")
onnx = pytest.importorskip("onnx")

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))  # realistic_models:NAME specs resolve from here
import realistic_models

from portability.cli import main

CASES = {"lstm_tagger": ({"LSTM"}, realistic_models.lstm_inputs),
         "upsampler": ({"Pad", "Resize", "ConvTranspose"}, realistic_models.upsampler_inputs)}


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(CASES))
def test_every_tf_route_passes_at_default_tolerances(name, tmp_path):
    ops, make_inputs = CASES[name]
    model = getattr(realistic_models, name)()
    ckpt, inputs = tmp_path / f"{name}.pt", tmp_path / "inputs.npz"
    torch.save(model.state_dict(), ckpt)
    np.savez(inputs, **make_inputs())
    report = tmp_path / "report.json"
    code = main(["check", str(ckpt), "--model", f"realistic_models:{name}", "--inputs", str(inputs),
                 "--formats", "torch,onnx,tf-savedmodel", "--workers", "0", "-q", "--json", str(report)])
    routes = json.loads(report.read_text())["routes"]
    verdicts = {"->".join(r["route"]): (r["status"], r.get("reason")) for r in routes}
    assert code == 0, verdicts
    tf_routes = [k for k in verdicts if "tf-savedmodel" in k]
    assert len(tf_routes) == 2 and all(verdicts[k][0] == "pass" for k in tf_routes)


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(CASES))
def test_the_export_really_uses_the_hard_ops(name, tmp_path):
    from portability.adapters.onnx.export import export_model

    ops, make_inputs = CASES[name]
    result = export_model(getattr(realistic_models, name)(), make_inputs(), tmp_path / "m.onnx", optimize=False)
    kinds = {n.op_type for n in onnx.load(str(result.model_path)).graph.node}
    assert ops <= kinds, kinds
