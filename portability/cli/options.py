"""The one table of ``portability check`` options.

The typer command and the pytest plugin are both generated from ``CHECK_OPTIONS``:
``--NAME`` on the command line is ``--portability-NAME`` under pytest, with the same
help, type, default and repetition. Add an option here and both get it.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from portability.limits import MIN_RECOVERABILITY, ROUTE_TIMEOUT_S


@dataclass(frozen=True)
class Option:
    """One option of the check.

    Attributes:
        name: the long name without dashes (``min-r``).
        help: one line of help.
        type: ``str``, ``int``, ``float``, ``bool`` (a flag) or ``Path``.
        default: the value when not given (``[]`` for repeatable options).
        repeat: the option may be given more than once (a list).
        metavar: how the value is shown in help.
        minimum: the smallest value accepted (numbers only).
        short: a one-letter alias on the command line (``-q``).
        param: the Python name of the value (default: ``name`` with ``_``).
        negate: for a flag whose default is on, the name that turns it off
            (``--higher-is-better/--lower-is-better``).
    """

    name: str
    help: str
    type: type = str
    default: Any = None
    repeat: bool = False
    metavar: str | None = None
    minimum: float | None = None
    short: str | None = None
    param: str = ""
    negate: str | None = None

    @property
    def dest(self) -> str:
        return self.param or self.name.replace("-", "_")


_TOL = "[ROUTE@][OUTPUT=]VALUE"
_TOL_DEFAULT = "default per dtype: fp32 1e-5"
CHECK_OPTIONS: tuple[Option, ...] = (
    Option("model", "Model spec: fixture:NAME, hf:DIR, pkg.module:factory.", metavar="SPEC"),
    Option("fixture", "Built-in fixture name(s), comma-separated, or 'all'.", metavar="NAME"),
    Option("formats", "Formats in play, e.g. torch,safetensors,onnx (default: all).", metavar="LIST"),
    Option("routes", "Routes to run, e.g. 'torch->onnx,torch:onnx:torch' (overrides --formats).", metavar="LIST"),
    Option("inputs", ".npz of named inputs (default: the fixture's batch); repeatable: every artifact runs "
           "on each file, judged per file (another shape, say).", Path, repeat=True, default=[], metavar="NPZ"),
    Option("dynamic", "Keep these input axes symbolic in graph exports, NAME=AXES, e.g. image=0,2,3; "
           "repeatable (batch, and the sequence of token ids, are dynamic by default).", repeat=True,
           default=[], metavar="NAME=AXES"),
    Option("json", "Write the JSON report here.", Path, metavar="FILE", param="json_path"),
    Option("junit", "Write JUnit XML here (one testcase per route).", Path, metavar="FILE", param="junit_path"),
    Option("markdown", "Write a Markdown summary here.", Path, metavar="FILE", param="markdown_path"),
    Option("html", "Write a self-contained HTML report here (routes, R, drift against floors, "
           "first divergence).", Path, metavar="FILE", param="html_path"),
    Option("metric", "Task metric for R: accuracy, top5, agreement, exact-match, mse, mae, cosine, "
           "perplexity (NAME@OUTPUT scores another output) or pkg.module:function "
           "(default: the fixture's; else accuracy with labels, agreement without).", metavar="NAME"),
    Option("higher-is-better", "Direction of a pkg.module:function metric (default: higher is better).",
           bool, True, negate="lower-is-better"),
    Option("labels", "Key of the labels in the inputs and evaluation batches; never fed to the model.",
           default="labels", metavar="KEY"),
    Option("eval-data", "Directory of .npz batches that R is measured on (default: the inputs).", Path,
           metavar="DIR"),
    Option("atol", f"Absolute tolerance, {_TOL}; repeatable ({_TOL_DEFAULT}).", repeat=True,
           default=[], metavar=_TOL),
    Option("rtol", f"Relative tolerance, {_TOL}; repeatable ({_TOL_DEFAULT}).", repeat=True,
           default=[], metavar=_TOL),
    Option("min-r", f"Smallest recoverability R that passes, [ROUTE@]VALUE (default {MIN_RECOVERABILITY}).",
           repeat=True, default=[], metavar="[ROUTE@]VALUE"),
    Option("weights-atol", "Largest weight difference allowed (0 = bitwise, the default; "
           "'none' = do not judge weights).", metavar="VALUE"),
    Option("workers", "Worker processes: auto (one per core, as many routes at once as fit in memory) "
           "or N (0 = in-process).", default="auto", metavar="N|auto"),
    Option("max-memory", "Memory the check's workers may take together, e.g. 16GB (default: what is "
           "available, less a headroom); a route estimated past it alone is skipped.", metavar="SIZE"),
    Option("timeout", "Seconds per route before its worker is killed.", float, ROUTE_TIMEOUT_S,
           metavar="S", minimum=1.0),
    Option("trust-pickle", "Allow torch pickles that need other globals (runs code).", bool, False),
    Option("quiet", "No table or progress; one summary line.", bool, False, short="-q"),
    Option("strict", "Fail routes that were skipped, judged on weights only, or fell back.", bool, False),
    Option("env", "Also run each artifact in this deployment environment: NAME=REQ[,REQ...], NAME=@requirements.txt "
           "or NAME=python:/path/to/python; repeatable.", repeat=True, default=[], metavar="NAME=SPEC"),
    Option("opset", "ONNX opset of exports (the file carries the lowest IR version it allows).", int,
           metavar="N", minimum=1),
    Option("target-env", "Export ONNX at the newest opset and IR version this --env's onnxruntime reads.",
           metavar="NAME"),
    Option("executor", "Where routes run: local (worker processes) or ray (a Ray cluster: RAY_ADDRESS, "
           "else a local one).", default="local", metavar="local|ray"),
    Option("device", "cuda: place each route on a Ray node with a GPU (needs --executor ray).", metavar="cpu|cuda"),
)


def typer_parameters(options: tuple[Option, ...]) -> list[inspect.Parameter]:
    """Keyword parameters (typer ``Option`` defaults with annotations) for a command."""
    import typer

    params = []
    for opt in options:
        names = [f"--{opt.name}"] + ([opt.short] if opt.short else [])
        extra: dict[str, Any] = {}
        if opt.minimum is not None:
            extra["min"] = opt.minimum
        if opt.type is bool:
            annotation: Any = bool
            if opt.negate:
                names = [f"--{opt.name}/--{opt.negate}"]
            default = typer.Option(opt.default, *names, help=opt.help, **extra)
        elif opt.repeat:
            annotation = Optional[list[opt.type]]
            default = typer.Option(None, *names, help=opt.help, metavar=opt.metavar, **extra)
        else:
            annotation = opt.type if opt.default is not None else Optional[opt.type]
            default = typer.Option(opt.default, *names, help=opt.help, metavar=opt.metavar, **extra)
        params.append(inspect.Parameter(opt.dest, inspect.Parameter.KEYWORD_ONLY, default=default,
                                        annotation=annotation))
    return params


def with_options(options: tuple[Option, ...], leading: list[inspect.Parameter]) -> Callable:
    """Decorator: give ``func(**values)`` the signature typer reads: ``leading``
    parameters (arguments, command-specific options) and then the table's options."""

    def wrap(func: Callable) -> Callable:
        params = leading + typer_parameters(options)
        func.__signature__ = inspect.Signature(params, return_annotation=int)
        func.__annotations__ = {p.name: p.annotation for p in params} | {"return": int}
        return func
    return wrap


