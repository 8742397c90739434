"""``--env NAME=SPEC``: the software environments a model is deployed to.

SPEC is one of:

- comma-separated requirement specifiers: ``ort116=onnxruntime==1.16.3,numpy<2``
  (a part that starts with a comparison joins the one before it, so
  ``numpy>=1.26,<2`` stays one requirement);
- a requirements file: ``prod=@requirements-prod.txt``;
- an existing interpreter: ``edge=python:/opt/edge/bin/python``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from portability.errors import UsageError

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_REQUIREMENT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*(\[[A-Za-z0-9_,.\s-]*\])?\s*([<>=!~;@ ].*)?$")
_COMPARISON = ("<", ">", "=", "!", "~")


@dataclass(frozen=True)
class EnvSpec:
    """One parsed ``NAME=SPEC``.

    Attributes:
        name: how reports name the environment.
        kind: ``requirements``, ``file`` or ``python``.
        requirements: the specifiers (``requirements``), or the file's lines (``file``).
        source: the requirements file, or the interpreter (``python``); else empty.
        text: the SPEC as given.
    """

    name: str
    kind: str
    requirements: tuple[str, ...] = ()
    source: str = ""
    text: str = ""


def parse_env(text: str) -> EnvSpec:
    """Parse one ``NAME=SPEC``.

    Raises:
        UsageError: no ``=``, a bad name, an empty spec, an unreadable requirements file,
            a missing interpreter or a malformed requirement (the message quotes it).
    """
    name, eq, spec = text.partition("=")
    name, spec = name.strip(), spec.strip()
    if not eq or not name or not spec:
        raise UsageError(f"--env {text!r}: expected NAME=SPEC, e.g. ort116=onnxruntime==1.16.3,numpy<2")
    if not _NAME.match(name) or name == "main":
        raise UsageError(f"--env {text!r}: the name {name!r} must be letters, digits, '_', '.' or '-' "
                         "(and not 'main', which names this environment)")
    if spec.startswith("python:"):
        python = Path(spec.removeprefix("python:")).expanduser()
        if not python.is_file():
            raise UsageError(f"--env {text!r}: no interpreter at {python}")
        return EnvSpec(name, "python", source=str(python.absolute()), text=spec)
    if spec.startswith("@"):
        path = Path(spec[1:]).expanduser()
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except OSError as exc:
            raise UsageError(f"--env {text!r}: cannot read the requirements file {path}: {exc.strerror}") from exc
        wanted = tuple(ln.split(" #")[0].strip() for ln in lines if ln.strip() and not ln.lstrip().startswith("#"))
        if not wanted:
            raise UsageError(f"--env {text!r}: {path} lists no requirements")
        return EnvSpec(name, "file", wanted, str(path.absolute()), spec)
    return EnvSpec(name, "requirements", split_requirements(spec, text), text=spec)


def split_requirements(spec: str, text: str = "") -> tuple[str, ...]:
    """``onnxruntime==1.16.3,numpy>=1.26,<2`` -> ``("onnxruntime==1.16.3", "numpy>=1.26,<2")``.

    Raises:
        UsageError: an empty or malformed requirement.
    """
    parts: list[str] = []
    for piece in (p.strip() for p in spec.split(",")):
        if piece.startswith(_COMPARISON) and parts:
            parts[-1] = f"{parts[-1]},{piece}"
        else:
            parts.append(piece)
    for part in parts:
        if not part or not _REQUIREMENT.match(part):
            raise UsageError(f"--env {text or spec!r}: {part!r} is not a requirement specifier "
                             "(e.g. onnxruntime==1.16.3)")
    return tuple(parts)


def parse_envs(items: list[str] | tuple[str, ...] | None) -> list[EnvSpec]:
    """Parse every ``--env``; names must be distinct.

    Raises:
        UsageError: see ``parse_env``, or a name given twice.
    """
    specs = [parse_env(item) for item in items or []]
    names = [s.name for s in specs]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise UsageError(f"--env: the name {twice[0]!r} is given twice")
    return specs
