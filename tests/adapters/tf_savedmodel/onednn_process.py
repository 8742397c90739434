"""Run a SavedModel in a fresh process with TF's oneDNN kernels forced on.

TF turns oneDNN on by default only on some x86 CPUs (AVX-512 ones) and reads the
switch once, when it starts, so a test of what runs there needs its own process.
A oneDNN kernel that fails a CHECK aborts that process: the caller sees a non-zero
exit code with TF's message, not a crashed test session.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np


def infer_with_onednn(savedmodel: Path, feeds: dict[str, np.ndarray], workdir: Path) -> dict[str, np.ndarray]:
    """The SavedModel's outputs on ``feeds``, run by our runner with TF_ENABLE_ONEDNN_OPTS=1.

    Raises:
        AssertionError: the process failed (its last stderr lines attached).
    """
    np.savez(workdir / "feeds.npz", **feeds)
    script = textwrap.dedent(f"""
        import numpy as np
        from portability.adapters.tf_savedmodel.serving import TFSavedModelRunner
        feeds = dict(np.load({str(workdir / 'feeds.npz')!r}))
        with TFSavedModelRunner({str(savedmodel)!r}) as runner:
            np.savez({str(workdir / 'got.npz')!r}, **runner.infer(feeds))
    """)
    env = {**os.environ, "TF_ENABLE_ONEDNN_OPTS": "1", "TF_CPP_MIN_LOG_LEVEL": "3"}
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    return dict(np.load(workdir / "got.npz"))
