"""`portability convert` on bad input: one-line error, non-zero exit, nothing written."""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
import textwrap
from types import SimpleNamespace

import numpy as np
import pytest

from portability.adapters.safetensors import format as safetensors_format
from portability.core.checkpoint import Checkpoint
from portability.core.formats import WriteOptions


def raw_safetensors(path, header: dict, data: bytes, *, length: int | None = None) -> None:
    """Write a safetensors file byte by byte (so it can be wrong in any way)."""
    text = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(text) if length is None else length) + text + data)


def small_checkpoint(n: int = 4) -> Checkpoint:
    return Checkpoint(tensors={f"block.{i}.weight": np.full((16, 16), i, dtype=np.float32) for i in range(n)})


F32x4 = {"dtype": "F32", "shape": [4]}
BAD_SAFETENSORS = {
    "header_beyond_file": (lambda p: raw_safetensors(p, {"w": {**F32x4, "data_offsets": [0, 16]}}, b"\0" * 16,
                                                     length=10_000), ["runs past the end"]),
    "invalid_json": (lambda p: p.write_bytes(struct.pack("<Q", 12) + b'{"w": [1, 2' + b"\0" * 16),
                     ["not valid JSON"]),
    "overlapping_offsets": (lambda p: raw_safetensors(p, {"a": {**F32x4, "data_offsets": [0, 16]},
                                                          "b": {**F32x4, "data_offsets": [8, 24]}}, b"\0" * 24),
                            ["'a'", "'b'", "overlap"]),
    "out_of_range_offsets": (lambda p: raw_safetensors(p, {"w": {**F32x4, "data_offsets": [0, 16]}}, b"\0" * 8),
                             ["'w'", "past the end"]),
    "negative_offsets": (lambda p: raw_safetensors(p, {"w": {**F32x4, "data_offsets": [16, 0]}}, b"\0" * 16),
                         ["'w'", "out of order"]),
    "byte_count_mismatch": (lambda p: raw_safetensors(p, {"w": {"dtype": "F32", "shape": [3],
                                                                "data_offsets": [0, 16]}}, b"\0" * 16),
                            ["'w'", "need 12 bytes", "cover 16"]),
    "unknown_dtype": (lambda p: raw_safetensors(p, {"w": {"dtype": "Q7", "shape": [4], "data_offsets": [0, 16]}},
                                                b"\0" * 16), ["'w'", "'Q7'"]),
    "bad_shape": (lambda p: raw_safetensors(p, {"w": {"dtype": "F32", "shape": [-4], "data_offsets": [0, 16]}},
                                            b"\0" * 16), ["'w'", "shape"]),
    "too_short": (lambda p: p.write_bytes(b"\x01\x02"), ["too short"]),
}


@pytest.mark.parametrize("case", sorted(BAD_SAFETENSORS))
def test_corrupt_safetensors(tmp_path, cli, assert_clean_failure, case):
    make, words = BAD_SAFETENSORS[case]
    src = tmp_path / "bad.safetensors"
    make(src)
    dst = tmp_path / "out.safetensors"
    result = cli("convert", src, dst)
    assert_clean_failure(result, names=("bad.safetensors", *words), dst=dst)


