"""Steering policies. Each turns (pool, client, health) into tiers: ordered groups of sites. The
decision answers from the first tier that has a usable endpoint of the asked family.

A policy module has `rank(ctx) -> list[Tier]`, registered with `@POLICIES.implements(NAME)` under a name
declared in gslb/config/registry.py (which the zone loader and the schema read). Config errors never reach
a policy: the zone loader rejected them.
"""

from __future__ import annotations

from gslb.config.registry import POLICIES
from gslb.steering.policies import failover, geo, latency, weighted  # noqa: F401 -- they register

POLICIES.complete()
