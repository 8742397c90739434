"""The ``portability`` command line.

Each subcommand lives in its own module and registers itself on ``app``. Errors
print one line (``error: ...``) and exit non-zero; pass ``--debug`` to see the
traceback instead.

Exit codes are part of the contract for CI users (README and ``--help`` say the
same): 0 success, 1 a check failed (``EXIT_FAILED``), 2 no verdict: bad usage,
bad or damaged input, or an internal error (``EXIT_ERROR``), 130 interrupted.
"""

from __future__ import annotations

import importlib
import os
import sys

import typer

EXIT_OK = 0
EXIT_FAILED = 1  # a check ran and failed (a route, a checksum, an undetected fault)
EXIT_ERROR = 2  # no verdict: bad usage, bad or damaged input, or an internal error
EXIT_INTERRUPTED = 130
EXIT_CODES_HELP = ("Exit codes: 0 success; 1 a check failed; 2 no verdict (bad usage, bad or damaged "
                   "input, or an internal error; the one-line message says which); 130 interrupted.")

app = typer.Typer(
    name="portability",
    help="Move checkpoints between PyTorch, safetensors, ONNX and TensorFlow, and check that the model "
         f"survived.\n\n{EXIT_CODES_HELP}",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

_state = {"debug": False}


@app.callback()
def _root(debug: bool = typer.Option(False, "--debug", help="Show tracebacks instead of one-line errors.")) -> None:
    _state["debug"] = debug


def _register_subcommands() -> None:
    """Import every ``*_cmd`` module beside this one; each registers its command."""
    import importlib
    import pkgutil

    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if info.name.endswith("_cmd"):
            importlib.import_module(f"{__name__}.{info.name}")


_register_subcommands()


def _click_errors() -> tuple[type[BaseException], ...]:
    """Usage-error classes of the click that typer uses (vendored in newer typer releases)."""
    found = []
    for module in ("typer._click.exceptions", "click.exceptions"):
        try:
            found.append(importlib.import_module(module).ClickException)
        except (ImportError, AttributeError):
            continue
    return tuple(found)


def _report_usage_error(exc) -> int:
    """Print a bad command line as one ``error:`` line (help, when no arguments were given)."""
    if type(exc).__name__ == "NoArgsIsHelpError":
        exc.show()
        return 2
    ctx = getattr(exc, "ctx", None)
    hint = f" (see '{ctx.command_path} --help')" if ctx is not None else ""
    print(f"error: {exc.format_message()}{hint}", file=sys.stderr)
    return int(getattr(exc, "exit_code", 2) or 2)


def _interrupt_on_sigterm() -> None:
    """Treat SIGTERM like Ctrl-C, so partial outputs are cleaned up on the way out."""
    import signal

    def handler(signum, frame):
        raise KeyboardInterrupt

    try:
        signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread
        pass


def main(argv: list[str] | None = None) -> int:
    """Console-script entry point; returns the exit code."""
    from portability.errors import PortabilityError

    args = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args
    if debug:
        os.environ["PORTABILITY_DEBUG"] = "1"  # worker processes keep the frameworks' output too
        import logging

        logging.basicConfig(level=logging.DEBUG, format="%(levelname)s %(name)s: %(message)s")
    else:
        # TensorFlow's, absl's and onnxruntime's start-up notices would break the
        # one-line output; --debug keeps them.
        from portability.core.quiet import quiet_frameworks

        quiet_frameworks()
    if argv is None:
        _interrupt_on_sigterm()
    try:
        result = app(args=args, prog_name="portability", standalone_mode=False)
        code = int(result) if isinstance(result, int) else 0
        if code == 130:  # typer returns 130 after Ctrl-C (or SIGTERM, see above)
            print("interrupted", file=sys.stderr)
    except typer.Exit as exc:
        code = exc.exit_code
    except _click_errors() as exc:
        code = _report_usage_error(exc)
    except typer.Abort:
        print("aborted", file=sys.stderr)
        code = 130
    except PortabilityError as exc:
        if debug:
            raise
        print(f"error: {exc}", file=sys.stderr)
        code = exc.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        code = 130
    except Exception as exc:  # an unexpected failure still gets one line
        if debug:
            raise
        print(f"error: internal error: {type(exc).__name__}: {exc} (rerun with --debug for the traceback)",
              file=sys.stderr)
        code = EXIT_ERROR
    if argv is None:
        sys.exit(code)
    return code
