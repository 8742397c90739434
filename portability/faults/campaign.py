"""The fault campaign: crash and corrupt a training run, then prove it recovers.

For one task (a user's ``TrainingRecipe``, a fixture's or a built-in) the campaign trains an
uninterrupted reference run, then for each fault kind trains in a subprocess, kills it or damages
its checkpoints, and then recovers as a
supervisor would: in the campaign's own process (not the one that crashed) it
scans the run's checkpoints, resumes from the latest valid one and finishes
the run. The uninterrupted reference runs in that process too, under the
same deterministic settings, so a perfect recovery is bitwise identical to it.

The kinds (K = checkpoint interval; file faults strike after step 3K+2, and
those that damage a file hit the step-3K one, leaving step 2K as the latest valid):

- ``kill-mid-step``: SIGKILL between backward and the optimizer update of step 3K+3.
- ``kill-during-write``: SIGKILL while step 4K's checkpoint is written, after the
  temporary file is complete and before it is renamed into place (the atomic
  writer makes every earlier kill point equivalent: the final name never exists).
- ``truncated-file``: the checkpoint cut to half its size.
- ``bitflip-tensor-data`` / ``bitflip-header``: one seeded bit flipped in the
  largest tensor's bytes / in the safetensors JSON header or the torch pickle.
- ``missing-shard``: a sharded safetensors checkpoint loses its second shard.
- ``stale-temporary``: a torn ``.step-*.portability-tmp-*`` file from an earlier crash.
- ``missing-optimizer-state``: the checkpoint rewritten intact but weights-only.

Detection means, per kind: a killed worker is seen to die by SIGKILL; a write
cut short leaves only a hidden temporary that is never loaded; a damaged or
incomplete checkpoint is refused by the loader with ``FormatError`` or
``IntegrityError``; a stale temporary is recognised and never loaded.

R = final metric after recovery / the reference's final metric (the inverse
for lower-is-better metrics, so R = 1 is perfect either way).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from portability.errors import PortabilityError
from portability.faults import injection as fi
from portability.limits import MIN_RECOVERABILITY
from portability.training.driver import TrainConfig, checkpoint_path, find_latest_valid, stale_temporaries, train
from portability.training.task import Task

KINDS = ("kill-mid-step", "kill-during-write", "truncated-file", "bitflip-tensor-data",
         "bitflip-header", "missing-shard", "stale-temporary", "missing-optimizer-state")
MIN_R = MIN_RECOVERABILITY
# The typed errors that count as "the loader refused the damaged checkpoint".
REFUSALS = ("FormatError", "IntegrityError", "UnsafeCheckpointError")


@dataclass
class FaultResult:
    """One fault kind's outcome (the JSON ``faults`` entry).

    Attributes:
        kind: the fault (one of ``KINDS``).
        detected: see the module docstring for what detection means per kind.
        recovered: the recovered run reached the full step count.
        recovered_from_step: the checkpoint the recovery resumed from.
        steps_lost: steps done when the fault struck minus ``recovered_from_step``.
        recoverability: R of the final metric against the uninterrupted run's.
        time_to_recover_s: scanning, validating and loading the checkpoints and
            restoring the training state (in the recovering process).
        fault_step: steps done when the fault struck.
        bitwise_after_recovery: the recovered run's losses equal the reference's bit for bit.
        detail: what was done, and the refusal's error message.
    """

    kind: str
    detected: bool
    recovered: bool
    recovered_from_step: int | None
    steps_lost: int | None
    recoverability: float | None
    time_to_recover_s: float | None
    fault_step: int | None = None
    final_metric: float | None = None
    reference_metric: float | None = None
    bitwise_after_recovery: bool | None = None
    detail: str = ""

    @property
    def passed(self) -> bool:
        return (self.detected and self.recovered and self.recoverability is not None
                and self.recoverability >= MIN_R)

    def __bool__(self) -> bool:
        return self.passed

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "passed": self.passed}


@dataclass
class CampaignResult:
    """Every fault kind's result for one task.

    Attributes:
        reference_run: the uninterrupted run (losses per step, final metric), which
            the resume routes and the state components compare against too.
        reference_state: that run's final training state.
    """

    fixture: str
    metric: str
    higher_is_better: bool
    reference_metric: float | None
    faults: list[FaultResult] = field(default_factory=list)
    seconds: float = 0.0
    reference_run: Any = field(default=None, repr=False)
    reference_state: Any = field(default=None, repr=False)

    def __bool__(self) -> bool:
        return all(self.faults)

    def to_dict(self) -> dict[str, Any]:
        return {"fixture": self.fixture, "metric": self.metric, "higher_is_better": self.higher_is_better,
                "reference_metric": self.reference_metric, "seconds": self.seconds,
                "faults": [f.to_dict() for f in self.faults]}


class _Campaign:
    def __init__(self, recipe, work: Path, steps: int, every: int, seed: int):
        self.recipe, self.work, self.steps, self.every, self.seed = recipe, work, steps, every, seed
        self.reference = None
        self.stop = 3 * every + 2  # file faults strike here: checkpoints at K, 2K, 3K exist
        self.damaged = 3 * every  # the newest checkpoint, which the file faults damage
        self._base_runs: dict[str, Path] = {}

    def worker(self, directory: Path, steps: int, fmt: str = "torch",
               hold: tuple[str, int] | None = None) -> int:
        """Train in a subprocess (killed with SIGKILL once it holds); returns its exit code."""
        cmd = [sys.executable, "-m", "portability.faults.injection", "--recipe", self.recipe.name,
               "--dir", str(directory), "--steps", str(steps), "--every", str(self.every), "--fmt", fmt]
        if hold is not None:
            cmd += [f"--hold-{hold[0]}", str(hold[1])]
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=worker_env())
        if hold is not None:
            line = proc.stdout.readline()
            while line and not line.startswith(fi.HOLD_MARKER):
                line = proc.stdout.readline()
            if line:
                os.kill(proc.pid, signal.SIGKILL)
        _out, err = proc.communicate(timeout=900)
        if proc.returncode not in (0, -signal.SIGKILL):
            raise PortabilityError(f"training worker for {self.recipe.name!r} failed "
                                   f"(exit {proc.returncode}): {' '.join(err.strip().splitlines()[-1:])}")
        return proc.returncode

    def base_run(self, fmt: str, run: Path) -> None:
        """A run stopped at ``self.stop``, trained once per format and copied per fault."""
        if fmt not in self._base_runs:
            self._base_runs[fmt] = self.work / f"base-{fmt}"
            self.worker(self._base_runs[fmt], self.stop, fmt=fmt)
        fi.copy_run(self._base_runs[fmt], run)

    def inject(self, kind: str, fmt: str) -> tuple[Path, int, bool, str]:
        """Make the fault happen; returns (run directory, fault step, precondition held, detail)."""
        run, stop = self.work / kind, self.stop
        if kind == "kill-mid-step":
            code = self.worker(run, self.steps, fmt, hold=("mid-step", stop + 1))
            return run, stop, code == -signal.SIGKILL, f"worker exit {code} (SIGKILL inside step {stop + 1})"
        if kind == "kill-during-write":
            write_step = 4 * self.every
            code = self.worker(run, self.steps, fmt, hold=("in-write", write_step))
            torn = stale_temporaries(run)
            ok = code == -signal.SIGKILL and bool(torn) and not checkpoint_path(run, write_step, fmt).exists()
            return run, write_step, ok, (f"worker exit {code} while writing step {write_step}; "
                                         f"left {len(torn)} temporary file(s)")
        self.base_run(fmt, run)
        target = checkpoint_path(run, self.damaged, fmt)
        if kind == "truncated-file":
            return run, stop, True, f"{target.name} cut to {fi.truncate_file(target)} bytes"
        if kind == "bitflip-tensor-data":
            off = fi.flip_in_span(target, fi.tensor_data_span(target), self.seed)
            return run, stop, True, f"{target.name}: bit flipped at byte {off} (tensor data)"
        if kind == "bitflip-header":
            off = fi.flip_in_span(target, fi.header_span(target), self.seed)
            return run, stop, True, f"{target.name}: bit flipped at byte {off} (header/metadata)"
        if kind == "missing-shard":
            return run, stop, True, f"{target.name}/{fi.remove_shard(target).name} deleted"
        if kind == "stale-temporary":
            stale = fi.plant_stale_temporary(run, target, stop + self.every)
            return run, stop, True, f"planted {stale.name}"
        if kind == "missing-optimizer-state":
            fi.strip_optimizer(target, fmt)
            return run, stop, True, f"{target.name} rewritten without optimizer state"
        raise PortabilityError(f"unknown fault kind {kind!r} (known: {', '.join(KINDS)})")

    def recover(self, kind: str) -> FaultResult:
        """Inject one fault, recover from the latest valid checkpoint, finish the run, judge it."""
        from portability.harness.recoverability import recoverability_ratio

        fmt = "safetensors-sharded" if kind == "missing-shard" else "torch"
        run, fault_step, precondition, detail = self.inject(kind, fmt)
        started = time.perf_counter()
        scan = find_latest_valid(run, remove_stale=True)
        trainable = self.recipe.make()
        if scan.latest is None:
            return FaultResult(kind, False, False, None, None, None, None, fault_step, detail=detail)
        trainable.restore(scan.latest)
        time_to_recover = round(time.perf_counter() - started, 4)
        done = train(trainable, TrainConfig(self.steps, self.every, run, fmt))
        rejected = {r.step: r for r in scan.rejected}
        if kind == "kill-mid-step":
            detected = precondition
        elif kind == "kill-during-write":
            detected = precondition and bool(scan.stale_temporaries) and scan.latest_step < fault_step
        elif kind == "stale-temporary":
            detected = bool(scan.stale_temporaries) and not rejected and not stale_temporaries(run)
        else:
            hit = rejected.get(self.damaged)
            detected = hit is not None and hit.error_type in REFUSALS
            if hit is not None:
                detail += f"; refused with {hit.error_type}: {hit.error}"
        ref = self.reference
        bitwise = all(ref.losses.get(s) == v for s, v in done.losses.items())
        r = recoverability_ratio(ref.final_metric, done.final_metric, self.recipe.higher_is_better)
        return FaultResult(kind, detected, trainable.step == self.steps, scan.latest_step,
                           fault_step - scan.latest_step, r, time_to_recover, fault_step,
                           done.final_metric, ref.final_metric, bitwise, detail)


def worker_env() -> dict[str, str]:
    """The environment of a training worker: this process's import path comes first on
    ``PYTHONPATH``, so a recipe module this process imported imports there too."""
    paths = [p for p in sys.path if p and os.path.isdir(p)]
    inherited = os.environ.get("PYTHONPATH")
    return {**os.environ, "PYTHONPATH": os.pathsep.join(paths + ([inherited] if inherited else []))}


def run_campaign(fixture: str | Task, kinds: tuple[str, ...] = KINDS, steps: int | None = None,
                 every: int | None = None, seed: int = 0, work: str | Path | None = None) -> CampaignResult:
    """Inject every fault kind into training runs of one task and measure recovery.

    Args:
        fixture: a task name (``portability.training.tasks.task_names()``), a recipe
            reference (``mypkg.train:recipe``), or the ``Task`` itself.
        kinds: fault kinds to run (default: all of ``KINDS``).
        steps: run length; the task's when None (must be > 4 * every).
        every: checkpoint interval K; the task's when None.
        seed: chooses which bit the bit-flip faults invert.
        work: directory for the runs; a temporary one (removed after) when None.

    Raises:
        UsageError: unknown task or fault kind, or too few steps.
        PortabilityError: a training worker failed for a reason other than the fault.
    """
    from portability.errors import UsageError
    from portability.training.tasks import get_task

    recipe = get_task(fixture) if isinstance(fixture, str) else fixture
    steps = steps or recipe.steps
    every = every or recipe.every
    unknown = [k for k in kinds if k not in KINDS]
    if unknown:
        raise UsageError(f"unknown fault kind(s) {', '.join(unknown)} (known: {', '.join(KINDS)})")
    if steps <= 4 * every:
        raise UsageError(f"{steps} steps are too few for checkpoints every {every}: need more than {4 * every}")
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="portability-faults-") as tmp:
        base = Path(work) if work is not None else Path(tmp)
        campaign = _Campaign(recipe, base / _folder(recipe.name), steps, every, seed)
        campaign.work.mkdir(parents=True, exist_ok=True)
        uninterrupted = recipe.make()
        campaign.reference = train(uninterrupted, TrainConfig(steps))
        faults = [campaign.recover(kind) for kind in kinds]
    return CampaignResult(recipe.name, recipe.metric, recipe.higher_is_better,
                          campaign.reference.final_metric, faults, round(time.perf_counter() - start, 2),
                          campaign.reference, uninterrupted.capture())


def _folder(name: str) -> str:
    """A directory name for a task (a recipe reference holds ``:`` and ``/``)."""
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)[-80:] or "task"
