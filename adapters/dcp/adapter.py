"""The DCP format: a directory written by ``torch.distributed.checkpoint.save``."""

from __future__ import annotations

from pathlib import Path

from portability.adapters.base import WeightsOnlyAdapter, register_format
from portability.core.checkpoint import Checkpoint
from portability.core.options import ReadOptions, WriteOptions

METADATA_NAME = ".metadata"
DATA_SUFFIX = ".distcp"


@register_format
class DcpAdapter(WeightsOnlyAdapter):
    """Reads with ``FileSystemReader`` one tensor at a time, without a process group."""

    name = "dcp"
    route_order = 4
    requires = ("torch",)
    extra = "torch"
    is_directory = True

    def detect(self, path: Path) -> bool:
        path = Path(path)
        if not path.is_dir() or not (path / METADATA_NAME).is_file():
            return False
        return any(p.suffix == DATA_SUFFIX for p in path.iterdir())

    def read(self, path: str | Path, options: ReadOptions = ReadOptions()) -> Checkpoint:
        from portability.adapters.dcp import reader

        return reader.read(Path(path), options)

    def write(self, ckpt: Checkpoint, path: str | Path, options: WriteOptions = WriteOptions()) -> None:
        from portability.adapters.dcp import writer

        writer.write(ckpt, Path(path), options)
