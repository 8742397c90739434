"""The library entry points: ``portability.check``, ``portability.compare`` and ``portability.faults``.

    report = portability.check("model.pt", model="mypkg.models:build")
    if not report:
        raise SystemExit(report.to_json())
"""

from __future__ import annotations

import logging
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from portability.core.dynamic_axes import parse_dynamic
from portability.core.formats import FORMATS, detect, unavailable
from portability.envs.builder import Env
from portability.errors import UsageError
from portability.harness.drift import Tolerance
from portability.harness.env_rows import environment_with_envs, targeted_subjects, with_env_rows
from portability.harness.evaluate import Predict, Subject
from portability.harness.executors import Executor, get_executor
from portability.harness.memory_budget import parse_memory
from portability.harness.reference import run_reference
from portability.harness.route_run import RouteJob, clear_caches, run_bundle, source_format
from portability.harness.routes import Route, parse_formats, parse_routes, select_routes
from portability.harness.scheduling import MemoryPlan, parse_workers, plan_memory
from portability.harness.workers import DEFAULT_TIMEOUT_S, WorkerFailure
from portability.reports.check_report import Report, RouteResult
from portability.reports.faults_report import FaultsReport
from portability.training.recipe import TrainingRecipe

logger = logging.getLogger(__name__)
Progress = Callable[[str, RouteJob, RouteResult | None], None]


def fixture_names(fixture: str | Sequence[str]) -> list[str]:
    """Expand ``"all"``, ``"mlp,cnn"`` or a list into fixture names.

    Raises:
        UsageError: an unknown fixture (the message lists the known ones).
    """
    from portability.fixtures.registry import all_fixtures, get_fixture

    items = fixture.split(",") if isinstance(fixture, str) else list(fixture)
    names: list[str] = []
    for item in (i.strip() for i in items if i.strip()):
        if item == "all":
            names.extend(f.name for f in all_fixtures())
        else:
            names.append(get_fixture(item).name)
    if not names:
        raise UsageError("no fixtures are registered")
    return list(dict.fromkeys(names))


InputsArg = str | Path | Sequence[str | Path] | None
DynamicArg = str | Sequence[str] | Mapping[str, Sequence[int]] | None


def _inputs_fields(inputs: InputsArg) -> dict[str, Any]:
    """Subject fields for ``inputs``: one ``.npz`` or several (the first also traces graph exports).

    Raises:
        UsageError: a file that does not exist.
    """
    files = [] if inputs is None else [inputs] if isinstance(inputs, (str, Path)) else list(inputs)
    for file in files:
        if not Path(file).is_file():
            raise UsageError(f"{file}: --inputs file not found (an .npz of arrays named after the model's inputs)")
    return {"inputs": str(files[0]) if files else None, "more_inputs": tuple(str(f) for f in files[1:])}


def _subjects(checkpoint, model, fixture, inputs, metric, metric_name, higher_is_better,
              trust_pickle, labels="labels", eval_data=None, dynamic=None) -> list[Subject]:
    if (checkpoint is None) == (fixture is None):
        raise UsageError("give either a checkpoint (with --model SPEC unless it is ONNX or a SavedModel) "
                         "or --fixture NAME|all")
    common = dict(trust_pickle=trust_pickle, dynamic=parse_dynamic(dynamic), **_inputs_fields(inputs),
                  **_metric_fields(metric, metric_name, higher_is_better, labels, eval_data))
    inputs = common["inputs"]
    if fixture is not None:
        return [Subject(label=f"fixture:{n}", model=model or f"fixture:{n}", fixture=n, **common)
                for n in fixture_names(fixture)]
    path = Path(checkpoint)
    fmt = detect(path)
    if model is None and is_hf_directory(path):
        model = f"hf:{path}"
    if inputs is None and model is None and FORMATS[fmt].stores_graph:
        raise UsageError(f"{path}: checking a {fmt} graph runs it on your inputs; pass --inputs FILE.npz "
                         "(arrays named after the graph's inputs)")
    return [Subject(label=str(path), model=model, checkpoint=str(path), **common)]


