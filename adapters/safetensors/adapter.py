"""The safetensors format: single files and sharded directories (Hugging Face index layout)."""

from __future__ import annotations

from pathlib import Path

from portability.adapters.base import WeightsOnlyAdapter, register_format
from portability.core.checkpoint import Checkpoint
from portability.core.options import ReadOptions, WriteOptions

INDEX_SUFFIX = ".safetensors.index.json"


@register_format
class SafetensorsAdapter(WeightsOnlyAdapter):
    """Our own streaming reader and writer (no pickle; training state as tensors + JSON)."""

    name = "safetensors"
    route_order = 1
    extensions = (".safetensors",)

    def detect(self, path: Path) -> bool:
        path = Path(path)
        if path.is_dir():
            return any(n.endswith(INDEX_SUFFIX) or n.endswith(".safetensors") for n in (p.name for p in path.iterdir()))
        return path.name.endswith(INDEX_SUFFIX) or path.suffix.lower() == ".safetensors"

    def read(self, path: str | Path, options: ReadOptions = ReadOptions()) -> Checkpoint:
        from portability.adapters.safetensors import format as safetensors_format

        return safetensors_format.read(path, options)

    def write(self, ckpt: Checkpoint, path: str | Path, options: WriteOptions = WriteOptions()) -> None:
        from portability.adapters.safetensors import format as safetensors_format

        safetensors_format.write(ckpt, path, options)
