"""Combining the views of several prober regions into one state per target."""

from __future__ import annotations

from collections.abc import Mapping

from gslb.health.snapshot import HealthState, RegionView


def quorum(views: Mapping[str, RegionView], needed: int) -> tuple[HealthState, str]:
    """The combined state of one target and the reason, from the views of the live regions.

    down: at least `needed` regions see it down. unknown: no region has decided yet. up: otherwise
    (a region that has not decided does not count against the target).
    """
    down = sorted(r for r, v in views.items() if v.state == "down")
    decided = [r for r, v in views.items() if v.state != "unknown"]
    if not decided:
        return "unknown", "not checked yet"
    if len(down) >= needed:
        errors = "; ".join(f"{r}: {views[r].error}" for r in down if views[r].error)
        return "down", f"down in {len(down)} of {len(views)} regions ({', '.join(down)})" + \
            (f": {errors}" if errors else "")
    if down:
        return "up", f"down in {len(down)} of {len(views)} regions ({', '.join(down)}), {needed} needed"
    return "up", f"up in {len(decided)} of {len(views)} regions"
