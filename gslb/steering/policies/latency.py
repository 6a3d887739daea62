"""policy: latency — sites ordered by expected round-trip time from the client, with a margin.

A site is preferred to another only when its estimate is lower by both `latency_margin_ms` and
`latency_margin_pct` (of the slower one). So the first place goes to the first site in file order among
those the fastest does not beat by both margins; the next place is decided the same way among the sites
left. Sites of near-equal RTT therefore keep one stable answer (file order) while their estimates
wobble, and the order is a function of the estimates alone: no memory of earlier answers, so every
server that holds the same prober reports ranks alike (docs/steering.md, "Stable latency").
"""

from __future__ import annotations

from gslb.config.model import Pool, Site
from gslb.config.registry import POLICIES
from gslb.steering.latency import Estimate, estimate
from gslb.steering.policies.base import Context, Tier


def faster_by_margin(fast: float, slow: float, pool: Pool) -> bool:
    """Whether an RTT of `fast` ms beats `slow` ms by both of the pool's margins (and at all: with both
    margins 0, plain lowest-RTT-first)."""
    gain = slow - fast
    return gain > 0 and gain >= pool.latency_margin_ms and gain >= slow * pool.latency_margin_pct / 100


def _why(est: Estimate, best: tuple[Site, Estimate] | None, site: Site) -> str:
    text = f"latency {est.ms:.2f} ms ({est.source}: {est.detail})"
    if best is not None and best[0] is not site and best[1].ms is not None:
        text += f"; within the margin of site {best[0].name} ({best[1].ms:.2f} ms), first in file order"
    return text


@POLICIES.implements("latency")
def rank(ctx: Context) -> list[Tier]:
    """Each site its own tier, best first (see the module docstring); sites with no estimate keep their
    file order, last. With an unknown client location no site has an estimate, so the order in the zone
    file decides: the first site listed is the pool's default.
    """
    known: list[tuple[Site, Estimate]] = []
    unknown: list[tuple[Site, Estimate]] = []
    for site in ctx.pool.sites:
        est = estimate(site, ctx.pool, ctx.location, ctx.health, ctx.latency, ctx.prober_region)
        (known if est.ms is not None else unknown).append((site, est))
    tiers = []
    while known:
        fastest = min(known, key=lambda item: item[1].ms)    # min keeps the first of equal ones
        pick = next(item for item in known
                    if not faster_by_margin(fastest[1].ms, item[1].ms, ctx.pool))   # type: ignore[arg-type]
        tiers.append(Tier((pick[0],), _why(pick[1], fastest, pick[0]), pick[1]))
        known.remove(pick)
    tiers += [Tier((site,), f"latency unknown ({est.detail})", est) for site, est in unknown]
    return tiers
