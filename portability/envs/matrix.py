"""Run this project's test suite on the lowest or the newest versions its ranges allow.

    python -m portability.envs.matrix lowest [PYTEST ARGS...]    # e.g. -m "not slow"
    python -m portability.envs.matrix newest [PYTEST ARGS...]

Run from the repository root. The environment is built with uv into ``.venv-lowest``
or ``.venv-newest``: ``lowest`` resolves every direct dependency of
``.[all,test]`` to the lowest release its range admits (uv's ``--resolution
lowest-direct``), ``newest`` to the highest. torch is the exception: an open range
pulls a multi-GB CUDA build, so it is installed first with pip at a fixed version
(``PORTABILITY_MATRIX_TORCH``, default 2.13.0, the CPU build the project machines hold
locally; a newer torch from the package index is a CUDA build with gigabytes of
``nvidia-*`` wheels) and held there by a constraint. The resolved versions are printed before the tests run; the exit
status is pytest's.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

from portability.envs.builder import uv_binary

TORCH = {"lowest": "2.13.0", "newest": "2.13.0"}
SHOWN = ("torch", "tensorflow-cpu", "keras", "onnx", "onnxruntime", "onnxscript", "ml-dtypes", "numpy", "protobuf",
         "safetensors", "transformers", "tf2onnx", "typer", "rich", "xxhash", "isal", "ray", "uv")


def build(kind: str, root: Path) -> Path:
    """Build ``.venv-<kind>`` with uv (torch through pip first); returns its interpreter.

    Raises:
        subprocess.CalledProcessError: a step failed (its output is on the terminal).
    """
    uv = uv_binary()
    venv = root / f".venv-{kind}"
    subprocess.run([uv, "venv", "--quiet", "--seed", "--clear", "--python", sys.executable, str(venv)], check=True)
    python = venv / "bin" / "python"
    torch = os.environ.get("PORTABILITY_MATRIX_TORCH", TORCH[kind])
    subprocess.run([str(python), "-m", "pip", "install", "-q", f"torch=={torch}"], check=True)
    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as pin:
        pin.write(f"torch=={torch}\n")
    resolution = "lowest-direct" if kind == "lowest" else "highest"
    try:
        subprocess.run([uv, "pip", "install", "--quiet", "--python", str(python), "--resolution", resolution,
                        "--constraint", pin.name, "-e", ".[all,test]"], check=True, cwd=root)
    finally:
        os.unlink(pin.name)
    return python


def resolved(python: Path) -> list[str]:
    """``name==version`` of the packages that matter, as installed."""
    out = subprocess.run([str(python), "-m", "pip", "list", "--format=freeze"], capture_output=True, text=True).stdout
    wanted = {n.replace("_", "-") for n in SHOWN}
    return [line for line in out.splitlines() if line.split("==")[0].lower().replace("_", "-") in wanted]


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in TORCH:
        print(__doc__, file=sys.stderr)
        return 2
    root = Path.cwd()
    if not (root / "pyproject.toml").is_file():
        print("error: run from the repository root (no pyproject.toml here)", file=sys.stderr)
        return 2
    kind, pytest_args = argv[0], argv[1:]
    python = build(kind, root)
    print(f"resolved ({kind} inside the ranges):")
    for line in resolved(python):
        print(f"  {line}")
    env = {**os.environ, "PORTABILITY_CACHE": str(root / ".cache" / f"portability-{kind}")}
    env.pop("VIRTUAL_ENV", None)
    return subprocess.run([str(python), "-m", "pytest", "-q", *pytest_args], cwd=root, env=env).returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