def _metric_fields(metric, metric_name: str, higher_is_better: bool, labels: str,
                   eval_data) -> dict[str, Any]:
    """Subject fields for ``metric``: a name or ``module:function`` (checked here, so a bad
    one is a usage error before any route runs), or a ``predict -> float`` callable."""
    fields: dict[str, Any] = dict(metric_name=metric_name, higher_is_better=higher_is_better, labels=labels,
                                  eval_data=None if eval_data is None else str(eval_data))
    if isinstance(metric, str):
        from portability.harness.metrics import load_custom, parse_metric

        spec = parse_metric(metric, higher_is_better)
        if spec.custom:
            load_custom(spec)
        fields["metric_spec"] = metric
    else:
        fields["metric"] = metric
    if eval_data is not None:
        from portability.harness.eval_data import eval_batches

        eval_batches(eval_data)
    return fields


def _check_labels(subject: Subject) -> None:
    """A metric that needs labels, and none in the inputs or the evaluation batches: a usage error."""
    from portability.harness.eval_data import eval_batches, metric_for
    from portability.harness.metrics import BUILTINS, parse_metric

    if not subject.metric_spec or parse_metric(subject.metric_spec).custom:
        return
    if BUILTINS[parse_metric(subject.metric_spec).name][1] != "required":
        return
    import numpy as np

    files = [Path(f) for f in [subject.inputs, *subject.more_inputs] if f]
    files += eval_batches(subject.eval_data) if subject.eval_data else []
    has = bool(files)
    for file in files:
        try:
            with np.load(file, allow_pickle=False) as data:
                has = has and subject.labels in data.files
        except (OSError, ValueError) as exc:
            raise UsageError(f"{file}: cannot read inputs as .npz ({exc})") from exc
    metric_for(subject.metric_spec, True, subject.model, False, has, subject.labels)


def is_hf_directory(path: Path) -> bool:
    """A Hugging Face model directory: ``config.json`` next to its weights (safetensors or
    ``pytorch_model.bin``, single or sharded), so ``check DIR`` implies ``--model hf:DIR``."""
    if not path.is_dir() or not (path / "config.json").is_file():
        return False
    names = [p.name for p in path.iterdir()]
    return any(n.endswith((".safetensors", ".safetensors.index.json", ".bin", ".bin.index.json"))
               for n in names)


# Rough relative cost of converting into (and running) each format; the others count 1.
# TF imports and SavedModel writes dominate a check, then ONNX exports.
_COST = {"tf-savedmodel": 6.0, "onnx": 3.0, "dcp": 1.5}


def _route_cost(job: RouteJob) -> float:
    """Estimated time of one route: every format it passes through adds its cost."""
    return sum(_COST.get(f, 1.0) for f in job.route)


def _bundles(indices: list[int], jobs: list[RouteJob]) -> list[list[int]]:
    """Group routes sharing their first conversion (one export serves both), longest first.

    A bundle runs its routes one after another in one worker, so its length is
    the sum of theirs; starting the longest bundles first (LPT scheduling) keeps
    the cores busy to the end instead of leaving one slow export for last.
    """
    groups: dict[tuple, list[int]] = {}
    for i in indices:
        job = jobs[i]
        key = (job.subject.label, job.route[:2]) if job.candidate is None else (i,)
        groups.setdefault(key, []).append(i)
    return sorted(groups.values(), key=lambda g: -sum(_route_cost(jobs[i]) for i in g))


