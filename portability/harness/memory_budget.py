"""How many routes can run at once in the memory there is, and which cannot run at all.

A route's worker peaks at about ``FRAMEWORK_BYTES`` (torch, TensorFlow and
onnxruntime once imported) plus a factor times the checkpoint's bytes, the
factor depending on the formats the route writes (``ROUTE_FACTOR``, measured
with ``benchmarks/scale.py``). The check's budget is the memory available when
it starts (``MemAvailable``) less ``HEADROOM``, or ``--max-memory``. Routes run
side by side only while their estimates fit in the budget together
(``MemoryGate``, consulted by ``workers.run_parallel``); a route whose estimate
alone passes the budget is skipped before it starts, with both figures in the
reason, so no worker is killed by the system for memory midway.

The reference (the source model run once in float32 and once in float64) has its
own estimate: the float64 copy takes 8 bytes per weight; where the budget cannot
hold it the reference runs without it (no float64 floor, and the route's note
says why) rather than not at all.

Disk is budgeted the same way: a route writes about the checkpoint's bytes per
step; a check in a temporary folder deletes each bundle's artifacts when it ends,
so routes run side by side only while their artifacts fit in the free space
together (less ``DISK_HEADROOM_BYTES``), and a route whose artifacts alone do not
fit is skipped with both figures rather than filling the disk.
"""

from __future__ import annotations

import json
import shutil
import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from portability.errors import UsageError

GIB = 2**30
# A worker with torch, TensorFlow and onnxruntime imported, after a route ran (measured: 0.8 GiB
# right after the imports, up to 1.0 GiB once the exporter and a SavedModel have run).
FRAMEWORK_BYTES = int(1.0 * GIB)
# Peak memory of a route's worker beyond FRAMEWORK_BYTES, in units of the checkpoint's bytes,
# by the format the route writes first (its later steps re-read what it wrote and peak lower).
# Measured on float32 GPT-2-style checkpoints of 0.4 to 2.3 GB (benchmarks/scale.py).
ROUTE_FACTOR = {"torch": 1.25, "safetensors": 1.25, "dcp": 1.25, "onnx": 1.5, "tf-savedmodel": 1.75}
# A SavedModel's serving graph compiles a model of at most 128 MiB whole and 64 MiB of a larger
# one as constants (``adapters/tf_savedmodel/compiled_weights.py``), which tracing and saving hold
# several times over. A 0.45 GB GPT-2's SavedModel step peaked at 2.23 GB with 64 MiB compiled
# and 3.53 GB with 128 MiB: beyond the frameworks and 1.75x the model, 5.5 and 12.4 bytes per
# compiled byte (benchmarks/scale.py).
WHOLE_MODEL_COMPILED_BYTES = 128 << 20
PARTLY_COMPILED_BYTES = 64 << 20
COMPILED_GRAPH_FACTOR = 13
# The reference: the model once (plus one group of tensors being loaded) and, for its float64
# run, the model converted in place to 8 bytes per element.
REFERENCE_FACTOR = 1.25
# Left free: a share of what is available, and at least this much.
HEADROOM = 0.15
MIN_HEADROOM_BYTES = GIB
# Left free on the disk the artifacts go to: a share of the free space, and at least this much.
DISK_HEADROOM_BYTES = 2 * GIB


def parse_memory(value: str | int | float | None) -> int | None:
    """``--max-memory``: ``"16GB"``, ``"1.5GiB"``, ``"8000000000"`` or a number of bytes.

    Raises:
        UsageError: not a positive size.
    """
    if value is None:
        return None
    if isinstance(value, (int, float)):
        if value <= 0:
            raise UsageError(f"--max-memory {value}: must be positive")
        return int(value)
    from portability.core.conversion import parse_size

    try:
        return parse_size(value)
    except UsageError as exc:
        raise UsageError(f"--max-memory {value!r}: {exc}") from exc


