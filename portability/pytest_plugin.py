"""pytest plugin: one test per (checkpoint, route) in a user's CI.

Registered through the ``pytest11`` entry point (or ``-p portability.pytest_plugin``).
Two ways in:

* ``pytest --portability model.pt --portability-model pkg.mod:build`` adds one
  test item per route, with no test file to write;
* a test that takes the ``portability_matrix`` fixture is parametrized with
  one case per route; the routes come from the command-line options, or from
  a module-level ``portability_check = {"fixture": "mlp", ...}`` dict of
  ``portability.check`` arguments. Call ``portability_matrix.assert_passed()``;
* ``pytest --portability-recipe mypkg.train:recipe`` runs the fault campaign on
  a training recipe: one test item per fault kind and resume route, and the
  worth of each piece of training state in the terminal summary.

A failing route fails its test with the drift table; a skipped route skips it.
The whole matrix runs once per session, in parallel worker processes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    """``--portability CHECKPOINT`` plus every ``portability check`` option as
    ``--portability-NAME``, generated from the one option table."""
    from portability.cli.options import CHECK_OPTIONS, add_pytest_options

    group = parser.getgroup("portability", "checkpoint portability checks")
    group.addoption("--portability", dest="portability", action="append", default=[], metavar="CHECKPOINT",
                    help="Checkpoint to check; one test per route (repeatable).")
    add_pytest_options(group, CHECK_OPTIONS)
    group.addoption("--portability-recipe", dest="portability_recipe", action="append", default=[],
                    metavar="MODULE:FUNCTION",
                    help="Run every fault kind on this training recipe (a function returning a "
                         "portability.TrainingRecipe); one test per fault kind and resume route (repeatable).")


@dataclass
class RouteCheck:
    """One (subject, route) case of the matrix, with its result once run."""

    key: tuple
    index: int
    runner: _MatrixRunner

    @property
    def result(self):
        """The route's ``RouteResult`` (runs the whole matrix the first time)."""
        return self.runner.report(self.key).routes[self.index]

    def assert_passed(self) -> None:
        """Fail with the drift table, skip with the reason, or return on pass."""
        from portability.reports.render import drift_text

        res = self.result
        if res.status == "skipped":
            pytest.skip(f"{res.id}: {res.reason}")
        if res.status != "pass":
            pytest.fail(drift_text(res), pytrace=False)