def add_pytest_options(group: Any, options: tuple[Option, ...], prefix: str = "--portability-") -> None:
    """Register the table's options on a pytest option group, as ``--portability-NAME``."""
    for opt in options:
        kwargs: dict[str, Any] = {"dest": f"portability_{opt.dest}", "help": opt.help}
        if opt.type is bool and opt.negate:
            group.addoption(prefix + opt.negate, dest=kwargs["dest"], action="store_false",
                            help=f"The opposite of {prefix}{opt.name}.")
            kwargs.update(action="store_true", default=bool(opt.default))
        elif opt.type is bool:
            kwargs.update(action="store_true", default=bool(opt.default))
        elif opt.repeat:
            kwargs.update(action="append", default=[], metavar=opt.metavar)
        else:
            kwargs.update(default=opt.default, metavar=opt.metavar,
                          type=opt.type if opt.type in (int, float) else None)
        group.addoption(prefix + opt.name, **{k: v for k, v in kwargs.items() if v is not None})


def select(*names: str) -> tuple[Option, ...]:
    """The table's options with these names, in table order (for commands that share some).

    Raises:
        KeyError: a name not in the table.
    """
    known = {opt.name for opt in CHECK_OPTIONS}
    unknown = [n for n in names if n not in known]
    if unknown:
        raise KeyError(f"not check options: {unknown}")
    return tuple(opt for opt in CHECK_OPTIONS if opt.name in names)