def available_bytes() -> int | None:
    """The memory the system can give without swapping (``MemAvailable``), or None where
    it cannot be read (not Linux)."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def budget_bytes(max_memory: int | None) -> int | None:
    """The budget: ``max_memory`` when given, else what is available less the headroom
    (None: unknown, nothing is limited)."""
    if max_memory is not None:
        return max_memory
    available = available_bytes()
    if available is None:
        return None
    return max(0, available - max(MIN_HEADROOM_BYTES, int(HEADROOM * available)))


def checkpoint_bytes(path: str | None) -> int:
    """The bytes of a checkpoint on disk: the file, or every file under the directory."""
    if not path:
        return 0
    p = Path(path)
    try:
        if p.is_dir():
            return sum(f.stat().st_size for f in p.rglob("*") if f.is_file())
        return p.stat().st_size
    except OSError:
        return 0


def route_estimate(route: Sequence[str], model_bytes: int) -> int:
    """The peak a worker reaches running ``route`` on a checkpoint of ``model_bytes``."""
    factor = max((ROUTE_FACTOR.get(fmt, 1.0) for fmt in route[1:]), default=1.0)
    compiled = compiled_graph_bytes(model_bytes) if "tf-savedmodel" in route[1:] else 0
    return FRAMEWORK_BYTES + int(factor * model_bytes) + compiled


def compiled_graph_bytes(model_bytes: int) -> int:
    """What tracing and saving a SavedModel's serving graph holds for the weights it
    compiles in, for a checkpoint of ``model_bytes``."""
    compiled = model_bytes if model_bytes <= WHOLE_MODEL_COMPILED_BYTES else PARTLY_COMPILED_BYTES
    return COMPILED_GRAPH_FACTOR * compiled


def reference_estimate(model_bytes: int, float64_bytes: int) -> int:
    """The peak of the reference's worker: the model, then its float64 copy in its place."""
    return FRAMEWORK_BYTES + max(int(REFERENCE_FACTOR * model_bytes), float64_bytes)


def float64_bytes(model_bytes: int, dtype_width: int = 4) -> int:
    """The bytes of a model's float64 copy, from its checkpoint's bytes and element width."""
    return model_bytes * 8 // max(1, dtype_width)


def gib(n: int) -> str:
    """``12.3 GiB``."""
    return f"{n / GIB:.1f} GiB"


def too_big(estimate: int, budget: int | None, what: str, max_memory: int | None) -> str | None:
    """The skip reason when ``estimate`` alone passes the budget, else None."""
    if budget is None or estimate <= budget:
        return None
    source = "--max-memory" if max_memory is not None else "available now, less the headroom"
    return (f"{what} needs about {gib(estimate)} of memory and {gib(budget)} is {source}; "
            "skipped rather than risk the system killing it (--max-memory overrides the budget)")


def disk_budget(folder: str | Path) -> int | None:
    """The bytes a check may write under ``folder``: its free space less the headroom
    (None: unknown)."""
    try:
        free = shutil.disk_usage(folder).free
    except OSError:
        return None
    return max(0, free - max(DISK_HEADROOM_BYTES, int(HEADROOM * free)))


def disk_estimate(route: Sequence[str], model_bytes: int) -> int:
    """The artifacts ``route`` writes: about the checkpoint's bytes per step."""
    return max(0, len(route) - 1) * model_bytes


def too_big_for_disk(estimate: int, budget: int | None, what: str, folder: str | Path) -> str | None:
    """The skip reason when a route's artifacts alone pass the free disk space, else None."""
    if budget is None or estimate <= budget:
        return None
    return (f"{what} writes about {gib(estimate)} of artifacts and {gib(budget)} is free in {folder}, less the "
            "headroom; skipped rather than fill the disk")


@dataclass
class MemoryGate:
    """Admits jobs whose estimates fit in the budget together with those running, in
    memory and (where given) on disk.

    Attributes:
        estimates: per job, its worker's peak in bytes.
        budget: the bytes all running jobs may take together (None: no limit).
        disk: per job, the bytes of artifacts it writes (None: disk not budgeted).
        disk_budget: the bytes all running jobs may write together (None: no limit).
    """

    estimates: Sequence[int]
    budget: int | None
    disk: Sequence[int] | None = None
    disk_budget: int | None = None

    def admits(self, index: int, running: Iterable[int]) -> bool:
        """Whether job ``index`` fits beside the ``running`` ones."""
        running = list(running)
        if self.budget is not None and \
                sum(self.estimates[i] for i in running) + self.estimates[index] > self.budget:
            return False
        if self.disk is None or self.disk_budget is None:
            return True
        return sum(self.disk[i] for i in running) + self.disk[index] <= self.disk_budget


def dtype_width(path: str | None) -> int:
    """The element width of a checkpoint's weights (2 for bfloat16/float16, else 4), read
    from a safetensors header when there is one (other formats: 4)."""
    if not path:
        return 4
    p = Path(path)
    files = sorted(p.glob("*.safetensors")) if p.is_dir() else [p]
    widths = {"BF16": 2, "F16": 2, "F32": 4, "F64": 8}
    counts: dict[int, int] = {}
    for file in files:
        if file.suffix != ".safetensors":
            continue
        try:
            with open(file, "rb") as f:
                (size,) = struct.unpack("<Q", f.read(8))
                header = json.loads(f.read(min(size, 100 << 20)))
        except (OSError, ValueError, struct.error):
            continue
        for name, entry in header.items():
            if name != "__metadata__" and isinstance(entry, dict) and entry.get("dtype") in widths:
                begin, end = entry.get("data_offsets", (0, 0))
                width = widths[entry["dtype"]]
                counts[width] = counts.get(width, 0) + int(end) - int(begin)
    return max(counts, key=lambda width: counts[width]) if counts else 4
