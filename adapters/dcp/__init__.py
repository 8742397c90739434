"""The torch.distributed.checkpoint (DCP) adapter: ``.metadata`` + ``__N_M.distcp`` directories.

Modules: ``adapter`` (``DcpAdapter``, detection), ``safe_io`` (metadata and
bytes entries without code execution), ``reader`` (tensor-by-tensor lazy read,
optimizer state to ``TrainingState``) and ``writer`` (any checkpoint to DCP).
Importing this package imports no framework.
"""

from portability.adapters.dcp.adapter import DcpAdapter

__all__ = ["DcpAdapter"]
