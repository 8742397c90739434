"""Fallbacks: a step that could not do what it normally does and did something weaker.

A fallback is legitimate only where nothing better exists (a model directory
without a tokenizer gets token ids synthesized from its config). It is never
silent: ``record`` logs it, and inside ``collect`` (one route of a check) it is
kept, so the route's notes and report list it and ``--strict`` fails the route.
Anything that is not a legitimate fallback raises a typed error instead.
"""

from __future__ import annotations

import contextvars
import logging
from collections.abc import Iterator
from contextlib import contextmanager

logger = logging.getLogger(__name__)
_ACTIVE: contextvars.ContextVar[list[str] | None] = contextvars.ContextVar("portability_fallbacks", default=None)


def record(message: str) -> None:
    """Report a fallback: kept by the innermost ``collect`` (once), which puts it in the
    route's report; outside one (``portability convert``), logged as a warning, which
    reaches stderr even where logging is not configured.

    Args:
        message: what was done instead, and why (one line naming the file or model).
    """
    found = _ACTIVE.get()
    if found is None:
        logger.warning("fallback: %s", message)
        return
    logger.info("fallback: %s", message)
    if message not in found:
        found.append(message)


@contextmanager
def collect() -> Iterator[list[str]]:
    """Gather the fallbacks recorded inside the block (in this thread).

    Yields:
        The list the fallbacks are appended to; when the block ends they are also
        handed to an enclosing ``collect``, so a cached step can keep its own and the
        route still sees them.
    """
    outer = _ACTIVE.get()
    found: list[str] = []
    token = _ACTIVE.set(found)
    try:
        yield found
    finally:
        _ACTIVE.reset(token)
        if outer is not None:
            outer.extend(m for m in found if m not in outer)


def replay(messages: list[str]) -> None:
    """Record again fallbacks kept from an earlier step that is now reused (a cached
    reference or conversion), so the route that reuses it lists them too."""
    found = _ACTIVE.get()
    if found is not None:
        found.extend(m for m in messages if m not in found)
