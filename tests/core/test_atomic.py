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


SLOW_WRITER = Path(__file__).with_name("slow_writer.py")


def slowed_convert(markers: Path, pause_after: int, *args, **popen) -> subprocess.Popen:
    """``portability convert ARGS`` whose writer pauses once ``pause_after`` bytes of tensor
    data are in its temporary output (see ``slow_writer.py``); stdout is a pipe."""
    markers.mkdir()
    return subprocess.Popen([sys.executable, str(SLOW_WRITER), str(markers), str(pause_after), "convert",
                             *map(str, args)], stdout=subprocess.PIPE, **popen)


def wait_for_pause(proc: subprocess.Popen) -> int:
    """Block until the writer has paused mid-output; returns how many bytes it had copied.
    A convert that ends without pausing fails the test (it would have tested nothing)."""
    line = proc.stdout.readline()
    if isinstance(line, bytes):
        line = line.decode()
    assert line.startswith("paused "), f"the convert ended (status {proc.wait()}) without pausing mid-write"
    return int(line.split()[1])


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
    # Kills at fixed delays (anywhere from start-up to the end: either outcome is right),
    # then kills while the writer is paused with that many bytes written (mid-write for sure).
    plans = [("delay", 0.3), ("delay", 1.0), ("delay", 2.0), ("bytes", 1), ("bytes", 40 * 2**20),
             ("bytes", 100 * 2**20)]
    for number, (kind, when) in enumerate(plans):
        sharded = number % 2 == 1
        out_dir = tmp_path / f"run{number}"
        out_dir.mkdir()
        dst = out_dir / ("shards" if sharded else "out.safetensors")
        options = ["--shard-size", "30MB"] if sharded else []
        if kind == "delay":
            proc = subprocess.Popen([sys.executable, "-m", "portability.cli", "convert", str(src), str(dst),
                                     *options], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            time.sleep(when)
        else:
            proc = slowed_convert(tmp_path / f"markers{number}", int(when), src, dst, *options,
                                  stderr=subprocess.DEVNULL)
            wait_for_pause(proc)
            assert temps(out_dir), "the temporary output exists while the writer is paused"
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()
        outcome = assert_absent_or_complete(dst, source)
        if kind == "bytes":
            assert outcome == "absent", (number, kind, when)  # killed mid-write: nothing published
        if outcome == "absent" and number >= len(plans) - 2:
            # A rerun (single file and sharded) cleans up after the killed writer and completes.
            assert subprocess.run([sys.executable, "-m", "portability.cli", "convert", str(src), str(dst),
                                   *options], capture_output=True, timeout=120).returncode == 0
            assert assert_absent_or_complete(dst, source) == "complete"
            assert temps(out_dir) == []


@pytest.mark.slow
def test_sigterm_during_convert_cleans_up(tmp_path):
    src = tmp_path / "src.safetensors"
    safetensors_format.write(big_checkpoint(60), src)
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    dst = out_dir / "out.safetensors"
    markers = tmp_path / "markers"
    proc = slowed_convert(markers, 4 * 2**20, src, dst, stderr=subprocess.PIPE, text=True)
    copied = wait_for_pause(proc)
    (temp,) = [out_dir / name for name in temps(out_dir)]
    assert temp.stat().st_size >= copied >= 4 * 2**20 and not dst.exists()  # half-written
    proc.send_signal(signal.SIGTERM)
    _out, err = proc.communicate(timeout=120)
    assert (markers / "interrupted-while-paused").exists()  # the signal landed mid-write
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
