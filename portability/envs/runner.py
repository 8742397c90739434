"""The standalone runner: loads and runs one artifact inside another Python environment.

This file (and ``wire.py`` beside it) is copied into every deployment environment and
run there with that environment's interpreter, so it imports nothing from the package
and needs only numpy and the runtime (onnxruntime, TensorFlow). It speaks plain data:

    python runner.py info             -> one JSON object on stdout (what the environment can run)
    python runner.py serve            -> JSON lines: one request per stdin line, one reply per stdout line

Requests of ``serve``: ``{"op": "load", "format": "onnx"|"tf-savedmodel", "path": P}``,
``{"op": "run", "feed": IN.npz, "out": OUT.npz}`` (arrays saved as ``a0``, ``a1``...,
their names in the request's ``names`` and the reply's ``names``), ``{"op": "close"}``.
Every reply is ``{"ok": true, ...}`` or ``{"ok": false, "error": "one line"}``.
Anything the runtimes print goes to stderr, never into the replies.
"""

from __future__ import annotations

import json
import os
import re
import sys
import tempfile

try:  # imported as part of the package
    from .wire import onnx_header, probe_model, read_fields, savedmodel_header
except ImportError:  # run as a script in an environment, next to its copy of wire.py
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # also under python -I / PYTHONSAFEPATH
    from wire import onnx_header, probe_model, read_fields, savedmodel_header  # type: ignore[no-redef]

__all__ = ["onnx_header", "probe_model", "read_fields", "savedmodel_header", "serve", "environment_info"]

ABI_MARKERS = ("compiled using NumPy 1.x", "_ARRAY_API not found", "numpy.core.multiarray failed to import")
RUNTIMES = {"onnxruntime": ("onnxruntime",), "tensorflow": ("tensorflow", "tensorflow-cpu"),
            "torch": ("torch",), "safetensors": ("safetensors",)}


# --- what the environment holds ---

