"""Plan a check's jobs against the memory there is (``memory_budget``).

For every subject: the reference's estimate and each route's; routes that
cannot fit alone are skipped with the reason; a reference whose float64 copy
cannot fit runs without it. A large checkpoint's reference is computed apart,
once, before its routes (``reference.run_reference``), so the routes' estimates
leave it out and more of them fit side by side. Bundles (routes sharing their
first conversion, run in one worker) are admitted by a ``MemoryGate``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from portability.errors import UsageError
from portability.harness import memory_budget as mb
from portability.harness.noise_floor import FLOAT64_MAX_RATIO, FLOAT64_SMALL_BYTES
from portability.harness.route_run import RouteJob

# A reference of a checkpoint this large is computed once, in its own worker, before its routes.
APART_BYTES = 256 * 2**20
# Checkpoints this small always run: their routes' memory is the frameworks', whatever the budget
# (and their artifacts are not budgeted on disk either).
SMALL_BYTES = 64 * 2**20


@dataclass
class MemoryPlan:
    """What the budget decided.

    Attributes:
        budget: the bytes running jobs may take together (None: unknown, no limit).
        skipped: job index -> why it does not run (it would not fit alone).
        route_estimates: job index -> its worker's peak, the reference left out when
            the reference is computed apart.
        references: (the job whose subject's reference is computed apart, the jobs using it,
            the reference's estimate), one per such subject.
        disk_budget: the bytes of artifacts running jobs may write together (None: unknown).
        disk_estimates: job index -> the bytes of artifacts it writes.
    """

    budget: int | None
    skipped: dict[int, str] = field(default_factory=dict)
    route_estimates: dict[int, int] = field(default_factory=dict)
    references: list[tuple[int, list[int], int]] = field(default_factory=list)
    disk_budget: int | None = None
    disk_estimates: dict[int, int] = field(default_factory=dict)

    def bundle_gate(self, bundles: list[list[int]]) -> mb.MemoryGate:
        """A gate over bundles: each is estimated at its largest route (they run in turn,
        and a bundle's routes share their first steps' artifacts)."""
        return mb.MemoryGate([max(self.route_estimates.get(i, mb.FRAMEWORK_BYTES) for i in b) for b in bundles],
                             self.budget, [max(self.disk_estimates.get(i, 0) for i in b) for b in bundles],
                             self.disk_budget)

    def reference_gate(self) -> mb.MemoryGate:
        return mb.MemoryGate([estimate for _, _, estimate in self.references], self.budget)


def plan_memory(jobs: list[RouteJob], skipped: dict[int, str], max_memory: int | None,
                in_process: bool = False) -> MemoryPlan:
    """Estimate every job, skip what cannot fit, and choose the references computed apart.

    Sets ``float64_limit`` on the jobs (the bytes the budget leaves for a float64 copy).

    Args:
        jobs: the check's jobs; ``skipped``: those already skipped (left alone).
        max_memory: ``--max-memory`` in bytes, or None for what is available.
        in_process: the check runs in this process (``workers=0``): nothing is apart.
    """
    plan = MemoryPlan(mb.budget_bytes(max_memory))
    folders = {job.workdir for job in jobs if job.workdir}
    if len(folders) == 1:
        plan.disk_budget = mb.disk_budget(next(iter(folders)))
    by_subject: dict[str, list[int]] = {}
    for i, job in enumerate(jobs):
        if i not in skipped:
            by_subject.setdefault(job.subject.label, []).append(i)
    for users in by_subject.values():
        _plan_subject(plan, jobs, users, max_memory, in_process)
    return plan


def _plan_subject(plan: MemoryPlan, jobs: list[RouteJob], users: list[int], max_memory: int | None,
                  in_process: bool) -> None:
    subject = jobs[users[0]].subject
    model = mb.checkpoint_bytes(subject.checkpoint)
    wide = mb.float64_bytes(model, mb.dtype_width(subject.checkpoint))
    if wide > FLOAT64_SMALL_BYTES and wide > FLOAT64_MAX_RATIO * model:
        wide = 0  # the size policy skips the float64 run anyway (noise_floor)
    budget = plan.budget
    limit = None if budget is None else max(0, budget - mb.FRAMEWORK_BYTES)
    for i in users:
        jobs[i].float64_limit = limit
    reference = mb.reference_estimate(model, wide if limit is None or wide <= limit else 0)
    small = model < SMALL_BYTES
    why = None if small else mb.too_big(reference, budget, "the reference (the source model, run once)",
                                       max_memory)
    if why:
        plan.skipped.update({i: why for i in users})
        return
    apart = not in_process and model >= APART_BYTES
    for i in users:
        job = jobs[i]
        estimate = mb.route_estimate(job.route, model)
        what = f"route {'->'.join(job.route)}"
        why = None if small else mb.too_big(estimate, budget, what, max_memory)
        if job.candidate is None:  # a comparison writes nothing
            plan.disk_estimates[i] = mb.disk_estimate(job.route, model)
            if not small:
                why = why or mb.too_big_for_disk(plan.disk_estimates[i], plan.disk_budget, what, job.workdir)
        if why:
            plan.skipped[i] = why
            continue
        plan.route_estimates[i] = estimate if apart else max(estimate, reference)
    running = [i for i in users if i not in plan.skipped]
    if apart and running:
        plan.references.append((running[0], running, reference))


def parse_workers(value: int | str | None) -> int | None:
    """``--workers``: ``auto`` (or None) for one per core as memory allows, else a count
    (0 runs in this process).

    Raises:
        UsageError: anything else.
    """
    if value is None or (isinstance(value, str) and value.strip().lower() == "auto"):
        return None
    try:
        count = int(value)
    except (TypeError, ValueError) as exc:
        raise UsageError(f"--workers {value!r}: give a number of worker processes or 'auto'") from exc
    if count < 0:
        raise UsageError(f"--workers {value!r}: cannot be negative")
    return count
