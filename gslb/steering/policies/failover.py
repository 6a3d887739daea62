"""policy: failover — the first site in `order` that has a healthy endpoint."""

from __future__ import annotations

from gslb.config.registry import POLICIES
from gslb.steering.policies.base import Context, Tier


@POLICIES.implements("failover")
def rank(ctx: Context) -> list[Tier]:
    """Sites in the pool's `order` (default: file order)."""
    return [Tier((ctx.pool.site(name),), f"failover order {i + 1}") for i, name in enumerate(ctx.pool.order)]