def _run(jobs: list[RouteJob], skipped: dict[int, str], workers: int | str | None, timeout_s: float | None,
         progress: Progress | None, executor: str | None = None, device: str | None = None,
         max_memory: int | str | None = None) -> list[RouteResult]:
    runner = get_executor(executor, device)
    clear_caches()  # routes run in this process (workers=0) start from this check's files
    count = parse_workers(workers)
    memory = plan_memory(jobs, skipped, parse_memory(max_memory), in_process=count == 0)
    results: list[RouteResult | None] = [None] * len(jobs)
    for i, why in {**skipped, **memory.skipped}.items():
        job = jobs[i]
        results[i] = RouteResult(job.subject.label, list(job.route), "skipped", why, env=_env_name(job))
        progress and progress("done", job, results[i])
    _run_references(runner, jobs, memory, results, count, timeout_s, progress)
    bundles = _bundles([i for i in range(len(jobs)) if results[i] is None], jobs)

    def on_start(k: int) -> None:
        for i in bundles[k]:
            progress and progress("start", jobs[i], None)

    def on_done(k: int, value) -> None:
        for n, i in enumerate(bundles[k]):
            job = jobs[i]
            if isinstance(value, WorkerFailure):
                results[i] = RouteResult(job.subject.label, list(job.route), "error", value.reason, env=_env_name(job))
            else:
                results[i] = value[n]
            progress and progress("done", job, results[i])

    per_bundle = None if timeout_s is None else timeout_s * max((len(b) for b in bundles), default=1)
    runner.run(run_bundle, [[jobs[i] for i in b] for b in bundles], workers=count, timeout_s=per_bundle,
               on_start=on_start, on_done=on_done, admits=memory.bundle_gate(bundles).admits)
    for _, users, _ in memory.references:  # the reference's time, counted once, on its first route
        run, first = jobs[users[0]].reference, results[users[0]]
        if run is not None and first is not None:
            for phase, seconds in run.timings.items():
                first.timings[phase] = first.timings.get(phase, 0.0) + seconds
    return [r for r in results if r is not None]


def _env_name(job: RouteJob) -> str | None:
    return None if job.env is None else job.env.name


def _run_references(runner: Executor, jobs: list[RouteJob], memory: MemoryPlan, results: list[RouteResult | None],
                    workers: int | None, timeout_s: float | None, progress: Progress | None) -> None:
    """Compute the references planned apart (``scheduling``) and hand each to its routes; a
    reference whose worker crashed or hung makes each of its routes an error naming that."""
    if not memory.references:
        return
    runs = runner.run(run_reference, [jobs[k] for k, _, _ in memory.references], workers=workers,
                      timeout_s=timeout_s, admits=memory.reference_gate().admits)
    for (_, users, _), run in zip(memory.references, runs, strict=True):
        for i in users:
            if isinstance(run, WorkerFailure):
                job = jobs[i]
                results[i] = RouteResult(job.subject.label, list(job.route), "error", f"reference: {run.reason}",
                                         env=_env_name(job))
                progress and progress("done", job, results[i])
            else:
                jobs[i].reference = run


@dataclass
class Plan:
    """The jobs a check will run, and why any of them is skipped up front.

    ``envs`` are the deployment environments (``--env``), already built.
    """

    jobs: list[RouteJob]
    skipped: dict[int, str]
    tolerance: Tolerance
    envs: list[Env] = field(default_factory=list)


def plan(checkpoint: str | Path | None = None, *, model: str | None = None,
         fixture: str | Sequence[str] | None = None, formats: str | Sequence[str] | None = None,
         routes: str | Sequence[str] | None = None, inputs: InputsArg = None,
         tolerance: Tolerance | None = None, metric: str | Callable[[Predict], float] | None = None,
         metric_name: str = "metric", higher_is_better: bool = True, workdir: str | Path = "",
         trust_pickle: bool = False, labels: str = "labels", eval_data: str | Path | None = None,
         envs: Sequence[str] | None = None, opset: int | None = None,
         target_env: str | None = None, dynamic: DynamicArg = None) -> Plan:
    """The routes ``check`` would run, without running them (arguments as for ``check``).
    Deployment environments are built (or reused from the cache) here.

    Raises:
        UsageError, FormatError: bad arguments or an unreadable checkpoint.
        EnvError: an environment cannot be built.
    """
    tolerance = tolerance or Tolerance()
    chosen_formats = parse_formats(formats if formats is None or isinstance(formats, str) else list(formats))
    chosen_routes = parse_routes(routes if routes is None or isinstance(routes, str) else list(routes))
    subjects = _subjects(checkpoint, model, fixture, inputs, metric, metric_name, higher_is_better, trust_pickle,
                         labels, eval_data, dynamic)
    for subject in subjects:
        _check_labels(subject)
    subjects, environments = targeted_subjects(subjects, envs, opset, target_env)
    jobs: list[RouteJob] = []
    skipped: dict[int, str] = {}
    for subject in subjects:
        for route in select_routes(source_format(subject), chosen_formats, chosen_routes):
            why = next((w for w in map(unavailable, dict.fromkeys(route.formats)) if w), None)
            if why:
                skipped[len(jobs)] = why
            jobs.append(RouteJob(subject, route.formats, tolerance.for_route(route.name), str(workdir)))
    jobs, skipped = with_env_rows(jobs, skipped, environments)
    return Plan(jobs, skipped, tolerance, environments)


