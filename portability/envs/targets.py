"""Export targeting: what an environment's runtimes read, for ``--target-env NAME``.

ONNX: the newest opset and IR version the environment's onnxruntime loads, found by
its runner (probe models; the runtime's own refusal names its maximum IR). The
export then uses that opset (or the newest this onnx release writes, if lower) and
carries the lowest IR version the graph allows, which must not pass the maximum.

SavedModels: TensorFlow cannot write an older format, so the producer version is
recorded in every environment row, and the environment's runner refuses a graph
whose ops its TensorFlow does not register, naming them.
"""

from __future__ import annotations

from dataclasses import dataclass

from portability.envs.builder import Env
from portability.errors import UsageError


@dataclass(frozen=True)
class ExportTarget:
    """How graph exports are written for a target environment.

    Attributes:
        opset: the default-domain opset of ONNX exports (None: the exporter's default).
        max_ir: the newest ONNX IR version the file may carry (None: no limit).
        note: what was chosen and why, for every route's notes.
    """

    opset: int | None = None
    max_ir: int | None = None
    note: str = ""


def onnx_target(env: Env, newest_writable: int, opset: int | None = None) -> ExportTarget:
    """The ONNX export target for ``env``.

    Args:
        env: the target environment.
        newest_writable: the newest opset this onnx release defines.
        opset: an explicit ``--opset``, which must not pass the environment's maximum.

    Raises:
        UsageError: the environment has no onnxruntime, or ``opset`` is newer than it reads.
    """
    ort = env.runtime("onnxruntime")
    if ort is None or "max_opset" not in ort:
        raise UsageError(f"--target-env {env.name}: the environment has no onnxruntime to target "
                         f"(it holds {', '.join(env.info.get('runtimes', {})) or 'no runtime'})")
    limit = min(int(ort["max_opset"]), newest_writable)
    if opset is not None and opset > int(ort["max_opset"]):
        raise UsageError(f"--opset {opset} is newer than onnxruntime {ort['version']} in {env.name!r} reads "
                         f"(opset <= {ort['max_opset']})")
    chosen = opset or limit
    note = (f"exported for env {env.name!r}: onnxruntime {ort['version']} reads ONNX IR <= {ort['max_ir']} and "
            f"opset <= {ort['max_opset']}; opset {chosen}, IR at most {ort['max_ir']}")
    return ExportTarget(chosen, int(ort["max_ir"]), note)


def runs(env: Env, fmt: str) -> bool:
    """Whether the environment's runner can run an artifact of this format."""
    if fmt == "onnx":
        return env.runtime("onnxruntime") is not None
    if fmt == "tf-savedmodel":
        return env.runtime("tensorflow") is not None
    return False
