"""policy: weighted — every healthy endpoint of every site, chosen by weight."""

from __future__ import annotations

from gslb.config.registry import POLICIES
from gslb.steering.policies.base import Context, Tier


@POLICIES.implements("weighted")
def rank(ctx: Context) -> list[Tier]:
    """One tier holding all sites (an endpoint's weight is multiplied by its site's weight)."""
    return [Tier(ctx.pool.sites, "weighted: all sites")]
