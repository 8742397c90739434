"""Where a route left the checkpoint's own dtype, for the report's ``casts``.

A bfloat16 or float16 checkpoint goes through every route in its own dtype where
the format and its runtime allow it. Where they do not, the route says so: the
weights its artifact stores in another dtype (from the weight comparison), and
the outputs its runtime computed in another dtype than the reference's.
"""

from __future__ import annotations

from collections import Counter

import numpy as np

from portability.core.dtypes import is_floating
from portability.harness.weights import WeightReport


def weight_casts(weights: WeightReport | None) -> list[str]:
    """One line per (checkpoint dtype, stored dtype) pair of the weights that changed dtype."""
    if weights is None:
        return []
    pairs = Counter((c.reference, c.candidate) for c in weights.dtype_changes)
    return [f"weights: {n} tensor{'s' if n > 1 else ''} stored as {cand} (the checkpoint's {ref})"
            for (ref, cand), n in pairs.items()]


def output_casts(reference: dict[str, np.ndarray], candidate: dict[str, np.ndarray]) -> list[str]:
    """One line per floating output the candidate's runtime gave in another dtype."""
    found = []
    for name, ref in reference.items():
        got = candidate.get(name)
        if got is None or not is_floating(np.asarray(ref).dtype) or not is_floating(np.asarray(got).dtype):
            continue
        if np.asarray(ref).dtype != np.asarray(got).dtype:
            found.append(f"outputs: {name!r} computed as {np.asarray(got).dtype}, the reference's as "
                         f"{np.asarray(ref).dtype}")
    return found
