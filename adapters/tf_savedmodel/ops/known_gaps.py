"""Conformance cases the TF translator is known to fail, each with its reason.

The one list of expected failures: the conformance tier marks these strict
xfail (a listed case that starts passing fails the tier until it is removed
here) and the benchmark reports them. Keep it shrinking.
"""

from __future__ import annotations

# Case name -> why the translator fails it. Empty: every yardstick case passes.
KNOWN_GAPS: dict[str, str] = {}
