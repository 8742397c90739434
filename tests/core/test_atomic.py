"""Atomic outputs: a final name holds a complete output or nothing, even under SIGKILL."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from portability.adapters.safetensors import format as safetensors_format
from portability.core.atomic import TMP_MARKER, atomic_output, remove_stale_temps, temp_sibling
from portability.core.checkpoint import Checkpoint
from portability.core.inspection import inspect_checkpoint
from portability.core.tensors import as_array
from portability.errors import FormatError, UsageError, WriteError


def temps(directory: Path) -> list[str]:
    return [p.name for p in directory.iterdir() if ".portability-" in p.name]


def test_success_publishes_and_leaves_no_temp(tmp_path):
    with atomic_output(tmp_path / "out.bin") as tmp:
        assert tmp.parent == tmp_path and TMP_MARKER in tmp.name and tmp.suffix == ".bin"
        tmp.write_bytes(b"data")
        assert not (tmp_path / "out.bin").exists()
    assert (tmp_path / "out.bin").read_bytes() == b"data"
    assert temps(tmp_path) == []


def test_failure_removes_temp_and_keeps_old_output(tmp_path):
    final = tmp_path / "out.bin"
    final.write_bytes(b"old")
    with pytest.raises(RuntimeError):
        with atomic_output(final, overwrite=True) as tmp:
            tmp.write_bytes(b"half")
            raise RuntimeError("boom")
    assert final.read_bytes() == b"old" and temps(tmp_path) == []


def test_os_error_becomes_write_error(tmp_path):
    with pytest.raises(WriteError, match=r"out.bin failed: No space left on device; nothing was written"):
        with atomic_output(tmp_path / "out.bin") as tmp:
            tmp.write_bytes(b"x")
            raise OSError(28, "No space left on device")
    assert list(tmp_path.iterdir()) == []


def test_errors_name_the_final_path_not_the_temporary_one(tmp_path):
    with pytest.raises(FormatError) as info:
        with atomic_output(tmp_path / "out.safetensors") as tmp:
            raise FormatError(f"{tmp}: something is wrong")
    assert str(info.value) == f"{tmp_path / 'out.safetensors'}: something is wrong"


def test_existing_destination_needs_overwrite(tmp_path):
    (tmp_path / "out.bin").write_bytes(b"keep")
    with pytest.raises(UsageError, match="--overwrite"):
        with atomic_output(tmp_path / "out.bin"):
            pass
    assert (tmp_path / "out.bin").read_bytes() == b"keep"


def test_directory_output_replaces_directory(tmp_path):
    final = tmp_path / "shards"
    final.mkdir()
    (final / "old.txt").write_text("old")
    with atomic_output(final, overwrite=True) as tmp:
        tmp.mkdir()
        (tmp / "new.txt").write_text("new")
    assert [p.name for p in final.iterdir()] == ["new.txt"]
    assert temps(tmp_path) == []


def test_stale_temps_of_dead_writers_are_removed(tmp_path):
    final = tmp_path / "m.safetensors"
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale = tmp_path / f".m{TMP_MARKER}{dead.pid}-0000abcd.safetensors"
    stale.write_bytes(b"partial")
    live = temp_sibling(final)  # this process is alive: its temp must stay
    live.write_bytes(b"in progress")
    assert remove_stale_temps(final) == [stale]
    assert live.exists() and not stale.exists()


def big_checkpoint(megabytes: int) -> Checkpoint:
    rng = np.random.default_rng(0)
    count = 12
    per = megabytes * 2**20 // count // 4
    return Checkpoint(tensors={f"layer.{i}.weight": rng.standard_normal(per, dtype=np.float32) for i in range(count)},
                      metadata={"purpose": "kill test"})


def wait_for_temp_bytes(directory: Path, proc: subprocess.Popen, minimum: int, timeout: float = 20.0) -> None:
    """Block until a temporary output of at least ``minimum`` bytes exists (or the child exits)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        for path in directory.iterdir():
            if TMP_MARKER in path.name:
                try:
                    size = path.stat().st_size if path.is_file() else sum(p.stat().st_size for p in path.iterdir())
                except OSError:  # renamed into place meanwhile
                    continue
                if size >= minimum:
                    return
        time.sleep(0.005)


