"""Nothing in a torch checkpoint runs code unless the user says --trust-pickle."""

from __future__ import annotations

import pickle
import subprocess
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from portability.adapters.torch import state_dict as torch_state_dict
from portability.adapters.torch.safety import scan_pickle_globals
from portability.cli import main
from portability.core.formats import ReadOptions
from portability.errors import FormatError, UnsafeCheckpointError


class ModelConfig:
    """A custom class: unpickling it needs the global ``test_torch_safety.ModelConfig``."""

    def __init__(self, width: int = 4):
        self.width = width


class LeavesMarker:
    """Unpickling this would create a file: proof that code ran."""

    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_custom_global_is_refused_naming_it(tmp_path):
    torch.save({"w": torch.ones(2), "config": ModelConfig()}, tmp_path / "c.pt")
    with pytest.raises(UnsafeCheckpointError, match=r"ModelConfig") as info:
        torch_state_dict.read(tmp_path / "c.pt")
    assert "--trust-pickle" in str(info.value)
    assert "\n" not in str(info.value)


def test_cli_refusal_is_one_line_exit_2(tmp_path, capsys):
    torch.save({"w": torch.ones(2), "config": ModelConfig()}, tmp_path / "c.pt")
    code = main(["convert", str(tmp_path / "c.pt"), str(tmp_path / "c.safetensors")])
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1 and err.startswith("error: ")
    assert "ModelConfig" in err and "Traceback" not in err
    assert not (tmp_path / "c.safetensors").exists()


def test_trust_pickle_loads_then_names_the_key_without_portable_form(tmp_path, capsys):
    torch.save({"w": torch.ones(2), "config": ModelConfig()}, tmp_path / "c.pt")
    with pytest.raises(FormatError, match=r"'config'.*ModelConfig.*no portable form"):
        torch_state_dict.read(tmp_path / "c.pt", ReadOptions(trust_pickle=True))
    code = main(["convert", str(tmp_path / "c.pt"), str(tmp_path / "c.safetensors"), "--trust-pickle"])
    err = capsys.readouterr().err
    assert code == 2 and "'config'" in err and err.count("\n") == 1
    assert not (tmp_path / "c.safetensors").exists()


class Settings(dict):
    """A dict subclass: needs a global to unpickle, but holds plain values."""


def test_trust_pickle_converts_a_file_whose_globals_are_plain_values(tmp_path):
    torch.save({"w": torch.ones(2), "counts": Settings(a=2)}, tmp_path / "c.pt")
    with pytest.raises(UnsafeCheckpointError, match="Settings"):
        torch_state_dict.read(tmp_path / "c.pt")
    ckpt = torch_state_dict.read(tmp_path / "c.pt", ReadOptions(trust_pickle=True))
    assert ckpt.training.extra["counts"] == {"a": 2}


@pytest.mark.parametrize("writer", ["torch_zip", "plain_pickle"])
def test_malicious_reduce_does_not_run(tmp_path, writer):
    marker = tmp_path / "MARKER"
    payload = {"w": torch.ones(2), "evil": LeavesMarker(str(marker))}
    path = tmp_path / "evil.pt"
    if writer == "torch_zip":
        torch.save(payload, path)
    else:
        path.write_bytes(pickle.dumps(payload, protocol=4))
    assert not marker.exists()
    with pytest.raises(UnsafeCheckpointError, match=r"open"):
        torch_state_dict.read(path)
    assert not marker.exists()
    assert main(["inspect", str(path)]) == 2
    assert not marker.exists()


@pytest.mark.slow
def test_cli_subprocess_runs_nothing(tmp_path):
    marker = tmp_path / "MARKER"
    torch.save({"w": torch.ones(2), "evil": LeavesMarker(str(marker))}, tmp_path / "evil.pt")
    proc = subprocess.run([sys.executable, "-m", "portability.cli", "convert", str(tmp_path / "evil.pt"),
                           str(tmp_path / "out.safetensors")], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr and proc.stderr.count("\n") == 1
    assert not marker.exists() and not (tmp_path / "out.safetensors").exists()


def test_numpy_rng_state_is_allowed_without_trust(tmp_path):
    np.random.seed(3)
    torch.save({"w": torch.ones(2), "rng": {"numpy": np.random.get_state()}, "best": np.float64(0.5)},
               tmp_path / "c.pt")
    ckpt = torch_state_dict.read(tmp_path / "c.pt")
    assert ckpt.training.rng["numpy"][0] == "MT19937"
    assert float(ckpt.training.extra["best"]) == 0.5


def test_scan_pickle_globals_reads_opcodes_only(tmp_path):
    path = tmp_path / "p.pkl"
    path.write_bytes(pickle.dumps({"c": ModelConfig(), "m": LeavesMarker(str(tmp_path / "M"))}, protocol=4))
    names = scan_pickle_globals(path)
    assert f"{__name__}.ModelConfig" in names
    assert "io.open" in names
    assert not (tmp_path / "M").exists()


def test_pickled_module_is_refused_then_converted_when_trusted(tmp_path):
    model = torch.nn.Sequential(torch.nn.Linear(3, 2))
    torch.save(model, tmp_path / "model.pt")
    with pytest.raises(UnsafeCheckpointError, match=r"torch.nn.modules.container.Sequential"):
        torch_state_dict.read(tmp_path / "model.pt")
    ckpt = torch_state_dict.read(tmp_path / "model.pt", ReadOptions(trust_pickle=True))
    assert list(ckpt.tensors) == ["0.weight", "0.bias"]
    assert np.array_equal(ckpt.tensors["0.weight"], model[0].weight.detach().numpy())
