"""The format table: every registered adapter, format detection, and the one
availability check.

Adapters register themselves (``portability.adapters.base.register_format``);
importing them imports no framework. Detection looks only at names and
directory listings, never at file contents, so it never imports a framework.
"""

from __future__ import annotations

from pathlib import Path

from portability.adapters import registered_formats
from portability.adapters.base import FormatAdapter
from portability.core.options import ReadOptions, RunOptions, WriteOptions
from portability.errors import FormatError, MissingDependencyError, UsageError

__all__ = ["FORMATS", "ReadOptions", "RunOptions", "WriteOptions", "detect", "format_from_name",
           "load_adapter", "spec_for", "supported", "unavailable"]

FORMATS: dict[str, type[FormatAdapter]] = registered_formats()
SAFETENSORS_INDEX_SUFFIX = ".safetensors.index.json"
# A directory can hold several kinds of file (a SavedModel keeps an .onnx beside it,
# an HF folder both .bin and .safetensors): the first format that claims it wins.
DIRECTORY_ORDER = ("tf-savedmodel", "dcp", "safetensors", "onnx", "torch")


def supported() -> str:
    """Comma-separated list of format names, for error messages."""
    return ", ".join(FORMATS)


def spec_for(name: str) -> type[FormatAdapter]:
    """The adapter class of a format, by name (its capabilities are class attributes).

    Raises:
        UsageError: unknown name; the message lists the supported ones.
    """
    if name not in FORMATS:
        raise UsageError(f"unknown format {name!r} (supported: {supported()})")
    return FORMATS[name]


def unavailable(name: str) -> str | None:
    """Why a format cannot be used here (checked without importing its framework), or None.

    Raises:
        UsageError: unknown format.
    """
    return spec_for(name).unavailable()


def load_adapter(name: str) -> FormatAdapter:
    """An adapter instance for a format, once its framework is known to be installed.

    Raises:
        UsageError: unknown format.
        MissingDependencyError: the format's framework is not installed.
    """
    cls = spec_for(name)
    why = cls.unavailable()
    if why:
        raise MissingDependencyError(why)
    return cls()


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
        from portability.adapters.torch.trainer_files import is_trainer_directory

        if is_trainer_directory(path):  # Trainer checkpoint-N/: weights beside torch training files
            return "torch"
        for name in DIRECTORY_ORDER:
            if FORMATS[name]().detect(path):
                return name
        raise FormatError(
            f"{path}: directory holds no checkpoint (looked for *.safetensors, "
            f"*{SAFETENSORS_INDEX_SUFFIX}, saved_model.pb, .metadata + *.distcp, *.onnx, *.pt/*.pth/*.bin)")
    by_ext = format_from_name(path)
    if by_ext is None:
        raise FormatError(
            f"{path}: unknown extension {path.suffix or '(none)'!r}; "
            f"known: {', '.join(e for s in FORMATS.values() for e in s.extensions)} "
            "(pass --from to choose a format)")
    return by_ext


def format_from_name(path: str | Path) -> str | None:
    """Format implied by a file name's extension, or None."""
    name = Path(path).name
    if name.endswith(SAFETENSORS_INDEX_SUFFIX):
        return "safetensors"
    if name.endswith(".index.json"):  # Hugging Face shard index: pytorch_model.bin.index.json
        name = name[: -len(".index.json")]
    suffix = Path(name).suffix.lower()
    for cls in FORMATS.values():
        if suffix in cls.extensions:
            return cls.name
    return None
