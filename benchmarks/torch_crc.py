"""Cost of verifying the zip CRC-32 of every record when reading a torch file.

torch does not check the CRC-32s its zip archive records; the torch adapter
streams each record through ``zipfile`` to check them. This writes a torch
file of about ``--megabytes`` MB twice, with plain ``torch.save`` (the CRC-32 is
then the only check) and with the adapter (its xxh3 record covers the storages,
so only the other records' CRC-32s are checked), and times each, best of
``--repeats``, in this process:

- ``read``: ``state_dict.read`` with verification (the default);
- ``read, verify off``: the same without the CRC pass (``ReadOptions(verify=False)``);
- ``crc pass (all)``: ``TorchArchive.verify_crcs`` over every record, alone.

The figure to watch is ``read / read, verify off``: what verification adds to a read that
memory-maps the storages without touching them (the cheapest read there is).

Usage: python benchmarks/torch_crc.py [--megabytes 100] [--repeats 5]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path


def best_of(repeats: int, fn) -> float:
    """The shortest wall time of ``repeats`` calls."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main(argv: list[str] | None = None) -> int:
    """Print the three timings and the ratio."""
    import torch

    from portability.adapters.torch import state_dict
    from portability.adapters.torch.archive import TorchArchive
    from portability.core.options import ReadOptions
    from portability.core.tensors import as_array

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--megabytes", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as scratch:
        plain, ours = Path(scratch) / "plain.pt", Path(scratch) / "ours.pt"
        per_tensor = 4 * 1024 * 1024
        count = max(1, args.megabytes * 1024 * 1024 // (per_tensor * 4))
        torch.save({f"layer{i}.weight": torch.randn(per_tensor) for i in range(count)}, plain)
        state_dict.write(state_dict.read(plain), ours)
        print(f"file: {plain.stat().st_size / 1e6:.0f} MB in {count} tensors; best of {args.repeats}")
        for label, path in (("plain torch.save (CRC-32 only)", plain), ("ours (xxh3 record)", ours)):

            def read(verify: bool, path: Path = path) -> None:
                ckpt = state_dict.read(path, ReadOptions(verify=verify))
                for tensor in ckpt.tensors.values():
                    as_array(tensor)

            def crc(path: Path = path) -> None:
                with TorchArchive(path) as archive:
                    archive.verify_crcs()

            read(True)  # warm the page cache
            full, unverified, crc_only = (best_of(args.repeats, f)
                                          for f in (lambda: read(True), lambda: read(False), crc))
            print(f"{label}:")
            print(f"  read:              {full * 1e3:8.1f} ms")
            print(f"  read, verify off:  {unverified * 1e3:8.1f} ms")
            print(f"  crc pass (all):    {crc_only * 1e3:8.1f} ms  ({plain.stat().st_size / crc_only / 1e9:.2f} GB/s)")
            print(f"  read / read, verify off: {full / unverified:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
