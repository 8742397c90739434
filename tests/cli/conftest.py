"""Shared helpers for CLI tests: run the command and check a clean failure."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from portability.core.atomic import TMP_MARKER


@dataclass
class CliResult:
    code: int
    out: str
    err: str


@pytest.fixture
def cli(capsys):
    """Run ``portability ARGS`` in this process; returns a ``CliResult``."""
    from portability.cli import main

    def run(*args) -> CliResult:
        capsys.readouterr()
        code = main([str(a) for a in args])
        captured = capsys.readouterr()
        return CliResult(code, captured.out, captured.err)

    return run


@pytest.fixture
def cli_subprocess():
    """Run ``python -m portability.cli ARGS`` in a child process; returns a ``CliResult``."""

    def run(*args, timeout: int = 120) -> CliResult:
        proc = subprocess.run([sys.executable, "-m", "portability.cli", *map(str, args)],
                              capture_output=True, text=True, timeout=timeout)
        return CliResult(proc.returncode, proc.stdout, proc.stderr)

    return run


def leftovers(directory: Path) -> list[str]:
    """Temporary outputs left in a directory (there should be none)."""
    return [p.name for p in directory.iterdir() if TMP_MARKER in p.name or ".portability-" in p.name]


@pytest.fixture
def assert_clean_failure():
    """Check a failure: exit code, one ``error:`` line naming something, no output, no temp files."""

    def check(result: CliResult, *, code: int = 2, names: tuple[str, ...] = (), dst: Path | None = None) -> None:
        assert result.code == code, result.err
        assert "Traceback" not in result.err
        lines = result.err.strip().splitlines()
        assert len(lines) == 1, result.err
        assert lines[0].startswith("error: ")
        for name in names:
            assert name in lines[0], (name, lines[0])
        if dst is not None:
            assert not dst.exists(), f"{dst} was written"
            assert leftovers(dst.parent) == []

    return check
