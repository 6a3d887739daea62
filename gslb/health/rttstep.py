"""RTTs as steering counts them: in fixed steps, so every server derives the same figure from a report.

A region's RTT reaches a server's snapshot only when it moves to another step (gslb/health/monitor.py),
and latency steering compares steps (gslb/steering/latency.py). A step is a pure function of the RTT the
prober reported, so two servers that hold the same reports hold the same steps and answer alike, however
long each has been running or whatever RTTs it saw before (a threshold relative to the last value a
server kept would make that value depend on each server's history).
"""

from __future__ import annotations

import math

FINE_BELOW_MS = 20.0    # below this, 1 ms steps (a 5 % step would be a fraction of a ms of noise)
RATIO = 1.05            # above it, each step is 5 % above the last: half the default latency margin


def rtt_step(ms: float) -> float:
    """The lower edge of the step holding `ms`: 0, 1, ... 19 ms, then 20 ms x 1.05^k (2 decimals)."""
    if ms < FINE_BELOW_MS:
        return float(math.floor(max(ms, 0.0)))
    k = math.floor(math.log(ms / FINE_BELOW_MS) / math.log(RATIO) + 1e-9)
    return round(FINE_BELOW_MS * RATIO ** k, 2)
