"""Steering policies. Each turns (pool, client, health) into tiers: ordered groups of sites. The
decision answers from the first tier that has a usable endpoint of the asked family.

A policy module has `rank(ctx) -> list[Tier]`; register it in POLICIES. Config errors never reach a
policy: the zone loader rejected them.
"""

from __future__ import annotations

from gslb.steering.policies import failover, geo, latency, weighted

POLICIES = {
    "latency": latency.rank,
    "geo": geo.rank,
    "weighted": weighted.rank,
    "failover": failover.rank,
}