class _MatrixRunner:
    """Plans at collection time; runs each distinct configuration once, lazily."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.plans: dict[tuple, Any] = {}
        self.reports: dict[tuple, Any] = {}

    def _tolerance(self):
        from portability.cli.check_options import build_tolerance

        opt = self.config.option
        return build_tolerance(opt.portability_atol, opt.portability_rtol, opt.portability_min_r,
                               opt.portability_weights_atol)

    def plan(self, kwargs: dict[str, Any]):
        key = tuple(sorted((k, repr(v)) for k, v in kwargs.items()))
        if key not in self.plans:
            from portability.api import plan

            kwargs = dict(kwargs)
            kwargs.setdefault("tolerance", self._tolerance())
            kwargs.setdefault("trust_pickle", self.config.option.portability_trust_pickle)
            self.plans[key] = plan(**kwargs)
        return key, self.plans[key]

    def report(self, key: tuple):
        if key not in self.reports:
            from portability.api import run_plan

            opt = self.config.option
            rep = run_plan(self.plans[key], workers=opt.portability_workers, timeout_s=opt.portability_timeout,
                           strict=opt.portability_strict, executor=opt.portability_executor,
                           device=opt.portability_device, max_memory=opt.portability_max_memory)
            self.reports[key] = rep
            from portability.cli.check_options import write_reports

            write_reports(rep, opt.portability_json_path, opt.portability_junit_path,
                          opt.portability_markdown_path, opt.portability_html_path)
        return self.reports[key]


def _runner(config: pytest.Config) -> _MatrixRunner:
    if not hasattr(config, "_portability_runner"):
        config._portability_runner = _MatrixRunner(config)
    return config._portability_runner


def option_configs(config: pytest.Config) -> list[dict[str, Any]]:
    """``portability.plan`` arguments built from the command-line options."""
    opt = config.option
    common = {"model": opt.portability_model, "formats": opt.portability_formats,
              "routes": opt.portability_routes, "inputs": opt.portability_inputs or None,
              "metric": opt.portability_metric, "higher_is_better": opt.portability_higher_is_better,
              "labels": opt.portability_labels, "eval_data": opt.portability_eval_data,
              "envs": opt.portability_env, "opset": opt.portability_opset, "target_env": opt.portability_target_env,
              "dynamic": opt.portability_dynamic or None}
    configs = [dict(common, checkpoint=c) for c in opt.portability]
    if opt.portability_fixture:
        configs.append(dict(common, fixture=opt.portability_fixture))
    return configs


def _cases(config: pytest.Config, kwargs_list: list[dict[str, Any]]) -> list[RouteCheck]:
    from portability.errors import PortabilityError

    runner = _runner(config)
    cases = []
    for kwargs in kwargs_list:
        try:
            key, the_plan = runner.plan(kwargs)
        except PortabilityError as exc:
            raise pytest.UsageError(f"portability: {exc}") from exc
        cases += [RouteCheck(key, i, runner) for i in range(len(the_plan.jobs))]
    return cases


def _case_id(case: RouteCheck) -> str:
    job = case.runner.plans[case.key].jobs[case.index]
    return f"{job.subject.label}|{job.name}" + (f"|env={job.env.name}" if job.env is not None else "")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "portability_matrix" not in metafunc.fixturenames:
        return
    module_config = getattr(metafunc.module, "portability_check", None)
    configs = [module_config] if module_config else option_configs(metafunc.config)
    if not configs:
        raise pytest.UsageError("portability_matrix needs --portability CHECKPOINT, --portability-fixture NAME "
                                "or a module-level portability_check = {...}")
    cases = _cases(metafunc.config, configs)
    metafunc.parametrize("portability_matrix", cases, ids=[_case_id(c) for c in cases])


class PortabilityItem(pytest.Item):
    """A test item for one route, added when ``--portability``/``--portability-fixture`` is given."""

    def __init__(self, *, case: RouteCheck, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.case = case

    def runtest(self) -> None:
        self.case.assert_passed()

    def reportinfo(self):
        return self.path, None, f"portability[{self.name}]"

    def repr_failure(self, excinfo, style=None):
        return str(excinfo.value)


def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config, items: list) -> None:
    _add_recipe_items(session, config, items)
    configs = option_configs(config)
    if not configs or any("portability_matrix" in getattr(i, "fixturenames", ()) for i in items):
        return  # a user test already takes the matrix from these options
    for case in _cases(config, configs):
        items.append(PortabilityItem.from_parent(session, name=f"portability[{_case_id(case)}]", case=case))


# -- --portability-recipe: the fault campaign on a user's training recipe ----------------------

class _RecipeRuns:
    """Runs the campaign on every ``--portability-recipe`` once, when its first item runs."""

    def __init__(self, references: list[str]) -> None:
        self.references = references
        self.report: Any = None

    def get(self) -> Any:
        if self.report is None:
            from portability.reports.faults_report import run_faults

            self.report = run_faults(self.references, tf=False)
        return self.report


class RecipeRowItem(pytest.Item):
    """One fault kind or resume route of a recipe's campaign."""

    def __init__(self, *, runs: _RecipeRuns, reference: str, section: str, row: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.runs, self.reference, self.section, self.row = runs, reference, section, row

    def runtest(self) -> None:
        from portability.reports.writers import json_text

        found = [r for r in self.runs.get().rows
                 if r.fixture == self.reference and r.section == self.section and r.name == self.row]
        if not found:
            pytest.fail(f"{self.reference} {self.section}:{self.row}: not measured", pytrace=False)
        row = found[0]
        if row.status == "skipped":
            pytest.skip(f"{self.reference} {self.section}:{self.row}: {row.reason}")
        if row.status != "pass":
            pytest.fail(f"{self.reference} {self.section}:{self.row}: {row.reason}\n"
                        f"{json_text(row.figures, indent=None)}", pytrace=False)

    def reportinfo(self):
        return self.path, None, f"portability-recipe[{self.name}]"

    def repr_failure(self, excinfo, style=None):
        return str(excinfo.value)


def _add_recipe_items(session: pytest.Session, config: pytest.Config, items: list) -> None:
    references = list(config.option.portability_recipe)
    if not references:
        return
    from portability.errors import PortabilityError
    from portability.faults.campaign import KINDS
    from portability.faults.resume_parity import ROUTES
    from portability.training.tasks import get_task

    for ref in references:
        try:
            get_task(ref)  # an unimportable or broken recipe is a usage error, before anything runs
        except PortabilityError as exc:
            raise pytest.UsageError(f"portability: {exc}") from exc
    runs = _RecipeRuns(references)
    config._portability_recipe_runs = runs
    for ref in references:
        for section, names in (("fault", KINDS), ("resume", ROUTES)):
            for name in names:
                items.append(RecipeRowItem.from_parent(session, name=f"{ref}|{section}:{name}", runs=runs,
                                                       reference=ref, section=section, row=name))


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    """What each piece of a recipe's training state is worth, under the test results."""
    runs = getattr(config, "_portability_recipe_runs", None)
    if runs is None or runs.report is None or not runs.report.components:
        return
    from portability.reports.faults_report import COMPONENT_HEADERS, component_rows

    terminalreporter.section("portability: what each piece of training state is worth")
    rows = [COMPONENT_HEADERS] + component_rows(runs.report)
    widths = [max(len(r[i]) for r in rows) for i in range(len(COMPONENT_HEADERS))]
    for r in rows:
        terminalreporter.write_line("  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)).rstrip())
