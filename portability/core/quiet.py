"""Keep TensorFlow's, absl's, Keras' and onnxruntime's start-up chatter out of our output.

Called before any framework is imported (by the CLI unless ``--debug``, and by
every worker process). Each framework has its own switch:

- TensorFlow's C++ notices (CPU features, oneDNN) read ``TF_CPP_MIN_LOG_LEVEL``
  once, when TF loads; 2 keeps errors only.
- TensorFlow's and absl's Python warnings go through the ``tensorflow`` and
  ``absl`` loggers; Keras and TF also raise ``UserWarning``s from their modules.
- onnxruntime has no environment variable for its log level, so the severity is
  set right after ``onnxruntime`` is imported, by a one-shot import hook; no
  framework is imported here.
- Some TensorFlow builds log through absl before ``TF_CPP_MIN_LOG_LEVEL`` is
  consulted (TF 2.21: "All log messages before absl::InitializeLog() is called
  are written to STDERR", and the oneDNN notice on CPUs where oneDNN's custom ops
  are on). TensorFlow prints all of it while ``import tensorflow`` runs, so a second
  one-shot hook captures file descriptor 2 around that import and passes on every
  line except the informational and warning log lines (``I``/``W`` prefixes, with
  their continuation lines); errors still show.
"""

from __future__ import annotations

import importlib.abc
import importlib.util
import logging
import os
import re
import sys
import tempfile
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager

_NOISY_MODULES = r"(keras|tensorflow|tf_keras|tf2onnx|absl|onnxruntime)(\.|$)"
ORT_ERROR_SEVERITY = 3


class _WrapImport(importlib.abc.MetaPathFinder):
    """Wrap ``name``'s first import: ``wrap(exec_module)`` returns the function that runs it."""

    def __init__(self, name: str, wrap: Callable[[Callable], Callable]) -> None:
        self.name = name
        self.wrap = wrap

    def find_spec(self, fullname, path, target=None):
        if fullname != self.name:
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec(fullname)
        if spec is None or spec.loader is None or not hasattr(spec.loader, "exec_module"):
            return spec
        spec.loader.exec_module = self.wrap(spec.loader.exec_module)
        return spec


def _after_import(name: str, action: Callable) -> _WrapImport:
    """Run ``action(module)`` once, right after ``name`` is first imported."""
    def wrap(original: Callable) -> Callable:
        def exec_module(module):
            original(module)
            action(module)
        return exec_module
    return _WrapImport(name, wrap)


def _during_import(name: str, context: Callable) -> _WrapImport:
    """Run ``name``'s first import inside ``context()`` (a context manager factory)."""
    def wrap(original: Callable) -> Callable:
        def exec_module(module):
            with context():
                original(module)
        return exec_module
    return _WrapImport(name, wrap)


# A glog/absl line (``I0000 00:00:1796555363.191041   12098 file.cc:227] ...``: absl writes the
# epoch seconds where glog writes the time) or TF's own
# (``2026-12-06 10:00:00.000000: I tensorflow/core/util/port.cc:153] ...``), info or warning.
_LOG_LINE = re.compile(rb"^(?:[IWEF]\d{4} \d\d:\d\d:\d+\.\d+ +\d+ |\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+: [IWEF] )")
_NOTICE_LINE = re.compile(rb"^(?:[IW]\d{4} |\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+: [IW] )")
_ABSL_PREAMBLE = b"WARNING: All log messages before absl::InitializeLog() is called are written to STDERR"


def startup_noise_filtered(captured: bytes) -> bytes:
    """What of a framework's start-up output on fd 2 still reaches the user: everything but
    info and warning log lines (with the unprefixed lines that continue them) and absl's
    pre-initialisation notice."""
    kept: list[bytes] = []
    dropping = False
    for line in captured.splitlines(keepends=True):
        if line.rstrip(b"\r\n") == _ABSL_PREAMBLE:
            dropping = False
            continue
        if _LOG_LINE.match(line):
            dropping = bool(_NOTICE_LINE.match(line))
        if not dropping:
            kept.append(line)
    return b"".join(kept)


@contextmanager
def _filtered_stderr() -> Iterator[None]:
    """Capture fd 2 into a temporary file; on the way out, pass on what is not start-up noise."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as capture:
        os.dup2(capture.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            capture.seek(0)
            rest = startup_noise_filtered(capture.read())
            if rest:
                os.write(2, rest)


def _quiet_onnxruntime(module) -> None:
    setter = getattr(module, "set_default_logger_severity", None)
    if setter is not None:
        setter(ORT_ERROR_SEVERITY)


def quiet_frameworks() -> None:
    """Silence the frameworks' start-up and informational output (errors still show).

    Environment variables already set by the user win over ours.
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.setdefault("GRPC_VERBOSITY", "ERROR")
    for name in ("tensorflow", "absl", "keras", "tf2onnx"):
        logging.getLogger(name).setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", module=_NOISY_MODULES)
    if "tensorflow" not in sys.modules and not any(
            isinstance(f, _WrapImport) and f.name == "tensorflow" for f in sys.meta_path):
        sys.meta_path.insert(0, _during_import("tensorflow", _filtered_stderr))
    if "onnxruntime" in sys.modules:
        _quiet_onnxruntime(sys.modules["onnxruntime"])
    elif not any(isinstance(f, _WrapImport) and f.name == "onnxruntime" for f in sys.meta_path):
        sys.meta_path.insert(0, _after_import("onnxruntime", _quiet_onnxruntime))
