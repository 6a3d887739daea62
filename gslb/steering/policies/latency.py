"""policy: latency — sites ordered by expected round-trip time from the client (lowest first)."""

from __future__ import annotations

from gslb.steering.latency import estimate
from gslb.steering.policies.base import Context, Tier


def rank(ctx: Context) -> list[Tier]:
    """Each site its own tier, by estimated RTT; sites with no estimate keep their file order, last.

    With an unknown client location every site lacks an estimate, so the order in the zone file decides:
    the first site listed is the pool's default.
    """
    scored = []
    for index, site in enumerate(ctx.pool.sites):
        est = estimate(site, ctx.pool, ctx.location, ctx.health, ctx.latency, ctx.prober_region)
        scored.append(((est.ms is None, est.ms or 0.0, index), site, est))
    scored.sort(key=lambda item: item[0])
    return [Tier((site,), f"latency {est.ms:.0f} ms ({est.source}: {est.detail})" if est.ms is not None
                 else f"latency unknown ({est.detail})", est) for _, site, est in scored]
