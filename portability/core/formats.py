"""Format detection and the adapter table.

Detection looks only at names, directory listings and magic bytes, so it never
imports a framework. Each adapter is a module with the same functions
(``read``, ``write`` and, where a runtime exists, ``runner``), imported only
when its format is used.
"""

from __future__ import annotations

import importlib
import importlib.util
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

from portability.errors import FormatError, MissingDependencyError, UsageError


@dataclass(frozen=True)
class FormatSpec:
    """What identifies a format and which module implements it.

    ``stores_graph``: the format holds computation, so writing it needs a model
    spec (``--model``). ``keeps_training_state``: optimizer, scheduler and step
    survive a write in this format.
    """

    name: str
    module: str
    extensions: tuple[str, ...]
    needs: tuple[str, ...] = ()
    extra: str = ""
    is_directory: bool = False
    stores_graph: bool = False
    keeps_training_state: bool = True


@dataclass
class ReadOptions:
    """Options every adapter's ``read`` accepts (each uses what applies)."""

    trust_pickle: bool = False
    verify: bool = True


@dataclass
class WriteOptions:
    """Options every adapter's ``write`` accepts (each uses what applies).

    Attributes:
        shard_size: largest shard in bytes for formats that shard.
        model: model spec (``fixture:NAME``, ``hf:DIR``, ``pkg.mod:factory``)
            for formats that store a graph.
        opset: ONNX opset for graph exports.
        extra: adapter-specific options by name.
    """

    shard_size: int | None = None
    model: str | None = None
    opset: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)


FORMATS: dict[str, FormatSpec] = {
    spec.name: spec
    for spec in (
        FormatSpec("torch", "portability.adapters.torch.state_dict",
                   (".pt", ".pth", ".bin", ".ckpt"), needs=("torch",), extra="torch"),
        FormatSpec("safetensors", "portability.adapters.safetensors.format",
                   (".safetensors",)),
        FormatSpec("onnx", "portability.adapters.onnx", (".onnx",),
                   needs=("onnx",), extra="onnx", stores_graph=True, keeps_training_state=False),
        FormatSpec("tf-savedmodel", "portability.adapters.tf_savedmodel", (),
                   needs=("tensorflow",), extra="tf", is_directory=True, stores_graph=True),
    )
}

SAFETENSORS_INDEX_SUFFIX = ".safetensors.index.json"


def supported() -> str:
    """Comma-separated list of format names, for error messages."""
    return ", ".join(FORMATS)


def spec_for(name: str) -> FormatSpec:
    """Return the spec of a format by name.

    Raises:
        UsageError: unknown name; the message lists the supported ones.
    """
    if name not in FORMATS:
        raise UsageError(f"unknown format {name!r} (supported: {supported()})")
    return FORMATS[name]


def load_adapter(name: str) -> ModuleType:
    """Import and return the adapter module for a format.

    Raises:
        UsageError: unknown format.
        MissingDependencyError: the format's framework is not installed.
    """
    spec = spec_for(name)
    for package in spec.needs:
        try:
            found = importlib.util.find_spec(package) is not None
        except (ImportError, ValueError):  # a broken or blocked install counts as missing
            found = False
        if not found:
            raise MissingDependencyError(
                f"format {name!r} needs {package}, which is not installed "
                f"(pip install 'portability[{spec.extra}]')"
            )
    return importlib.import_module(spec.module)


def detect(path: str | Path) -> str:
    """Name the format of an existing checkpoint file or directory.

    Raises:
        FormatError: the path is missing, has an unknown extension, or is a
            directory holding no checkpoint.
    """
    path = Path(path)
    if not path.exists():
        raise FormatError(f"{path}: no such file or directory")
    if path.is_dir():
        return _detect_directory(path)
    by_ext = format_from_name(path)
    if by_ext is None:
        raise FormatError(
            f"{path}: unknown extension {path.suffix or '(none)'!r}; "
            f"known: {', '.join(e for s in FORMATS.values() for e in s.extensions)} "
            "(pass --from to choose a format)"
        )
    return by_ext


def format_from_name(path: str | Path) -> str | None:
    """Format implied by a file name's extension, or None."""
    name = Path(path).name
    if name.endswith(SAFETENSORS_INDEX_SUFFIX):
        return "safetensors"
    if name.endswith(".index.json"):  # Hugging Face shard index: pytorch_model.bin.index.json
        name = name[: -len(".index.json")]
        path = Path(path).with_name(name)
    suffix = Path(path).suffix.lower()
    for spec in FORMATS.values():
        if suffix in spec.extensions:
            return spec.name
    return None


def _detect_directory(path: Path) -> str:
    names = {p.name for p in path.iterdir()}
    if "saved_model.pb" in names or "saved_model.pbtxt" in names:
        return "tf-savedmodel"
    if any(n.endswith(SAFETENSORS_INDEX_SUFFIX) or n.endswith(".safetensors") for n in names):
        return "safetensors"
    if any(n.endswith(".onnx") for n in names):
        return "onnx"
    if any(Path(n).suffix in FORMATS["torch"].extensions for n in names):
        return "torch"
    raise FormatError(
        f"{path}: directory holds no checkpoint (looked for *.safetensors, "
        f"*{SAFETENSORS_INDEX_SUFFIX}, saved_model.pb, *.onnx, *.pt/*.pth/*.bin)"
    )
