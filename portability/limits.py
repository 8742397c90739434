"""Thresholds and limits that more than one part of the suite applies, defined once.

Tolerance defaults per dtype live beside the drift statistics
(``portability.harness.drift``); what is here is shared by the check, the
fault campaign, the CLI and the pytest plugin.
"""

from __future__ import annotations

# Smallest recoverability R = P_converted / P_reference (or its inverse for
# lower-is-better metrics) that passes, in the check and in the fault campaign.
MIN_RECOVERABILITY = 0.99

# Seconds one route (or one comparison, or one external converter run) may take
# before its worker process is killed and the route reported as an error.
ROUTE_TIMEOUT_S = 600.0
