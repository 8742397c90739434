"""Typed errors. Every message names the file, tensor or op and says what to do.

The CLI prints ``error: <message>`` on one line and exits with ``exit_code``;
``--debug`` shows the traceback instead.
"""

from __future__ import annotations


class PortabilityError(Exception):
    """Base class for every error this package raises on purpose."""

    exit_code = 2


class FormatError(PortabilityError):
    """The input is not a readable checkpoint of the format it claims to be."""


class IntegrityError(PortabilityError):
    """The data does not match its recorded checksum, or is otherwise damaged."""


class UnsafeCheckpointError(PortabilityError):
    """Loading would execute code (pickle globals) and the user did not allow it."""


class ToleranceError(PortabilityError):
    """Outputs or weights differ beyond the tolerance policy."""

    exit_code = 1


class UnsupportedOpError(PortabilityError):
    """A graph op has no translation or runtime kernel."""


class UsageError(PortabilityError):
    """The call itself is wrong: bad option, destination exists, unknown format."""


class ModelError(PortabilityError):
    """The model's own code failed (its forward raised), not the inputs or the tool."""


class WriteError(PortabilityError):
    """Writing the output failed part-way; nothing is left under the final name."""


class MissingDependencyError(PortabilityError):
    """An optional framework needed for this step is not installed."""


class EnvError(PortabilityError):
    """A deployment environment (``--env NAME=SPEC``) cannot be built or used: a spec that
    does not resolve, no network, a runtime that cannot run with the environment's numpy."""
