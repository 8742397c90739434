"""Run the ``portability`` CLI with a writer that pauses in the middle of its output, so a
test's signal always lands mid-write, however fast the machine.

    python slow_writer.py MARKER_DIR PAUSE_AFTER_BYTES convert SRC DST [OPTIONS]

When the copying threads have put ``PAUSE_AFTER_BYTES`` bytes of tensor data into the
temporary output, the copy stops, ``MARKER_DIR/paused`` appears and ``paused N`` (the byte
count) is the first line on stdout, so a test waits by reading it, with no clock. The copy
waits there until SIGTERM arrives, then writes
``MARKER_DIR/interrupted-while-paused`` and goes on; if none arrives within two minutes
it writes ``MARKER_DIR/pause-timed-out`` instead. The CLI's own SIGTERM handling is kept:
the handler here only notes the signal and calls it. SIGKILL needs no cooperation.
"""

from __future__ import annotations

import signal
import sys
import threading
from pathlib import Path

from portability import cli
from portability.core import file_copy

COPY_THREAD = "portability-copy"  # HashingCopier's worker threads


def _pause_the_copy(markers: Path, pause_after: int, interrupted: threading.Event) -> None:
    lock = threading.Lock()
    copied = [0]
    update = file_copy.Summer.update

    def counting_update(self, piece) -> None:
        update(self, piece)
        if threading.current_thread().name != COPY_THREAD:
            return  # a verified read, not the output being written
        with lock:
            copied[0] += len(piece)
            due = copied[0] >= pause_after and not (markers / "paused").exists()
            if due:
                (markers / "paused").write_text(str(copied[0]))
                print(f"paused {copied[0]}", flush=True)
        if due:
            arrived = interrupted.wait(timeout=120)
            (markers / ("interrupted-while-paused" if arrived else "pause-timed-out")).touch()

    file_copy.Summer.update = counting_update


def _observe_sigterm(interrupted: threading.Event) -> None:
    install = cli._interrupt_on_sigterm

    def install_and_observe() -> None:
        install()
        handler = signal.getsignal(signal.SIGTERM)

        def on_sigterm(signum, frame):
            interrupted.set()
            handler(signum, frame)

        signal.signal(signal.SIGTERM, on_sigterm)

    cli._interrupt_on_sigterm = install_and_observe


if __name__ == "__main__":
    markers, pause_after, args = Path(sys.argv[1]), int(sys.argv[2]), sys.argv[3:]
    interrupted = threading.Event()
    _pause_the_copy(markers, pause_after, interrupted)
    _observe_sigterm(interrupted)
    sys.argv = ["portability", *args]
    cli.main()
