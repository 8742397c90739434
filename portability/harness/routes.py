"""Conversion routes: which chains of formats a check runs.

From a source format, a check runs every direct conversion (``torch->onnx``)
and every round trip back to the source (``torch->onnx->torch``) among the
formats in play. A route is written as format names joined by ``->`` (``>``
and ``:`` are accepted too, so shells need no quoting: ``torch:onnx:torch``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from portability.core.formats import FORMATS, spec_for
from portability.errors import UsageError

ALL_FORMATS: tuple[str, ...] = tuple(FORMATS)
_STEP = re.compile(r"\s*(?:->|>|:)\s*")


@dataclass(frozen=True)
class Route:
    """A chain of formats: the first is the source, the last is evaluated."""

    formats: tuple[str, ...]

    @property
    def name(self) -> str:
        return "->".join(self.formats)

    @property
    def is_round_trip(self) -> bool:
        return len(self.formats) > 2 and self.formats[0] == self.formats[-1]

    def __str__(self) -> str:
        return self.name


def parse_formats(text: str | list[str] | None) -> tuple[str, ...]:
    """Parse ``"torch,onnx"`` (or a list) into format names.

    Raises:
        UsageError: an unknown format; the message lists the supported ones.
    """
    if text is None:
        return ALL_FORMATS
    items = text.split(",") if isinstance(text, str) else [p for t in text for p in t.split(",")]
    names = tuple(dict.fromkeys(i.strip() for i in items if i.strip()))
    for name in names:
        spec_for(name)
    if not names:
        raise UsageError("--formats is empty (supported: " + ", ".join(ALL_FORMATS) + ")")
    return names


def parse_route(text: str) -> Route:
    """Parse ``"torch->onnx->torch"`` into a ``Route``.

    Raises:
        UsageError: fewer than two formats, or an unknown one.
    """
    names = tuple(p for p in _STEP.split(text.strip()) if p)
    if len(names) < 2:
        raise UsageError(f"route {text!r} needs at least two formats, e.g. torch->onnx or torch:onnx:torch")
    for name in names:
        spec_for(name)
    return Route(names)


def parse_routes(text: str | list[str] | None) -> list[Route] | None:
    """Parse a comma-separated list (or a list) of routes; None stays None."""
    if text is None:
        return None
    items = text.split(",") if isinstance(text, str) else [p for t in text for p in t.split(",")]
    return [parse_route(i) for i in items if i.strip()]


def enumerate_routes(source: str, formats: tuple[str, ...] | None = None) -> list[Route]:
    """Every direct conversion and round trip from ``source`` among ``formats``.

    Args:
        source: the checkpoint's own format.
        formats: formats in play (default: all); the source is always in play.

    Returns:
        Direct routes first (``source->target``), then round trips
        (``source->target->source``), each in the order of ``formats``.
    """
    spec_for(source)
    targets = [f for f in (formats or ALL_FORMATS) if f != source]
    direct = [Route((source, t)) for t in targets]
    trips = [Route((source, t, source)) for t in targets]
    return direct + trips


def select_routes(source: str, formats: tuple[str, ...] | None, routes: list[Route] | None) -> list[Route]:
    """The routes a check runs: ``routes`` if given, else ``enumerate_routes``.

    Raises:
        UsageError: a given route does not start at the source format.
    """
    if routes is None:
        return enumerate_routes(source, formats)
    for route in routes:
        if route.formats[0] != source:
            raise UsageError(f"route {route.name!r} does not start at the checkpoint's format {source!r}")
    return list(routes)
