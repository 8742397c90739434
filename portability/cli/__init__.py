"""The ``portability`` command line.

Each subcommand lives in its own module and registers itself on ``app``. Errors
we raise on purpose print one line (``error: ...``) and exit non-zero; pass
``--debug`` to see the traceback instead.
"""

from __future__ import annotations

import sys

import click
import typer

app = typer.Typer(
    name="portability",
    help="Move checkpoints between PyTorch, safetensors, ONNX and TensorFlow, and check that the model survived.",
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


def main(argv: list[str] | None = None) -> int:
    """Console-script entry point; returns the exit code."""
    from portability.errors import PortabilityError

    args = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args
    try:
        result = app(args=args, prog_name="portability", standalone_mode=False)
        code = int(result) if isinstance(result, int) else 0
    except click.exceptions.Exit as exc:
        code = exc.exit_code
    except click.ClickException as exc:
        exc.show()
        code = 2
    except click.exceptions.Abort:
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
        code = 3
    if argv is None:
        sys.exit(code)
    return code