def test_truncated_zip_pickle(tmp_path, cli, assert_clean_failure):
    torch = pytest.importorskip("torch")
    torch.save({"w": torch.randn(64, 64)}, tmp_path / "full.pt")
    raw = (tmp_path / "full.pt").read_bytes()
    (tmp_path / "cut.pt").write_bytes(raw[: len(raw) // 2])
    result = cli("convert", tmp_path / "cut.pt", tmp_path / "out.safetensors")
    assert_clean_failure(result, names=("cut.pt", "truncated or corrupt"), dst=tmp_path / "out.safetensors")


def test_unknown_extension(tmp_path, cli, assert_clean_failure):
    (tmp_path / "weights.xyz").write_bytes(b"\0" * 64)
    result = cli("convert", tmp_path / "weights.xyz", tmp_path / "out.safetensors")
    assert_clean_failure(result, names=("weights.xyz", "unknown extension", "'.xyz'"),
                         dst=tmp_path / "out.safetensors")


def test_index_naming_a_missing_shard(tmp_path, cli, assert_clean_failure):
    safetensors_format.write(small_checkpoint(), tmp_path / "src", WriteOptions(shard_size=1500))
    (tmp_path / "src" / "model-00002-of-00004.safetensors").unlink()
    result = cli("convert", tmp_path / "src", tmp_path / "out.safetensors")
    assert_clean_failure(result, names=("model-00002-of-00004.safetensors", "missing"),
                         dst=tmp_path / "out.safetensors")


def test_directory_with_no_checkpoint(tmp_path, cli, assert_clean_failure):
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "README.txt").write_text("nothing here")
    result = cli("convert", tmp_path / "src", tmp_path / "out.safetensors")
    assert_clean_failure(result, names=("src", "no checkpoint"), dst=tmp_path / "out.safetensors")


def test_missing_source(tmp_path, cli, assert_clean_failure):
    result = cli("convert", tmp_path / "nope.safetensors", tmp_path / "out.pt")
    assert_clean_failure(result, names=("nope.safetensors",), dst=tmp_path / "out.pt")


def test_destination_exists_without_overwrite(tmp_path, cli, assert_clean_failure):
    safetensors_format.write(small_checkpoint(), tmp_path / "src.safetensors")
    dst = tmp_path / "dst.safetensors"
    dst.write_bytes(b"precious")
    os.utime(dst, (1_000_000, 1_000_000))
    result = cli("convert", tmp_path / "src.safetensors", dst)
    assert_clean_failure(result, names=("dst.safetensors", "--overwrite"))
    assert dst.read_bytes() == b"precious" and dst.stat().st_mtime == 1_000_000
    assert cli("convert", tmp_path / "src.safetensors", dst, "--overwrite").code == 0
    assert safetensors_format.read(dst).checksummed


def test_destination_directory_exists_without_overwrite(tmp_path, cli, assert_clean_failure):
    safetensors_format.write(small_checkpoint(), tmp_path / "src.safetensors")
    (tmp_path / "dst").mkdir()
    (tmp_path / "dst" / "keep.txt").write_text("keep")
    result = cli("convert", tmp_path / "src.safetensors", tmp_path / "dst", "--to", "safetensors")
    assert_clean_failure(result, names=("dst",))
    assert [p.name for p in (tmp_path / "dst").iterdir()] == ["keep.txt"]


def test_corrupt_data_is_refused_and_nothing_written(tmp_path, cli, assert_clean_failure):
    safetensors_format.write(small_checkpoint(), tmp_path / "src.safetensors")
    raw = bytearray((tmp_path / "src.safetensors").read_bytes())
    raw[-3] ^= 0xFF  # inside the last tensor's data
    (tmp_path / "src.safetensors").write_bytes(bytes(raw))
    dst = tmp_path / "out.safetensors"
    result = cli("convert", tmp_path / "src.safetensors", dst)
    assert_clean_failure(result, names=("'block.3.weight'", "checksum mismatch"), dst=dst)


DISK_FULL = textwrap.dedent("""
    import resource, signal, sys
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # write() then fails with EFBIG, like a full disk
    resource.setrlimit(resource.RLIMIT_FSIZE, (int(sys.argv[1]), resource.RLIM_INFINITY))
    from portability.cli import main
    sys.exit(main(sys.argv[2:]))
""")


@pytest.mark.slow
@pytest.mark.parametrize("dst_name,extra", [("out.safetensors", []), ("out_dir", ["--shard-size", "700KB"]),
                                            ("out.pt", [])])
def test_write_failure_part_way(tmp_path, dst_name, extra, assert_clean_failure):
    if dst_name.endswith(".pt"):
        pytest.importorskip("torch")
    safetensors_format.write(Checkpoint(tensors={f"t{i}": np.full(50_000, i, np.float32) for i in range(8)}),
                             tmp_path / "src.safetensors")
    dst = tmp_path / dst_name
    proc = subprocess.run([sys.executable, "-c", DISK_FULL, "500000", "convert", tmp_path / "src.safetensors",
                           dst, *extra], capture_output=True, text=True, timeout=120)
    # Built in place: `from conftest import ...` is ambiguous with several conftest modules.
    result = SimpleNamespace(code=proc.returncode, out=proc.stdout, err=proc.stderr)
    assert_clean_failure(result,
                         names=(dst_name, "File too large", "nothing was written"), dst=dst)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["src.safetensors"]


@pytest.mark.slow
def test_debug_shows_the_traceback(tmp_path, cli_subprocess):
    (tmp_path / "weights.xyz").write_bytes(b"\0")
    result = cli_subprocess("--debug", "convert", tmp_path / "weights.xyz", tmp_path / "o.safetensors")
    assert result.code != 0
    assert "Traceback" in result.err and "FormatError" in result.err
    plain = cli_subprocess("convert", tmp_path / "weights.xyz", tmp_path / "o.safetensors")
    assert plain.code == 2 and "Traceback" not in plain.err and plain.err.count("\n") == 1


@pytest.mark.slow
def test_subprocess_corrupt_header_exits_2_with_one_line(tmp_path, cli_subprocess, assert_clean_failure):
    BAD_SAFETENSORS["overlapping_offsets"][0](tmp_path / "bad.safetensors")
    result = cli_subprocess("convert", tmp_path / "bad.safetensors", tmp_path / "o.safetensors")
    assert_clean_failure(result, names=("bad.safetensors", "overlap"), dst=tmp_path / "o.safetensors")


def test_good_conversion_reports_what_it_wrote(tmp_path, cli):
    safetensors_format.write(small_checkpoint(), tmp_path / "src.safetensors")
    result = cli("convert", tmp_path / "src.safetensors", tmp_path / "shards", "--shard-size", "1.5KB")
    assert result.code == 0, result.err
    assert "4 tensors" in result.out and "safetensors" in result.out
    assert len(list((tmp_path / "shards").glob("model-*-of-00004.safetensors"))) == 4


@pytest.mark.parametrize("args,words", [
    (["--shard-size", "lots"], ["'lots'", "size"]),
    (["--shard-size", "1MB", "--to", "torch"], ["--shard-size", "torch"]),
    (["--to", "keras"], ["'keras'", "supported"]),
])
def test_bad_options(tmp_path, cli, assert_clean_failure, args, words):
    safetensors_format.write(small_checkpoint(), tmp_path / "src.safetensors")
    result = cli("convert", tmp_path / "src.safetensors", tmp_path / "o.bin", *args)
    assert_clean_failure(result, names=tuple(words), dst=tmp_path / "o.bin")


@pytest.mark.parametrize("args,words", [(["convert", "--no-such-option"], ["--no-such-option"]),
                                        (["convert"], ["'src'"]), (["no-such-command"], ["no-such-command"])])
def test_command_line_mistakes_are_one_line(cli, assert_clean_failure, args, words):
    assert_clean_failure(cli(*args), names=tuple(words))


def test_no_fsync_converts_bitwise_and_says_nothing_more(cli, tmp_path, monkeypatch):
    from portability.core import atomic
    from portability.core.tensors import as_array

    src = tmp_path / "a.safetensors"
    safetensors_format.write(small_checkpoint(), src)
    flushed = []
    monkeypatch.setattr(atomic, "fsync_tree", lambda path: flushed.append(path))
    result = cli("convert", src, tmp_path / "b.safetensors", "--no-fsync")
    assert result.code == 0, result.err
    assert flushed == []
    back = safetensors_format.read(tmp_path / "b.safetensors")
    assert sorted(back.tensors) == sorted(small_checkpoint().tensors)
    for name, tensor in small_checkpoint().tensors.items():
        assert as_array(back.tensors[name]).tobytes() == tensor.tobytes(), name