def _version(dist: str) -> str | None:
    from importlib import metadata

    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def _import_quietly(module: str) -> tuple[object | None, str]:
    """Import a module with fd 2 captured; returns (module or None, what it printed or raised)."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as log:
        os.dup2(log.fileno(), 2)
        try:
            mod, error = __import__(module), ""
        except BaseException as exc:  # any import failure is reported, not raised
            mod, error = None, f"{type(exc).__name__}: {exc}"
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
        log.seek(0)
        printed = log.read().decode("utf-8", "replace")
    return mod, (printed + "\n" + error).strip()


def runtime_info(name: str) -> dict | None:
    """Version, importability and (onnxruntime) the newest IR and opset, or None if absent."""
    dists = RUNTIMES[name]
    version = next((v for v in map(_version, dists) if v), None)
    if version is None:
        return None
    info: dict = {"version": version, "ok": True, "error": ""}
    if name not in ("onnxruntime", "tensorflow"):  # listed, not run here: no need to import them
        return info
    module, said = _import_quietly(name)
    if any(marker in said for marker in ABI_MARKERS):
        import numpy

        info.update(ok=False, abi=True, error=f"{name} {version} was built against numpy 1.x and cannot run with "
                    f"numpy {numpy.__version__} (it crashes); pin numpy<2 in the environment")
        return info
    if module is None:
        info.update(ok=False, error=said.splitlines()[-1][:300] if said else "import failed")
        return info
    if name == "onnxruntime":
        info.update(onnx_limits(module))
    return info


def onnx_limits(ort) -> dict:
    """The newest ONNX IR version and default-domain opset this onnxruntime loads, found
    by loading probe models (the runtime's own refusal names its maximum IR)."""
    def loads(ir_version: int, opset: int) -> str:
        try:
            options = ort.SessionOptions()
            options.log_severity_level = 4
            ort.InferenceSession(probe_model(ir_version, opset), options, providers=["CPUExecutionProvider"])
            return ""
        except Exception as exc:  # the runtime's refusal is the answer
            return str(exc)

    said = loads(1000, 7)
    found = re.search(r"max supported IR version: (\d+)", said)
    max_ir = int(found.group(1)) if found else next(ir for ir in range(20, 2, -1) if not loads(ir, 7))
    max_opset = next((op for op in range(40, 6, -1) if not loads(max_ir, op)), 7)
    return {"max_ir": max_ir, "max_opset": max_opset}


def environment_info() -> dict:
    """Python, numpy and every runtime the environment holds (see ``runtime_info``)."""
    import platform

    numpy, said = _import_quietly("numpy")
    return {"python": platform.python_version(), "executable": sys.executable,
            "numpy": getattr(numpy, "__version__", None), "numpy_error": "" if numpy else said,
            "runtimes": {name: info for name in RUNTIMES if (info := runtime_info(name)) is not None}}


# --- loading and running ---

class Session:
    """One loaded artifact: ``load`` then ``run`` any number of times."""

    def __init__(self, fmt: str, path: str) -> None:
        self.fmt, self.path = fmt, path
        if fmt == "onnx":
            self._load_onnx()
        elif fmt == "tf-savedmodel":
            self._load_savedmodel()
        else:
            raise ValueError(f"the environment runner runs onnx and tf-savedmodel artifacts, not {fmt!r}")

    def _load_onnx(self) -> None:
        import onnxruntime as ort

        file = self.path
        if os.path.isdir(file):
            file = os.path.join(file, next(n for n in sorted(os.listdir(file)) if n.endswith(".onnx")))
        options = ort.SessionOptions()
        options.log_severity_level = 3
        try:
            self.session = ort.InferenceSession(file, options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # the runtime's own words are the reason
            raise RuntimeError(f"onnxruntime {ort.__version__} cannot load the model: {_one_line(exc)}") from exc
        self.inputs = [i.name for i in self.session.get_inputs()]
        self.outputs = [o.name for o in self.session.get_outputs()]
        self.runtime = f"onnxruntime {ort.__version__}"

    def _load_savedmodel(self) -> None:
        import tensorflow as tf

        header = savedmodel_header(self.path)
        self.producer = header["tensorflow_version"]
        written = f"written by TensorFlow {self.producer or 'unknown'}"
        try:
            from tensorflow.python.framework import op_def_registry

            unknown = [op for op in header["ops"] if op_def_registry.get(op) is None]
        except ImportError:
            unknown = []
        if unknown:
            raise RuntimeError(f"TensorFlow {tf.__version__} cannot load the SavedModel ({written}): it does not "
                               f"register the ops {', '.join(unknown)}")
        sidecar = os.path.join(self.path, "assets.extra", "portability.json")
        if os.path.exists(sidecar):
            with open(sidecar) as f:
                carried = json.load(f).get("carried_outputs") or {}
            if carried:
                raise RuntimeError(f"outputs {', '.join(carried)} travel as carrier types that only portability "
                                   "decodes; the environment runner cannot judge them")
        try:
            self.loaded = tf.saved_model.load(self.path)
        except Exception as exc:  # TF's own words are the reason
            raise RuntimeError(f"TensorFlow {tf.__version__} cannot load the SavedModel ({written}): "
                               f"{_one_line(exc)}") from exc
        if "serving_default" not in self.loaded.signatures:
            raise RuntimeError(f"the SavedModel has no 'serving_default' signature ({written})")
        self.fn = self.loaded.signatures["serving_default"]
        self.specs = self.fn.structured_input_signature[1]
        self.inputs = list(self.specs)
        self.outputs = list(self.fn.structured_outputs)
        self.runtime = f"TensorFlow {tf.__version__} ({written})"

    def run(self, feed: dict) -> dict:
        import numpy as np

        if self.fmt == "onnx":
            missing = [n for n in self.inputs if n not in feed]
            if missing:
                raise ValueError(f"inputs {missing} are missing (the graph takes {self.inputs})")
            values = self.session.run(None, {n: np.ascontiguousarray(feed[n]) for n in self.inputs})
            return dict(zip(self.outputs, values, strict=True))
        import tensorflow as tf

        by_key = {_safe_name(n): v for n, v in feed.items()}
        missing = [k for k in self.specs if k not in by_key]
        if missing:
            raise ValueError(f"inputs {missing} are missing (the signature takes {list(self.specs)})")
        args = {k: tf.cast(np.asarray(by_key[k]), spec.dtype) for k, spec in self.specs.items()}
        return {name: value.numpy() for name, value in self.fn(**args).items()}


def _safe_name(name: str) -> str:
    cleaned = re.sub(r"[^A-Za-z0-9_]", "_", name)
    return cleaned if cleaned and cleaned[0].isalpha() else f"t_{cleaned}"


_CPP_FRAME = re.compile(r"/onnxruntime_src/\S+:\d+ .*?\) (?=[A-Z*])")


def _one_line(exc: BaseException) -> str:
    """The error on one line, without onnxruntime's C++ source location and signature."""
    text = _CPP_FRAME.sub("", " ".join(str(exc).split()))
    return (text or type(exc).__name__)[:600]


def _handle(request: dict, state: dict) -> dict:
    import numpy as np

    op = request.get("op")
    if op == "load":
        session = Session(request["format"], request["path"])
        state["session"] = session
        return {"inputs": session.inputs, "outputs": session.outputs, "runtime": session.runtime,
                "producer": getattr(session, "producer", None)}
    if op == "run":
        session = state.get("session")
        if session is None:
            raise ValueError("nothing is loaded")
        with np.load(request["feed"], allow_pickle=False) as data:
            feed = {name: data[f"a{i}"] for i, name in enumerate(request["names"])}
        outputs = session.run(feed)
        names = list(outputs)
        np.savez(request["out"], **{f"a{i}": np.asarray(outputs[n]) for i, n in enumerate(names)})
        return {"names": names}
    if op == "info":
        return environment_info()
    raise ValueError(f"unknown request {op!r}")


def serve() -> None:
    """Answer requests on stdin, one JSON line each, until EOF or ``close``."""
    replies = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)  # whatever the runtimes print goes to stderr
    state: dict = {}
    for line in sys.stdin:
        if not line.strip():
            continue
        request = json.loads(line)
        if request.get("op") == "close":
            break
        try:
            reply = {"ok": True, **_handle(request, state)}
        except Exception as exc:  # every failure is a one-line reply; the runner lives on
            reply = {"ok": False, "error": _one_line(exc)}
        replies.write(json.dumps(reply) + "\n")
        replies.flush()


def main(argv: list[str]) -> int:
    if argv[:1] == ["info"]:
        replies = os.fdopen(os.dup(1), "w")
        os.dup2(2, 1)
        replies.write(json.dumps(environment_info()) + "\n")
        replies.flush()
        return 0
    if argv[:1] == ["serve"]:
        serve()
        return 0
    sys.stderr.write("usage: runner.py info|serve\n")
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
