"""``portability check`` and ``portability compare``: exit codes, report files, one-line errors."""

from __future__ import annotations

import json
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/: the toy_models:NAME specs live there
import toy_models

from portability.cli import main
from portability.reports.schema import validate


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli-toy")
    ckpt = root / "toy.pt"
    model = toy_models.mlp()
    torch.save(model.state_dict(), ckpt)
    inputs = root / "inputs.npz"
    np.savez(inputs, **toy_models.inputs())
    bumped = {k: v.clone() for k, v in model.state_dict().items()}
    bumped["fc1.weight"][0, 0] += 0.5
    bad = root / "bumped.pt"
    torch.save(bumped, bad)
    return ckpt, inputs, bad


def test_check_passes_with_exit_0_and_writes_every_report(toy, tmp_path, capsys):
    ckpt, inputs, _ = toy
    out = tmp_path / "out"
    code = main(["check", str(ckpt), "--model", "toy_models:mlp", "--inputs", str(inputs), "--formats",
                 "torch,safetensors", "--workers", "0", "--json", str(out / "r.json"), "--junit",
                 str(out / "r.xml"), "--markdown", str(out / "r.md")])
    assert code == 0
    printed = capsys.readouterr().out
    assert "torch->safetensors->torch" in printed and "PASSED: 2 pass, 0 fail, 0 skipped, 0 error" in printed
    data = json.loads((out / "r.json").read_text())
    assert validate(data) == [] and [r["status"] for r in data["routes"]] == ["pass", "pass"]
    assert len(ET.parse(out / "r.xml").getroot().find("testsuite").findall("testcase")) == 2
    assert (out / "r.md").read_text().startswith("## portability check: passed")


def test_compare_of_a_perturbed_checkpoint_exits_1_with_the_reason(toy, tmp_path, capsys):
    ckpt, inputs, bad = toy
    code = main(["compare", str(ckpt), str(bad), "--model", "toy_models:mlp", "--inputs", str(inputs), "-q",
                 "--in-process", "--json", str(tmp_path / "c.json")])
    assert code == 1
    assert "FAILED: 0 pass, 1 fail" in capsys.readouterr().out
    (route,) = json.loads((tmp_path / "c.json").read_text())["routes"]
    assert route["route"] == ["torch", "torch"]
    assert route["reason"].startswith("weights: 1 tensor(s) differ beyond atol 0; worst 'fc1.weight'")


def test_tolerance_overrides_reach_the_verdict(toy, capsys):
    ckpt, inputs, bad = toy
    args = ["compare", str(ckpt), str(bad), "--model", "toy_models:mlp", "--inputs", str(inputs), "-q",
            "--in-process", "--weights-atol", "none"]
    assert main(args) == 1  # outputs still drift
    assert main(args + ["--atol", "torch->torch@output=10"]) == 0
    assert main(args + ["--atol", "10", "--min-r", "0"]) == 0
    capsys.readouterr()


@pytest.mark.parametrize("args, message", [
    (["check"], "give either a checkpoint"),
    (["check", "{ckpt}", "--fixture", "mlp"], "either CHECKPOINT or --fixture, not both"),
    (["check", "{ckpt}", "--formats", "torch,keras"], "unknown format 'keras'"),
    (["check", "{ckpt}", "--routes", "torch"], "route 'torch' needs at least two formats"),
    (["check", "{ckpt}", "--atol", "output=abc"], "--atol 'output=abc': 'abc' is not a non-negative number"),
    (["check", "{ckpt}", "--min-r", "output=0.5"], "R is per route, not per output"),
    (["check", "/nonexistent/model.pt"], "/nonexistent/model.pt: no such file or directory"),
    (["compare", "{ckpt}", "/nonexistent/b.onnx"], "no such file or directory"),
])
def test_usage_and_input_errors_exit_2_with_one_line(toy, capsys, args, message):
    ckpt, _, _ = toy
    code = main([a.format(ckpt=ckpt) for a in args])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("error: ") and message in err and len(err.strip().splitlines()) == 1


def test_unknown_option_is_a_usage_error(capsys):
    assert main(["check", "--no-such-option"]) == 2
