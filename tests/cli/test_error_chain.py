"""A typed error keeps its cause: one line without ``--debug``, the whole chain with it."""

from __future__ import annotations

import json
import struct

import pytest

from portability.errors import FormatError


@pytest.fixture
def bad_header(tmp_path):
    """A safetensors file whose header is not JSON (the reader raises FormatError from the
    JSONDecodeError)."""
    header = b"{not json"
    path = tmp_path / "bad.safetensors"
    path.write_bytes(struct.pack("<Q", len(header)) + header)
    return path


def test_the_reader_chains_the_decoder_error(bad_header):
    from portability.adapters.safetensors.format import read

    with pytest.raises(FormatError, match="header is not valid JSON") as info:
        read(bad_header)
    assert isinstance(info.value.__cause__, json.JSONDecodeError)


def test_without_debug_the_message_is_one_line(bad_header, cli_subprocess):
    result = cli_subprocess("inspect", bad_header)
    assert result.code == 2
    assert result.err.strip().splitlines() == [
        f"error: {bad_header}: header is not valid JSON (Expecting property name enclosed in double quotes: "
        "line 1 column 2 (char 1))"]


def test_with_debug_the_traceback_shows_the_cause(bad_header, cli_subprocess):
    result = cli_subprocess("--debug", "inspect", bad_header)
    assert result.code != 0
    cause, effect = result.err.split("The above exception was the direct cause of the following exception:")
    assert "json.decoder.JSONDecodeError: Expecting property name enclosed in double quotes" in cause
    assert f"portability.errors.FormatError: {bad_header}: header is not valid JSON" in effect


# ``raise X from None`` hides the cause from ``--debug``. Allowed only where the raised
# exception is itself the root cause (torch's wrapper around a failed write is dropped),
# and in the conformance runner, whose AssertionErrors are test verdicts, not typed errors.
ALLOWED_FROM_NONE = {"adapters/torch/state_dict.py": 1, "adapters/tf_savedmodel/conformance.py": 2}


def test_typed_errors_do_not_drop_their_cause():
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    found = {}
    for package in ("portability", "adapters", "fixtures"):
        for path in sorted((root / package).rglob("*.py")):
            count = path.read_text(encoding="utf-8").count(" from None")
            if count:
                found[path.relative_to(root).as_posix()] = count
    assert found == ALLOWED_FROM_NONE
