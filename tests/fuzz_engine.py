"""Mutation fuzzing of the checkpoint readers through ``portability.load``.

Hypothesis draws the mutations (bit flips, byte runs, truncation, inserted and
deleted bytes, integer fields set to boundary values at zip-header and
safetensors-header positions, zip flag bits set, JSON edits), one to three per input, so damage
that needs two changes (a flip in the data and one in the checksum record) is
covered. Each mutated artifact is loaded in full (every tensor and the training
state) and the outcome is classified:

- ``loaded_bitwise``: it loaded and every tensor equals the unmutated seed's;
- ``loaded_changed``: it loaded with other values, from a seed without checksums
  (nothing could have noticed; counted, not a failure);
- ``typed_errors``: one of our ``PortabilityError`` types;
- ``untyped``: any other exception;
- ``hangs``: a load that took longer than ``HANG_SECONDS``;
- ``silent_corruptions``: a checksummed seed loaded with other values;
- ``over_allocations``: peak memory grew by more than ``MEMORY_FACTOR`` times the
  artifact's size (plus ``MEMORY_SLACK``).

The invariant is that the last four stay at zero.
"""

from __future__ import annotations

import json
import resource
import shutil
import signal
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from fuzz_seeds import BUILDERS, Seed
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import seed as hypothesis_seed
from hypothesis import strategies as st

HANG_SECONDS = 10
MEMORY_FACTOR = 8
MEMORY_SLACK = 64 * 1024 * 1024
FAILURE_KINDS = ("untyped", "hangs", "silent_corruptions", "over_allocations")
KINDS = ("tried", "loaded_bitwise", "loaded_changed", "typed_errors") + FAILURE_KINDS
_SIGNATURES = (b"PK\x03\x04", b"PK\x01\x02", b"PK\x05\x06", b"PK\x06\x06", b"PK\x06\x07")
_BOUNDARIES = (0, 1, 0x7F, 0x80, 0xFF, 0xFFFF, 0xFFFFFFFF, 2 ** 63 - 1, 2 ** 64 - 1)
_JSON_CHARS = b'{}[]":,0123456789-e. ntf'


class _Hang(BaseException):
    """Raised by the alarm inside a load that ran too long."""


class _TimeUp(BaseException):
    """Ends a time-boxed run (a BaseException, so Hypothesis does not treat it as a failure)."""


@dataclass
class Report:
    """Counts per outcome for one reader, plus a few examples of each failure."""

    reader: str
    counts: Counter = field(default_factory=Counter)
    examples: dict[str, list[str]] = field(default_factory=dict)

    def add(self, kind: str, detail: str = "") -> None:
        """Count one outcome; keep the first few details of failures."""
        self.counts[kind] += 1
        if kind in FAILURE_KINDS and len(self.examples.setdefault(kind, [])) < 5:
            self.examples[kind].append(detail)

    def as_dict(self) -> dict:
        """JSON-able counts and examples."""
        return {"reader": self.reader, **{k: self.counts.get(k, 0) for k in KINDS}, "examples": self.examples}


def _int_field(width: int) -> st.SearchStrategy:
    return st.tuples(st.just(width), st.one_of(st.sampled_from(_BOUNDARIES), st.integers(0, 2 ** 32)))


MUTATION = st.one_of(
    st.tuples(st.just("flip"), st.integers(0, 2 ** 31), st.integers(0, 7)),
    st.tuples(st.just("run"), st.integers(0, 2 ** 31), st.binary(min_size=1, max_size=16)),
    st.tuples(st.just("truncate"), st.integers(0, 2 ** 31)),
    st.tuples(st.just("insert"), st.integers(0, 2 ** 31), st.binary(min_size=1, max_size=16)),
    st.tuples(st.just("delete"), st.integers(0, 2 ** 31), st.integers(1, 64)),
    st.tuples(st.just("zipfield"), st.integers(0, 2 ** 31), st.integers(4, 45), _int_field(2) | _int_field(4)),
    st.tuples(st.just("zipflag"), st.integers(0, 2 ** 31), st.integers(0, 15)),
    st.tuples(st.just("headerlen"), _int_field(8)),
    st.tuples(st.just("json"), st.integers(0, 2 ** 31), st.sampled_from(list(_JSON_CHARS))),
)


