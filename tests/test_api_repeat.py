"""``portability.convert``, ``.compare``, ``.check`` and ``.load`` stay callable however often
they are used: a submodule of the same name, once imported, would replace the function."""

from __future__ import annotations

import pkgutil
import subprocess
import sys
import textwrap

import pytest

import portability

ENTRY_POINTS = ("convert", "compare", "check", "load")

SCRIPT = textwrap.dedent("""
    import sys
    import numpy as np
    import torch
    import portability

    d = sys.argv[1]
    torch.save({"w": torch.arange(4.0), "b": torch.ones(2)}, f"{d}/a.pt")
    for n in range(3):
        portability.convert(f"{d}/a.pt", f"{d}/a{n}.safetensors")
        assert len(portability.load(f"{d}/a{n}.safetensors").tensors) == 2
        report = portability.compare(f"{d}/a.pt", f"{d}/a{n}.safetensors", workers=0)
        assert report.routes[0].weights.bitwise_equal == 2, report.routes[0]
        report = portability.check(f"{d}/a.pt", routes="torch->safetensors", workers=0)
        assert report.routes[0].status == "pass", report.routes[0].reason
    for name in ("convert", "compare", "check", "load"):
        assert callable(getattr(portability, name)), name
    print("ok")
""")


@pytest.mark.slow
def test_entry_points_called_repeatedly_in_one_process(tmp_path):
    done = subprocess.run([sys.executable, "-c", SCRIPT, str(tmp_path)], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "ok"


def test_no_submodule_shadows_an_entry_point():
    submodules = {m.name for m in pkgutil.iter_modules(portability.__path__)}
    assert not submodules & set(ENTRY_POINTS)
