"""The package imports and runs without frameworks, and installs as `portability.*` only."""

from __future__ import annotations

import json
import os
import runpy
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FRAMEWORKS = ("torch", "tensorflow", "onnx", "onnxruntime", "keras", "jax")

BLOCK_FRAMEWORKS = textwrap.dedent(f"""
    import sys

    class BlockFrameworks:
        '''Act as if the frameworks were not installed.'''
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in {FRAMEWORKS!r}:
                raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
            return None

    sys.meta_path.insert(0, BlockFrameworks())
""")


def run_python(code: str, *args: str, env: dict | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=120,
                          env=env, cwd=cwd)


def test_import_and_help_do_not_import_frameworks():
    code = textwrap.dedent("""
        import json, sys
        import portability
        from portability.cli import main
        try:
            main(["--help"])
        except SystemExit:
            pass
        import portability.core.conversion, portability.core.inspection, portability.core.formats
        print(json.dumps(sorted(m for m in sys.modules if m.split(".")[0] in sys.argv[1:])))
    """)
    proc = run_python(code, *FRAMEWORKS)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout.strip().splitlines()[-1]) == []
    assert "Usage" in proc.stdout and "convert" in proc.stdout and "inspect" in proc.stdout


@pytest.mark.slow
def test_safetensors_works_with_frameworks_unimportable(tmp_path):
    code = BLOCK_FRAMEWORKS + textwrap.dedent("""
        import numpy as np
        import portability
        from portability.adapters.safetensors import format as safetensors_format
        from portability.core.checkpoint import Checkpoint
        from portability.cli import main
        safetensors_format.write(Checkpoint(tensors={"w": np.ones(3, np.float32)}), sys.argv[1] + "/a.safetensors")
        codes = [main(["convert", sys.argv[1] + "/a.safetensors", sys.argv[1] + "/d", "--shard-size", "1KB"]),
                 main(["inspect", sys.argv[1] + "/d"]),
                 main(["convert", sys.argv[1] + "/a.safetensors", sys.argv[1] + "/a.pt"])]
        print(codes)
    """)
    proc = run_python(code, str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().splitlines()[-1] == "[0, 0, 2]"
    # The torch route fails with one line saying what to install.
    assert "format 'torch' not available: torch is not installed" in proc.stderr and "portability[torch]" in proc.stderr
    assert not (tmp_path / "a.pt").exists()


@pytest.mark.slow
def test_help_runs_with_frameworks_unimportable():
    code = BLOCK_FRAMEWORKS + "from portability.cli import main\nsys.exit(main(['--help']))\n"
    import importlib.util

    if importlib.util.find_spec("typer._click") is not None:
        # This typer vendors click: click is no dependency of ours, so block it too.
        code = code.replace(repr(FRAMEWORKS), repr(FRAMEWORKS + ("click",)))
        assert "'click'" in code
    proc = run_python(code)
    assert proc.returncode == 0, proc.stderr
    assert "convert" in proc.stdout


def source_packages() -> set[str]:
    """Every package directory in the source tree, by its installed dotted name."""
    mapping = {"portability": ROOT / "portability", "portability.adapters": ROOT / "adapters",
               "portability.fixtures": ROOT / "fixtures"}
    found = set()
    for name, folder in mapping.items():
        for init in folder.rglob("__init__.py"):
            if "__pycache__" in init.parts:
                continue
            rel = init.parent.relative_to(folder).parts
            found.add(".".join((name, *rel)))
    return found


def source_files() -> list[str]:
    """Files a clone would ship under portability/, adapters/ and fixtures/ (git's view when available)."""
    folders = ("portability", "adapters", "fixtures")
    proc = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard", *folders],
                          cwd=ROOT, capture_output=True, text=True)
    if proc.returncode == 0 and proc.stdout.strip():
        names = proc.stdout.split()
    else:
        names = [str(p.relative_to(ROOT)) for f in folders for p in (ROOT / f).rglob("*") if p.is_file()]
    return sorted(n for n in names if (ROOT / n).is_file() and "__pycache__" not in n and not n.endswith(".pyc"))


def test_setup_discovers_every_subpackage():
    setup_module = runpy.run_path(str(ROOT / "setup.py"), run_name="portability_setup")
    assert setup_module["PACKAGE_ROOTS"]["portability.adapters"] == "adapters"
    assert set(setup_module["discover_packages"]()) == source_packages()


@pytest.mark.slow
def test_non_editable_install_imports_under_portability(tmp_path):
    src = tmp_path / "src"
    shipped = source_files()
    for rel in shipped + [n for n in ("pyproject.toml", "setup.py", "README.md", "LICENSE") if (ROOT / n).exists()]:
        (src / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / rel, src / rel)
    target = tmp_path / "site"
    proc = subprocess.run([sys.executable, "-m", "pip", "install", str(src), "--no-deps", "--no-build-isolation",
                           "--target", str(target), "-q", "--disable-pip-version-check"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert not (target / "adapters").exists() and not (target / "fixtures").exists()
    assert (target / "portability" / "adapters" / "safetensors" / "format.py").is_file()

    code = textwrap.dedent("""
        import importlib.util, json, sys
        import portability, portability.adapters.safetensors.format, portability.fixtures
        from portability.cli import main
        top = importlib.util.find_spec("adapters")
        print(json.dumps({"portability": portability.__file__,
                          "adapters": portability.adapters.safetensors.format.__file__,
                          "top_level_adapters": None if top is None else top.origin}))
        main(["--help"])
    """)
    env = {**os.environ, "PYTHONPATH": str(target)}
    proc = run_python(code, env=env, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    info = json.loads(proc.stdout.splitlines()[0])
    assert info["portability"].startswith(str(target))
    assert info["adapters"].startswith(str(target / "portability" / "adapters"))
    top = info["top_level_adapters"]
    assert top is None or not top.startswith(str(target))
    installed_as = {"portability": "portability", "adapters": "portability/adapters",
                    "fixtures": "portability/fixtures"}
    missing = [rel for rel in shipped
               if not (target / installed_as[rel.split("/")[0]] / rel.split("/", 1)[1]).is_file()]
    assert not missing, f"not installed (a package needs an __init__.py; data files need package-data): {missing[:10]}"