def assert_absent_or_complete(dst: Path, source: Checkpoint) -> str:
    if not dst.exists():
        return "absent"
    info = inspect_checkpoint(dst)
    assert info["integrity"]["status"] == "ok", info["integrity"]
    back = safetensors_format.read(dst)
    assert list(back.tensors) == list(source.tensors)
    for name, tensor in source.tensors.items():
        assert np.array_equal(as_array(back.tensors[name]), tensor), name
    return "complete"


@pytest.mark.slow
def test_sigkill_during_convert_leaves_no_partial_output(tmp_path):
    source = big_checkpoint(120)
    src = tmp_path / "src.safetensors"
    safetensors_format.write(source, src)
    outcomes = []
    # Kills at fixed delays (anywhere from start-up to the end), then kills triggered by a
    # temporary output of a given size, which land in the middle of the write for sure.
    plans = [("delay", 0.3), ("delay", 1.0), ("delay", 2.0), ("bytes", 1), ("bytes", 40 * 2**20),
             ("bytes", 100 * 2**20)]
    for number, (kind, when) in enumerate(plans):
        sharded = number % 2 == 1
        out_dir = tmp_path / f"run{number}"
        out_dir.mkdir()
        dst = out_dir / ("shards" if sharded else "out.safetensors")
        args = [sys.executable, "-m", "portability.cli", "convert", str(src), str(dst)]
        proc = subprocess.Popen(args + (["--shard-size", "30MB"] if sharded else []),
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if kind == "delay":
            time.sleep(when)
        else:
            wait_for_temp_bytes(out_dir, proc, when)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        outcome = assert_absent_or_complete(dst, source)
        outcomes.append((kind, when, outcome, proc.returncode))
        if outcome == "absent" and number >= len(plans) - 2:
            # A rerun (single file and sharded) cleans up after the killed writer and completes.
            assert subprocess.run(args + (["--shard-size", "30MB"] if sharded else []),
                                  capture_output=True, timeout=120).returncode == 0
            assert assert_absent_or_complete(dst, source) == "complete"
            assert temps(out_dir) == []
    killed_mid_write = [o for o in outcomes if o[0] == "bytes" and o[2] == "absent"]
    assert killed_mid_write, outcomes  # the size-triggered kills did interrupt a write


@pytest.mark.slow
def test_sigterm_during_convert_cleans_up(tmp_path):
    src = tmp_path / "src.safetensors"
    safetensors_format.write(big_checkpoint(60), src)
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    dst = out_dir / "out.safetensors"
    proc = subprocess.Popen([sys.executable, "-m", "portability.cli", "convert", str(src), str(dst)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wait_for_temp_bytes(out_dir, proc, 4 * 2**20)
    proc.send_signal(signal.SIGTERM)
    _out, err = proc.communicate(timeout=60)
    if proc.returncode == 0:  # finished before the signal arrived: then it must be complete
        assert inspect_checkpoint(dst)["integrity"]["status"] == "ok"
        return
    assert proc.returncode == 130 and err.strip() == "interrupted"
    assert not dst.exists() and temps(out_dir) == []


@pytest.mark.parametrize("durable", [True, False])
def test_convert_flushes_to_disk_only_when_durable(tmp_path, monkeypatch, durable):
    from portability.core import atomic, file_copy
    from portability.core.conversion import convert

    src = tmp_path / "a.safetensors"
    ckpt = Checkpoint(tensors={"w": np.arange(2048, dtype=np.float32), "b": np.ones(3, np.float16)})
    safetensors_format.write(ckpt, src)
    flushed = []
    monkeypatch.setattr(atomic, "fsync_tree", lambda path: flushed.append(("tree", path.name)))
    monkeypatch.setattr(atomic, "_fsync_dir", lambda path: flushed.append(("dir", path.name)))
    monkeypatch.setattr(file_copy, "start_writeback", lambda fd, offset, length: flushed.append(("hint", fd)))
    convert(src, tmp_path / "b.safetensors", durable=durable)
    back = safetensors_format.read(tmp_path / "b.safetensors")
    assert {n: as_array(t).tobytes() for n, t in back.tensors.items()} == {
        n: t.tobytes() for n, t in ckpt.tensors.items()}
    kinds = sorted({kind for kind, _ in flushed})
    assert kinds == (["dir", "hint", "tree"] if durable else [])
    assert temps(tmp_path) == []
