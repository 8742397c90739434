"""Model factories for the real-world corpus, written for this suite.

Each module has zero-argument factories that return the architecture in eval
mode (untrained weights; load the corpus file into it with ``strict=True``),
``inputs(factory)`` with a fixed seeded batch named after the forward arguments,
and ``write_inputs(path, factory)`` to save that batch as ``.npz``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np


def save_npz(path: str | Path, arrays: dict[str, np.ndarray]) -> Path:
    """Write named arrays to ``path`` (``.npz``) and return the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, **arrays)
    return path


def rng(seed: int) -> np.random.Generator:
    return np.random.default_rng(seed)
