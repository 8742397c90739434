"""Model specs: how to build the runnable model that goes with a checkpoint.

A graph format (ONNX, a SavedModel) stores computation as well as weights, so
writing one needs the model's code. A spec names it in one of three forms:

- ``fixture:NAME``: a model of the fixture zoo (``portability fixtures``);
- ``hf:DIR``: a Hugging Face model directory, built with transformers from its
  ``config.json`` (``architectures``) and, unless a checkpoint is given, the
  weights in the directory;
- ``package.module:factory``: a function that returns the model.

Parsing knows no framework; ``portability.adapters.torch.models`` builds them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from portability.errors import UsageError

FORMS = "fixture:NAME, hf:DIR, package.module:factory"
_DOTTED = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")
_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclass(frozen=True)
class ModelSpec:
    """A parsed model spec.

    Attributes:
        kind: ``"fixture"``, ``"hf"`` or ``"factory"``.
        target: the fixture name, the directory, or ``package.module``.
        factory: the function name, for ``kind == "factory"``.
        text: the spec as the user wrote it.
    """

    kind: str
    target: str
    factory: str = ""
    text: str = ""

    @property
    def directory(self) -> Path:
        """The model directory of an ``hf:`` spec."""
        return Path(self.target)

    def __str__(self) -> str:
        return self.text or f"{self.kind}:{self.target}"


def parse_model_spec(text: str) -> ModelSpec:
    """Parse a model spec string.

    Args:
        text: ``fixture:NAME``, ``hf:DIR`` or ``package.module:factory``.

    Returns:
        The parsed spec. Nothing is imported and no fixture is looked up yet.

    Raises:
        UsageError: the text has none of the three forms, or an ``hf:`` directory
            is missing or has no ``config.json``. The message lists the forms.
    """
    if not isinstance(text, str) or ":" not in text:
        raise UsageError(f"model spec {text!r} is not one of: {FORMS}")
    head, _, rest = text.partition(":")
    if head == "fixture":
        if not rest:
            raise UsageError(f"model spec {text!r} names no fixture (fixture:NAME; list them with "
                             "`portability fixtures`)")
        return ModelSpec("fixture", rest, text=text)
    if head == "hf":
        directory = Path(rest)
        if not rest or not directory.is_dir():
            raise UsageError(f"model spec {text!r}: {rest or '(empty)'} is not a directory "
                             "(hf:DIR needs a Hugging Face model directory)")
        if not (directory / "config.json").is_file():
            raise UsageError(f"model spec {text!r}: {directory} has no config.json")
        return ModelSpec("hf", str(directory), text=text)
    if _DOTTED.match(head) and _IDENT.match(rest):
        return ModelSpec("factory", head, factory=rest, text=text)
    raise UsageError(f"model spec {text!r} is not one of: {FORMS}")
