"""The adapter contract: one class per format, registered by a decorator.

Every format implements ``FormatAdapter``. Capabilities are class attributes,
so the harness asks the class instead of probing modules with ``hasattr``.
The order of calls is:

1. ``unavailable()`` (a class method, imports no framework): why the format
   cannot be used on this machine, or None;
2. ``detect(path)``: whether a path holds this format (names and listings only);
3. ``read(path, ReadOptions) -> Checkpoint`` / ``write(ckpt, path, WriteOptions)``;
4. ``runner(path, RunOptions) -> BaseRunner``: ``activate()``, ``infer(feed)``,
   ``deactivate()`` in the format's own runtime (weights-only formats build the
   model from ``RunOptions.model`` and run it in torch eager mode).

Adapter modules import their framework inside methods, never at module level,
so registering every format costs no framework import.
"""

from __future__ import annotations

import importlib.util
from abc import ABC, abstractmethod
from pathlib import Path
from typing import ClassVar, TypeVar

from portability.core.checkpoint import Checkpoint
from portability.core.options import ReadOptions, RunOptions, WriteOptions
from portability.core.runner import BaseRunner
from portability.errors import UsageError

_REGISTRY: dict[str, type[FormatAdapter]] = {}
AdapterClass = TypeVar("AdapterClass", bound="type[FormatAdapter]")


def register_format(cls: AdapterClass) -> AdapterClass:
    """Class decorator: make a ``FormatAdapter`` subclass available under ``cls.name``."""
    if cls.name in _REGISTRY and _REGISTRY[cls.name] is not cls:
        raise ValueError(f"format {cls.name!r} is registered twice")
    _REGISTRY[cls.name] = cls
    return cls


def registered_formats() -> dict[str, type[FormatAdapter]]:
    """Every registered adapter class by format name, in ``route_order`` (the order
    routes and reports list formats in, whatever order the modules were imported in)."""
    return dict(sorted(_REGISTRY.items(), key=lambda item: (item[1].route_order, item[0])))


class FormatAdapter(ABC):
    """One checkpoint format: detection, reading, writing and running.

    Class attributes (capabilities):
        name: the format's name (``--from``/``--to``, route names).
        route_order: where the format stands when routes and reports list formats.
        extensions: file name suffixes that select this format.
        requires: importable packages the adapter needs.
        extra: the pip extra that installs them (``portability[EXTRA]``).
        is_directory: the format is a directory, never a single file.
        stores_graph: the format holds computation as well as weights.
        needs_model_spec: writing from a checkpoint needs the model's code
            (``WriteOptions.model``); running never does.
        keeps_training_state: optimizer, scheduler and step survive a write.
    """

    name: ClassVar[str]
    route_order: ClassVar[int] = 100
    extensions: ClassVar[tuple[str, ...]] = ()
    requires: ClassVar[tuple[str, ...]] = ()
    extra: ClassVar[str] = ""
    is_directory: ClassVar[bool] = False
    stores_graph: ClassVar[bool] = False
    needs_model_spec: ClassVar[bool] = False
    keeps_training_state: ClassVar[bool] = True

    @classmethod
    def unavailable(cls) -> str | None:
        """Why this format cannot be used here (no framework is imported), or None."""
        for package in cls.requires:
            try:
                found = importlib.util.find_spec(package) is not None
            except (ImportError, ValueError):  # a broken or blocked install counts as missing
                found = False
            if not found:
                return (f"format {cls.name!r} not available: {package} is not installed "
                        f"(pip install 'portability[{cls.extra}]')")
        return None

    @abstractmethod
    def detect(self, path: Path) -> bool:
        """Whether ``path`` (an existing file or directory) holds this format."""

    @abstractmethod
    def read(self, path: str | Path, options: ReadOptions = ReadOptions()) -> Checkpoint:
        """Read a checkpoint.

        Raises:
            FormatError, IntegrityError, UnsafeCheckpointError: bad input (named).
        """

    @abstractmethod
    def write(self, ckpt: Checkpoint, path: str | Path, options: WriteOptions = WriteOptions()) -> None:
        """Write ``ckpt`` to ``path`` (the caller publishes it atomically).

        Raises:
            UsageError: missing or bad options (e.g. no model spec for a graph).
            WriteError, UnsupportedOpError: the write failed; the caller removes the output.
        """

    @abstractmethod
    def runner(self, path: str | Path, options: RunOptions = RunOptions()) -> BaseRunner:
        """A runner for the artifact at ``path`` in this format's runtime.

        Raises:
            UsageError: a weights-only format and no ``options.model``.
        """


class WeightsOnlyAdapter(FormatAdapter, ABC):
    """A format that stores weights only: its runner builds the model a spec names,
    loads the weights read from ``path`` and runs it in torch eager mode."""

    def runner(self, path: str | Path, options: RunOptions = RunOptions()) -> BaseRunner:
        if not options.model:
            raise UsageError(f"{path}: format {self.name!r} stores only weights; "
                             "pass --model SPEC to run it")
        from portability.adapters.torch.runner import TorchRunner

        ckpt = self.read(path, ReadOptions(trust_pickle=options.trust_pickle))
        return TorchRunner(options.model, ckpt, output_names=options.output_names)


def files_with_suffix(path: Path, suffixes: tuple[str, ...]) -> bool:
    """Whether ``path`` is a file with one of ``suffixes``, or a directory holding one."""
    if path.is_dir():
        return any(p.suffix.lower() in suffixes for p in path.iterdir() if p.is_file())
    return path.suffix.lower() in suffixes