def apply_strict(results: list[RouteResult]) -> None:
    """``--strict``: a skipped route, one judged on its weights only, or one that fell back
    (``RouteResult.fallbacks``: synthesized inputs, weights not compared...) fails."""
    for result in results:
        if result.status == "skipped":
            result.status, result.reason = "fail", f"strict: route did not run ({result.reason})"
        elif result.status == "pass" and result.weights_only:
            result.status = "fail"
            result.reason = "strict: judged on weights only, outputs not compared (pass --model SPEC)"
        elif result.status == "pass" and result.fallbacks:
            result.status = "fail"
            result.reason = f"strict: fell back ({'; '.join(result.fallbacks)})"


def run_plan(the_plan: Plan, *, workers: int | str | None = None, timeout_s: float | None = DEFAULT_TIMEOUT_S,
             workdir: str | Path | None = None, progress: Progress | None = None,
             strict: bool = False, executor: str | None = None, device: str | None = None,
             max_memory: int | str | None = None) -> Report:
    """Run a ``Plan`` in worker processes (or on Ray) and gather the ``Report``
    (``strict``, ``workers``, ``executor``, ``device``, ``max_memory``: see ``check``)."""
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="portability-check-") as tmp:
        base = Path(workdir) if workdir else Path(tmp)
        base.mkdir(parents=True, exist_ok=True)
        for job in the_plan.jobs:
            job.workdir = str(base)
            job.keep_artifacts = workdir is not None  # a temporary folder's go as each bundle ends
        logger.info("running %d routes (%d skipped)", len(the_plan.jobs), len(the_plan.skipped))
        results = _run(the_plan.jobs, the_plan.skipped, workers, timeout_s, progress, executor, device,
                       max_memory)
    if strict:
        apply_strict(results)
    return Report(results, the_plan.tolerance, duration_s=time.perf_counter() - start,
                  environment=environment_with_envs(the_plan.envs))


