"""The global generators' states, captured in one portable form and restored from any of
the forms training checkpoints carry them in.

Forms read:

- ours: ``{"python": {"version", "state", "gauss"}, "numpy": {"kind", "keys", "pos",
  "has_gauss", "cached"}, "torch": uint8 array}``;
- the zoo fixtures': ``python`` as ``random.getstate()``'s tuple, numpy's ``cached_gaussian``;
- the Hugging Face Trainer's ``rng_state.pth``: ``python`` and ``numpy`` as the tuples
  ``random.getstate()`` / ``np.random.get_state()`` return, torch's CPU state under
  ``cpu`` (``cuda`` and other device states are ignored on a CPU resume).
"""

from __future__ import annotations

import random
from typing import Any

import numpy as np

from portability.errors import FormatError


def rng_states() -> dict[str, Any]:
    """The python, numpy and torch global RNG states in portable form."""
    import torch

    version, internal, gauss = random.getstate()
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    return {
        "python": {"version": version, "state": list(internal), "gauss": gauss},
        "numpy": {"kind": kind, "keys": np.asarray(keys).copy(), "pos": int(pos),
                  "has_gauss": int(has_gauss), "cached": float(cached)},
        "torch": torch.get_rng_state().numpy().copy(),
    }


def set_rng_states(states: dict[str, Any]) -> None:
    """Set every generator that ``states`` holds (any of the forms above).

    Raises:
        FormatError: a state is present but malformed (names the generator).
    """
    try:
        if "python" in states:
            _set_python(states["python"])
        if "numpy" in states:
            _set_numpy(states["numpy"])
        torch_state = states.get("torch", states.get("cpu"))
        if torch_state is not None:
            import torch

            array = np.ascontiguousarray(np.asarray(torch_state, dtype=np.uint8))
            torch.set_rng_state(torch.from_numpy(array.copy()))
    except (KeyError, TypeError, ValueError, IndexError, RuntimeError) as exc:
        raise FormatError(f"checkpoint RNG states are malformed ({type(exc).__name__}: {exc}): "
                          "cannot resume exactly") from exc


def _set_python(state: Any) -> None:
    if isinstance(state, dict):
        version, internal, gauss = state["version"], state["state"], state["gauss"]
    else:
        version, internal, gauss = state
    random.setstate((int(version), tuple(int(v) for v in internal), gauss))


def _set_numpy(state: Any) -> None:
    if isinstance(state, dict):
        cached = state["cached"] if "cached" in state else state["cached_gaussian"]
        kind, keys, pos, has_gauss = state["kind"], state["keys"], state["pos"], state["has_gauss"]
    else:
        kind, keys, pos, has_gauss, cached = state
    np.random.set_state((kind, np.asarray(keys, dtype=np.uint32), int(pos), int(has_gauss), float(cached)))
