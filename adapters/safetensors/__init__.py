"""The safetensors adapter (``SafetensorsAdapter``): ``header`` parses and builds
headers, ``format`` reads and writes files and sharded directories."""

from portability.adapters.safetensors.adapter import SafetensorsAdapter

__all__ = ["SafetensorsAdapter"]