def check(checkpoint: str | Path | None = None, *, model: str | None = None,
          fixture: str | Sequence[str] | None = None, formats: str | Sequence[str] | None = None,
          routes: str | Sequence[str] | None = None, inputs: InputsArg = None,
          tolerance: Tolerance | None = None, metric: str | Callable[[Predict], float] | None = None,
          metric_name: str = "metric", higher_is_better: bool = True, workers: int | str | None = None,
          timeout_s: float | None = DEFAULT_TIMEOUT_S, workdir: str | Path | None = None,
          trust_pickle: bool = False, progress: Progress | None = None, strict: bool = False,
          labels: str = "labels", eval_data: str | Path | None = None,
          envs: Sequence[str] | None = None, opset: int | None = None, target_env: str | None = None,
          executor: str | None = None, device: str | None = None, dynamic: DynamicArg = None,
          max_memory: int | str | None = None) -> Report:
    """Check every conversion route of a checkpoint (or of built-in fixtures).

    An ONNX file or a SavedModel needs no model spec: its own runtime gives the
    reference outputs (on ``inputs``), and ONNX <-> SavedModel routes convert the
    graph itself. A route ending in a weights-only format with no model spec is
    judged on its weights (a bitwise route passes, marked ``weights_only``).

    Args:
        checkpoint: the checkpoint file or directory (or use ``fixture``).
        model: model spec that runs it (``fixture:NAME``, ``hf:DIR``, ``pkg.mod:factory``);
            a Hugging Face directory (``config.json`` + weights) implies ``hf:DIR``.
        fixture: a fixture name, ``"all"``, or several names.
        formats: formats in play (default: all four).
        routes: explicit routes (``"torch->onnx->torch"``), overriding ``formats``.
        inputs: ``.npz`` of named inputs (default: the fixture's fixed batch), or several:
            every artifact runs on each and its outputs are judged per file (each output
            entry names its file); the first traces graph exports.
        tolerance: the policy (default: per-dtype tolerances, R >= 0.99, bitwise weights).
        metric: the task metric for recoverability R: a built-in name (``accuracy``,
            ``top5``, ``agreement``, ``exact-match``, ``mse``, ``mae``, ``cosine``,
            ``perplexity``; ``NAME@OUTPUT`` scores another output), a
            ``package.module:function`` called as ``fn(outputs, batch) -> float``, or a
            module-level ``metric(predict) -> float`` callable (it travels to the workers
            by reference). Default: the fixture's own, else chosen from a Hugging Face
            config, else accuracy with labels and agreement without
            (``portability.harness.eval_data``).
        metric_name / higher_is_better: describe a callable ``metric``; ``higher_is_better``
            also gives the direction of a ``module:function``.
        labels: the key of the labels in ``inputs`` and ``eval_data`` batches (never fed to the model).
        eval_data: a directory of ``.npz`` batches that R is measured on (default: ``inputs``).
        workers: worker processes: ``"auto"`` or None (the default: one per core, no more
            routes at once than fit in memory), a count, or 0 to run in this process.
        timeout_s: per route (routes sharing a conversion run together and share
            their budgets); past it the worker is killed and the routes are errors.
        workdir: where artifacts go (default: a temporary folder, removed after).
        trust_pickle: allow torch pickles that need other globals.
        progress: ``progress(event, job, result)`` with event ``start`` or ``done``.
        strict: a skipped route, one judged on its weights only, or one with a
            fallback (see ``RouteResult.fallbacks``) fails.
        envs: deployment environments, ``NAME=SPEC`` each (``ort116=onnxruntime==1.16.3,numpy<2``,
            ``prod=@requirements.txt``, ``edge=python:/opt/edge/bin/python``): every route
            artifact an environment can run (ONNX with onnxruntime, a SavedModel with
            TensorFlow) is also run there and judged the same way, one row per (route, env).
        opset: ONNX exports' opset (the file carries the lowest IR version it allows).
        target_env: the name of one of ``envs``: ONNX exports take the newest opset and
            IR version its onnxruntime reads.
        executor: ``local`` (worker processes, the default) or ``ray`` (Ray tasks; a
            local cluster unless ``RAY_ADDRESS`` names one).
        device: ``cuda`` places each job on a Ray node with a GPU.
        dynamic: input axes graph exports keep symbolic besides the defaults:
            ``{"image": [0, 2, 3]}`` or ``"image=0,2,3"`` items; a graph artifact that
            fixes one of them fails, saying which.
        max_memory: the memory the check's workers may take together (bytes or ``"16GB"``);
            default: what the system has available, less a headroom. Routes run side by side
            only while their estimated peaks fit in it, and a route that cannot fit alone is
            skipped with both figures (``portability.harness.memory_budget``).

    Returns:
        A ``Report``: truthy iff no route failed or errored and at least one passed.

    Raises:
        UsageError, FormatError: bad arguments or an unreadable checkpoint.
        EnvError: an environment cannot be built.
    """
    the_plan = plan(checkpoint, model=model, fixture=fixture, formats=formats, routes=routes, inputs=inputs,
                    tolerance=tolerance, metric=metric, metric_name=metric_name,
                    higher_is_better=higher_is_better, trust_pickle=trust_pickle, labels=labels,
                    eval_data=eval_data, envs=envs, opset=opset, target_env=target_env, dynamic=dynamic)
    if progress is not None and hasattr(progress, "set_total"):
        progress.set_total(len(the_plan.jobs))
    return run_plan(the_plan, workers=workers, timeout_s=timeout_s, workdir=workdir, progress=progress,
                    strict=strict, executor=executor, device=device, max_memory=max_memory)


