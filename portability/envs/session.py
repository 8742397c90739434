"""Talk to the standalone runner inside an environment: load an artifact, run it on feeds.

One runner process serves one loaded artifact (``EnvSession``). Arrays travel as
``.npz`` files in a private temporary folder, requests and replies as JSON lines,
so nothing but plain data crosses between the two Pythons. A runner that dies (a
runtime's segfault) raises an ``EnvRunError`` naming the signal and its last words.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from portability.envs.builder import Env
from portability.errors import FormatError

_PR_SET_PDEATHSIG = 1


class EnvRunError(FormatError):
    """The artifact cannot be loaded or run in the environment (the runtime's words)."""


def _die_with_parent() -> None:  # pragma: no cover - runs in the child before exec
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):
        pass


class EnvSession:
    """A runner process in ``env`` with one artifact loaded.

    Args:
        env: the environment.
        path: the artifact.
        fmt: ``onnx`` or ``tf-savedmodel``.

    Raises:
        EnvRunError: the runtime refuses the artifact or the runner died.
    """

    def __init__(self, env: Env, path: str | Path, fmt: str) -> None:
        self.env = env
        self.tmp = tempfile.TemporaryDirectory(prefix=f"portability-env-{env.name}-")
        self.log = open(Path(self.tmp.name) / "stderr.log", "w+b")  # closed in close()
        child_env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
        child_env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        self.process = subprocess.Popen([env.python, env.runner, "serve"], stdin=subprocess.PIPE,
                                        stdout=subprocess.PIPE, stderr=self.log, env=child_env,
                                        preexec_fn=_die_with_parent)
        self.calls = 0
        try:
            reply = self._ask({"op": "load", "format": fmt, "path": str(path)})
        except BaseException:
            self.close()
            raise
        self.input_names: list[str] = reply["inputs"]
        self.output_names: list[str] = reply["outputs"]
        self.runtime: str = reply["runtime"]
        self.producer: str | None = reply.get("producer")

    def _ask(self, request: dict[str, Any]) -> dict[str, Any]:
        assert self.process.stdin is not None and self.process.stdout is not None
        try:
            self.process.stdin.write((json.dumps(request) + "\n").encode())
            self.process.stdin.flush()
            line = self.process.stdout.readline()
        except (BrokenPipeError, OSError):
            line = b""
        if not line:
            raise EnvRunError(f"in env {self.env.name!r}: {self._death()}")
        reply = json.loads(line)
        if not reply.get("ok"):
            raise EnvRunError(f"in env {self.env.name!r}: {reply.get('error', 'the runner failed')}")
        return reply

    def _death(self) -> str:
        try:
            code = self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            code = self.process.wait()
        if code < 0:
            try:
                how = f"killed by {signal.Signals(-code).name}"
            except ValueError:
                how = f"killed by signal {-code}"
        else:
            how = f"exited with status {code}"
        self.log.flush()
        self.log.seek(0)
        lines = [ln.strip() for ln in self.log.read().decode("utf-8", "replace").splitlines() if ln.strip()]
        return f"the runner {how}" + (f"; last output: {lines[-1][:300]}" if lines else "")

    def run(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run the artifact on named inputs; named outputs come back.

        Raises:
            EnvRunError: the runtime failed (its words) or the runner died.
        """
        self.calls += 1
        names = list(feed)
        folder = Path(self.tmp.name)
        feed_path, out_path = folder / f"in{self.calls}.npz", folder / f"out{self.calls}.npz"
        for name, value in feed.items():
            if np.asarray(value).dtype.kind not in "biufc?":
                raise EnvRunError(f"in env {self.env.name!r}: input {name!r} of dtype {np.asarray(value).dtype} "
                                  "cannot travel to another environment as plain numpy")
        np.savez(feed_path, **{f"a{i}": np.asarray(feed[n]) for i, n in enumerate(names)})
        reply = self._ask({"op": "run", "feed": str(feed_path), "out": str(out_path), "names": names})
        with np.load(out_path, allow_pickle=False) as data:
            outputs = {name: data[f"a{i}"] for i, name in enumerate(reply["names"])}
        feed_path.unlink(missing_ok=True)
        out_path.unlink(missing_ok=True)
        return outputs

    def close(self) -> None:
        """Stop the runner and remove the temporary folder."""
        if self.process.poll() is None:
            try:
                assert self.process.stdin is not None
                self.process.stdin.write(b'{"op": "close"}\n')
                self.process.stdin.close()
                self.process.wait(timeout=10)
            except (OSError, subprocess.TimeoutExpired):
                self.process.kill()
                self.process.wait()
        for stream in (self.process.stdin, self.process.stdout):
            if stream is not None and not stream.closed:
                stream.close()
        self.log.close()
        self.tmp.cleanup()
