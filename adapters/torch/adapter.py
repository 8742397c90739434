"""The PyTorch format: ``.pt/.pth/.bin/.ckpt`` state_dicts and training checkpoints."""

from __future__ import annotations

from pathlib import Path

from portability.adapters.base import WeightsOnlyAdapter, register_format
from portability.core.checkpoint import Checkpoint
from portability.core.options import ReadOptions, WriteOptions

TORCH_SUFFIXES = (".pt", ".pth", ".bin", ".ckpt")


@register_format
class TorchAdapter(WeightsOnlyAdapter):
    """Reads with ``weights_only=True`` (see ``safety``); writes a zip with a checksum record.
    A Hugging Face Trainer ``checkpoint-N/`` directory is a torch training checkpoint too
    (``trainer_dir``): read with its optimizer, scheduler, RNG and step, and written back
    as one when its layout is ``hf-trainer`` and the destination is a directory."""

    name = "torch"
    route_order = 0
    extensions = TORCH_SUFFIXES
    requires = ("torch",)
    extra = "torch"

    def detect(self, path: Path) -> bool:
        path = Path(path)
        if path.is_dir():
            return any(Path(n).suffix in TORCH_SUFFIXES for n in (p.name for p in path.iterdir()))
        name = path.name[:-len(".index.json")] if path.name.endswith(".index.json") else path.name
        return Path(name).suffix.lower() in TORCH_SUFFIXES

    def read(self, path: str | Path, options: ReadOptions = ReadOptions()) -> Checkpoint:
        # A plain zip checkpoint streams (lazy tensors, no torch import for the
        # weights); legacy pickles, shards and exotic objects go through torch.load.
        from portability.adapters.torch import streaming
        from portability.adapters.torch.archive import check_archive
        from portability.adapters.torch.trainer_files import is_trainer_directory

        path = Path(path)
        if is_trainer_directory(path):  # a Hugging Face Trainer checkpoint-N/ directory
            from portability.adapters.torch import trainer_dir

            return trainer_dir.read(path, options)
        if path.is_file() and not path.name.endswith(".index.json"):
            # The zip layer first: typed errors for damage, CRC-32s, ours-markers. The
            # storages' CRC-32s are checked by the streaming reader as it reads them.
            check_archive(path, options.verify, storage_crcs=False)
            ckpt = streaming.read_lazy(path, options)
            if ckpt is not None:
                return ckpt
        from portability.adapters.torch import state_dict

        return state_dict.read(path, options)

    def write(self, ckpt: Checkpoint, path: str | Path, options: WriteOptions = WriteOptions()) -> None:
        # Stream the weights into the archive ourselves (flat memory); torch.save
        # handles what that writer does not (dtypes without a torch storage name).
        from portability.adapters.torch import zip_writer
        from portability.adapters.torch.trainer_files import TRAINER_LAYOUT

        if ckpt.layout == TRAINER_LAYOUT and Path(path).suffix.lower() not in TORCH_SUFFIXES:
            from portability.adapters.torch import trainer_dir

            trainer_dir.write(ckpt, Path(path), options)
            return
        try:
            zip_writer.write(ckpt, Path(path))
            return
        except zip_writer.Unstreamable:
            pass
        from portability.adapters.torch import state_dict

        state_dict.write(ckpt, path, options)