def compare(reference: str | Path, candidate: str | Path, *, model: str | None = None,
            candidate_model: str | None = None, inputs: InputsArg = None,
            fixture: str | None = None, tolerance: Tolerance | None = None,
            metric: str | Callable[[Predict], float] | None = None, metric_name: str = "metric",
            higher_is_better: bool = True, timeout_s: float | None = DEFAULT_TIMEOUT_S,
            workers: int | str | None = None, trust_pickle: bool = False,
            progress: Progress | None = None, labels: str = "labels",
            eval_data: str | Path | None = None, envs: Sequence[str] | None = None,
            max_memory: int | str | None = None) -> Report:
    """Run two artifacts (any formats) on the same inputs and judge the candidate.

    Args:
        reference / candidate: artifact paths; formats are detected.
        model: model spec for weights-only artifacts (both, unless ``candidate_model``).
        candidate_model: model spec for the candidate when it differs.
        inputs: ``.npz`` of named inputs (or the fixture's batch), or several (judged per file).
        fixture: fixture whose batch and metric to use.
        envs: deployment environments, as for ``check``: the candidate is also run in
            each one that can run it.
        Others: as for ``check``.

    Returns:
        A one-route ``Report`` (``route`` = the two formats).

    Raises:
        UsageError, FormatError: bad arguments or an unreadable artifact.
    """
    tolerance = tolerance or Tolerance()
    ref_fmt, cand_fmt = detect(reference), detect(candidate)
    if model is None and fixture is not None:
        model = f"fixture:{fixture}"
    subject = Subject(label=f"{reference} vs {candidate}", model=model, checkpoint=str(reference),
                      fixture=fixture, trust_pickle=trust_pickle, **_inputs_fields(inputs),
                      **_metric_fields(metric, metric_name, higher_is_better, labels, eval_data))
    _check_labels(subject)
    route = Route((ref_fmt, cand_fmt))
    _, environments = targeted_subjects([], envs, None, None)
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="portability-compare-") as tmp:
        job = RouteJob(subject, route.formats, tolerance.for_route(route.name), tmp,
                       candidate=(str(candidate), cand_fmt), candidate_model=candidate_model)
        why = next((w for w in map(unavailable, dict.fromkeys(route.formats)) if w), None)
        jobs, skipped = with_env_rows([job], {0: why} if why else {}, environments)
        results = _run(jobs, skipped, 1 if workers is None else workers, timeout_s, progress,
                       max_memory=max_memory)
    return Report(results, tolerance, duration_s=time.perf_counter() - start,
                  environment=environment_with_envs(environments))


def faults(recipe: str | Callable[[], TrainingRecipe] | None = None, *, fixture: str | Sequence[str] | None = None,
           kinds: Sequence[str] | None = None, steps: int | None = None, every: int | None = None,
           resume: bool = True, components: bool = True, tf: bool = False) -> FaultsReport:
    """Run every fault kind on a training run and measure its recovery (``portability faults``).

    Args:
        recipe: your recipe factory: a module-level function returning a
            ``portability.TrainingRecipe``, or its name ``"mypkg.train:recipe"`` /
            ``"path/train.py:recipe"``. It is called again in worker processes, so a
            script that defines it must guard its own call with ``if __name__ == "__main__":``.
        fixture: instead of a recipe, built-in tasks or zoo fixtures (a name, ``"all"``, a list).
        kinds: fault kinds (default: all).
        steps / every: run length and checkpoint interval K (default: the recipe's).
        resume: also measure resume parity through torch and safetensors.
        components: also resume without each piece of state in turn.
        tf: also continue the run in TensorFlow (built-in and zoo tasks only).

    Returns:
        A ``FaultsReport``: truthy iff every fault was detected and recovered with
        R >= 0.99 and every exact resume route was bitwise; ``report.components``
        holds what each piece of state is worth.

    Raises:
        UsageError: neither or both of ``recipe`` and ``fixture``, an unknown task or
            fault kind, or a recipe that breaks the contract.
    """
    from portability.faults.campaign import KINDS
    from portability.reports.faults_report import run_faults
    from portability.training.recipe import factory_reference
    from portability.training.tasks import task_names

    if (recipe is None) == (fixture is None):
        raise UsageError("give a recipe (a function returning portability.TrainingRecipe) or fixture=NAME|'all'")
    if recipe is not None:
        names = [factory_reference(recipe)]
    else:
        items = fixture.split(",") if isinstance(fixture, str) else list(fixture or [])
        names = [n.strip() for n in items if n.strip()]
        if names == ["all"]:
            names = task_names()
    return run_faults(names, tuple(kinds) if kinds else KINDS, steps, every, resume=resume, tf=tf,
                      components=components)


__all__ = ["check", "compare", "faults", "plan", "run_plan", "Plan", "fixture_names", "FORMATS"]
