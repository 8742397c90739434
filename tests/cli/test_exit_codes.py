"""Exit codes are a contract: the README, ``--help`` and the code agree, and an
internal error exits with the documented "no verdict" code, not an extra one."""

from __future__ import annotations

import re
from pathlib import Path

import portability.cli as cli_module
from portability.cli import EXIT_CODES_HELP, EXIT_ERROR, EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK

README = Path(__file__).resolve().parents[2] / "README.md"


def test_documented_codes_are_the_ones_the_code_uses():
    assert (EXIT_OK, EXIT_FAILED, EXIT_ERROR, EXIT_INTERRUPTED) == (0, 1, 2, 130)
    text = " ".join(README.read_text().split())
    assert "2 no verdict: bad usage, bad or damaged input, or an internal error" in text
    assert "130 interrupted" in text
    # Every "exit N" the README mentions is one of the documented codes.
    assert {int(n) for n in re.findall(r"\bexit (\d+)", text, flags=re.IGNORECASE)} <= {0, 1, 2, 130}


def test_help_lists_the_exit_codes(cli):
    result = cli("--help")
    assert result.code == 0
    help_text = " ".join(result.out.split())
    assert " ".join(EXIT_CODES_HELP.split()) in help_text


def test_internal_error_is_one_line_and_exits_2(cli, monkeypatch):
    def broken(*args, **kwargs):
        raise UnicodeDecodeError("utf-8", b"\xff", 0, 1, "invalid start byte")

    monkeypatch.setattr(cli_module, "app", broken)
    result = cli("inspect", "x.pt")
    assert result.code == EXIT_ERROR == 2
    assert result.err.startswith("error: internal error: UnicodeDecodeError:")
    assert result.err.count("\n") == 1 and "--debug" in result.err