def mutate(data: bytes, mutation: tuple) -> bytes:
    """Apply one drawn mutation to a file's bytes."""
    out = bytearray(data)
    kind, size = mutation[0], max(len(out), 1)
    if kind == "flip" and out:
        out[mutation[1] % size] ^= 1 << mutation[2]
    elif kind == "run" and out:
        at = mutation[1] % size
        out[at:at + len(mutation[2])] = mutation[2]
    elif kind == "truncate":
        del out[mutation[1] % size:]
    elif kind == "insert":
        at = mutation[1] % (len(out) + 1)
        out[at:at] = mutation[2]
    elif kind == "delete":
        at = mutation[1] % size
        del out[at:at + mutation[2]]
    elif kind == "zipfield":
        starts = [i for sig in _SIGNATURES for i in _find_all(data, sig)]
        if starts:
            _, pick, offset, (width, value) = mutation
            at = starts[pick % len(starts)] + offset
            out[at:at + width] = (value % (1 << (8 * width))).to_bytes(width, "little")
    elif kind == "zipflag":
        # One general-purpose flag bit of a local (offset 6) or central (offset 8) header:
        # zipfile raises NotImplementedError for some (patched data, strong encryption).
        starts = [(i, 6) for i in _find_all(data, b"PK\x03\x04")] + [(i, 8) for i in _find_all(data, b"PK\x01\x02")]
        if starts:
            at, offset = starts[mutation[1] % len(starts)]
            if at + offset + mutation[2] // 8 < len(out):  # a signature cut short by an earlier mutation
                out[at + offset + mutation[2] // 8] |= 1 << (mutation[2] % 8)
    elif kind == "headerlen":
        width, value = mutation[1]
        out[0:8] = (value % (1 << 64)).to_bytes(8, "little")
    elif kind == "json":
        places = [i for i, b in enumerate(data) if b in b'{}[]":,']
        if places:
            out[places[mutation[1] % len(places)]] = mutation[2]
    return bytes(out)


def _find_all(data: bytes, needle: bytes) -> list[int]:
    found, at = [], data.find(needle)
    while at >= 0:
        found.append(at)
        at = data.find(needle, at + 1)
    return found


def load_fully(path: Path) -> dict[str, bytes]:
    """``portability.load`` and materialise every tensor and training array, as bytes by name."""
    import portability
    from portability.core.tensors import as_array
    from portability.core.training_codec import pack_training

    ckpt = portability.load(path)
    arrays = {f"tensor:{n}": as_array(t) for n, t in ckpt.tensors.items()}
    if ckpt.training is not None:
        text, training = pack_training(ckpt.training)
        arrays.update({f"training:{n}": np.asarray(a) for n, a in training.items()})
        arrays["training:json"] = np.frombuffer(text.encode(), dtype=np.uint8)
    return {n: a.dtype.str.encode() + str(a.shape).encode() + a.tobytes() for n, a in arrays.items()}


def _on_alarm(signum, frame):
    raise _Hang


def classify(seed: Seed, expected: dict[str, bytes], report: Report, what: str) -> None:
    """Load the (mutated) artifact at ``seed.path`` once and count the outcome."""
    from portability.errors import PortabilityError

    size = sum((seed.root / f).stat().st_size for f in seed.files if (seed.root / f).exists())
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    previous = signal.signal(signal.SIGALRM, _on_alarm)
    signal.alarm(HANG_SECONDS)
    report.counts["tried"] += 1
    try:
        got = load_fully(seed.path)
    except _Hang:
        report.add("hangs", what)
        return
    except PortabilityError:
        report.add("typed_errors")
        return
    except Exception as exc:  # the invariant: nothing but our typed errors
        report.add("untyped", f"{type(exc).__name__}: {str(exc)[:200]} <- {what}")
        return
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
        grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - before
        if grown > MEMORY_FACTOR * size + MEMORY_SLACK:
            report.add("over_allocations", f"{grown} bytes for {size} <- {what}")
    if got == expected:
        report.add("loaded_bitwise")
    elif seed.checksummed:
        report.add("silent_corruptions", what)
    else:
        report.add("loaded_changed")


def fuzz(reader: str, workdir: Path, *, seconds: float | None = None, max_examples: int = 100,
         seed: int = 0) -> Report:
    """Fuzz one reader; stop after ``seconds`` (if given) or ``max_examples`` inputs.

    Args:
        reader: a key of ``fuzz_seeds.BUILDERS``.
        workdir: an empty folder for the seeds and their mutated copies.
        seconds: wall-clock budget; None runs exactly ``max_examples`` inputs.
        max_examples: the number of inputs (the upper bound when ``seconds`` is set).
        seed: Hypothesis's seed, for reproducible runs.

    Returns:
        The outcome counts.
    """
    (workdir / "seeds").mkdir()
    seeds = BUILDERS[reader](workdir / "seeds")
    expected = {s.name: load_fully(s.path) for s in seeds}
    pristine = {s.name: {f: (s.root / f).read_bytes() for f in s.files} for s in seeds}
    report = Report(reader)
    deadline = None if seconds is None else time.monotonic() + seconds

    @hypothesis_seed(seed)
    @settings(max_examples=max_examples, deadline=None, database=None, phases=[Phase.generate],
              suppress_health_check=list(HealthCheck))
    @given(which=st.sampled_from(seeds), pick=st.integers(0, 1000),
           mutations=st.lists(MUTATION, min_size=1, max_size=3))
    def one(which: Seed, pick: int, mutations: list) -> None:
        if deadline is not None and time.monotonic() > deadline:
            raise _TimeUp
        target = which.files[pick % len(which.files)]
        data = pristine[which.name][target]
        for mutation in mutations:
            data = mutate(data, mutation)
        (which.root / target).write_bytes(data)
        try:
            classify(which, expected[which.name], report,
                     f"{which.name}/{target}: {json.dumps(_printable(mutations))}")
        finally:
            (which.root / target).write_bytes(pristine[which.name][target])

    try:
        one()
    except _TimeUp:
        pass
    shutil.rmtree(workdir / "seeds", ignore_errors=True)
    return report


def _printable(mutations: list) -> list:
    return [[m.hex() if isinstance(m, bytes) else m for m in mutation] for mutation in mutations]
