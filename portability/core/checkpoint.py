"""The framework-neutral checkpoint: ordered named tensors, metadata, training state.

Adapters read a file into a ``Checkpoint`` and write one out; numpy (with
ml_dtypes for bfloat16/float8) is the currency, so no framework type crosses
an adapter boundary.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from portability.core.tensors import Tensor


@dataclass
class OptimizerState:
    """Optimizer state in the torch layout, which every adapter maps to and from.

    Attributes:
        kind: optimizer class name when known (``"Adam"``, ``"AdamW"``, ``"SGD"``).
        param_groups: hyperparameters per group; each group's ``"params"`` lists
            parameter ids (ints, as torch numbers them).
        state: per parameter id, its named state (e.g. ``exp_avg``,
            ``exp_avg_sq``, ``step``); values are arrays or plain scalars.
        param_names: parameter id -> state_dict name, where known.
    """

    param_groups: list[dict[str, Any]] = field(default_factory=list)
    state: dict[int, dict[str, Any]] = field(default_factory=dict)
    kind: str | None = None
    param_names: dict[int, str] = field(default_factory=dict)


@dataclass
class TrainingState:
    """Everything besides the weights that a resumed run needs.

    Attributes:
        optimizer: optimizer state, or None.
        scheduler: LR-scheduler state (JSON-able values and arrays), or None.
        epoch: epoch counter, if saved.
        global_step: optimizer step counter, if saved.
        loss: last loss, if saved.
        rng: RNG states by generator name (``"python"``, ``"numpy"``, ``"torch"``).
        data_position: where the data iterator stood (any JSON-able value).
        extra: any other top-level entries of the source checkpoint, kept so a
            round trip gives them back (JSON-able values and arrays only).
    """

    optimizer: OptimizerState | None = None
    scheduler: dict[str, Any] | None = None
    epoch: int | None = None
    global_step: int | None = None
    loss: float | None = None
    rng: dict[str, Any] = field(default_factory=dict)
    data_position: Any = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class Checkpoint:
    """Named tensors plus metadata and optional training state.

    Attributes:
        tensors: the model's tensors in state_dict order. Tied names are present
            too and refer to the same object as their target.
        aliases: tied name -> the name whose data it shares (e.g.
            ``{"lm_head.weight": "transformer.wte.weight"}``).
        metadata: free-form string metadata carried through conversions.
        training: training state, or None for a weights-only checkpoint.
        layout: how the source file arranged things (``"state_dict"``,
            ``"classic"``, ``"lightning"``...), so a writer can reproduce it.
        checksummed: set by readers when the source recorded checksums that
            were (or, for lazy tensors, will be) verified.
    """

    tensors: dict[str, Tensor] = field(default_factory=dict)
    aliases: dict[str, str] = field(default_factory=dict)
    metadata: dict[str, str] = field(default_factory=dict)
    training: TrainingState | None = None
    layout: str = "state_dict"
    checksummed: bool = False

    def canonical_names(self) -> list[str]:
        """Tensor names that own their data (aliases left out), in order."""
        return [n for n in self.tensors if n not in self.aliases]

    def parameter_count(self) -> int:
        """Number of elements over the tensors that own their data."""
        return sum(int(self.tensors[n].size) for n in self.canonical_names())
