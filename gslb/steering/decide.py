"""The decision: which addresses answer a load-balanced name for this client. Pure: no I/O, no clock.

Two steps, so the server can precompute the expensive one:
  `plan(...)`  zone + pool + family + client location + health -> ordered candidates (cached per
               location bucket; recomputed when zones or health change, never per query);
  `pick(...)`  plan + client subnet + a random draw -> the `answers` addresses of this reply.
`decide(...)` runs both; the DNS server and `gslb explain` call the same two functions.
"""

from __future__ import annotations

import bisect
import dataclasses
import hashlib
import itertools
import math
from collections.abc import Callable
from dataclasses import dataclass, field

from gslb.config.latency import LatencyTable
from gslb.config.model import Endpoint, Pool, Site, Zone
from gslb.config.regions import Regions
from gslb.health.snapshot import HealthSnapshot
from gslb.steering.client import Client
from gslb.steering.latency import nearest_prober_region
from gslb.steering.location import ClientLocation
from gslb.steering.policies import POLICIES
from gslb.steering.policies.base import Context, Tier

LOCATION_POLICIES = frozenset({"latency", "geo"})


@dataclass(frozen=True, slots=True)
class SteeringData:
    """The static inputs of steering besides zones: region coordinates and the latency table."""

    regions: Regions = field(default_factory=Regions.empty)
    latency: LatencyTable = field(default_factory=LatencyTable.empty)
    # The embedded prober's region of this server (health.region): its RTTs are this server's alone, so
    # latency estimates leave them out and every server steers from the reports all of them receive.
    local_region: str | None = None


@dataclass(frozen=True, slots=True)
class Candidate:
    address: str
    weight: float        # endpoint weight x site weight (x the proxy pool's healthy share, capacity: follow)
    site: str


@dataclass(frozen=True, slots=True)
class Plan:
    """The ranked outcome for one (pool, family, location bucket, health snapshot).

    outcome: "answer" (pick from `candidates`), "nodata" or "servfail".
    scope: the ECS scope prefix length this answer is valid for (0: the same for everyone).
    """

    outcome: str
    pool: str
    ttl: int
    candidates: tuple[Candidate, ...] = ()
    answers: int = 1
    affinity: bool = False
    scope: int = 0
    site: str | None = None
    trace: tuple[str, ...] = ()
    cumulative: tuple[float, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "cumulative", tuple(itertools.accumulate(c.weight for c in self.candidates)))


def endpoint_usable(endpoint: Endpoint, site: Site, pool: Pool, health: HealthSnapshot,
                    ignore_health: bool = False, zone: str = "") -> tuple[bool, str]:
    """Whether an endpoint of `pool` in `zone` (its origin) may be answered, and the word explaining why.

    Precedence: weight 0 (drained) > override (docs/overrides.md) > endpoint `status` > site `status` >
    the regional proxy's report (`proxy_pool`: no healthy backend takes it down; never holds it up) > health.
    """
    if endpoint.weight == 0 or site.weight == 0:
        return False, "drained (weight 0)"
    forced = health.forced(zone, pool.name, site.name, endpoint.address)
    if forced is not None:
        return forced.state == "up", f"{forced.state} (override {forced.selector}, {forced.source})"
    if endpoint.status != "auto":
        return endpoint.status == "up", f"{endpoint.status} (status)"
    if site.status != "auto":
        return site.status == "up", f"{site.status} (site status)"
    if pool.check is None and Pool.proxy_pool_of(site, endpoint) is None:
        return True, "up (no check)"
    if ignore_health:
        return True, "up (serve_all)"
    key = Pool.proxy_pool_of(site, endpoint)
    view = health.proxy(key)
    if view is not None and view.healthy == 0:
        return False, f"down (proxy {key}: {view.describe()})"
    note = f"; proxy {key}: {view.describe()}" if view is not None else ""
    if pool.check is None:
        return True, "up (no check)" + note
    state = health.of(pool.target_of(endpoint)).state  # type: ignore[arg-type]
    return state != "down", state + note


def capacity_share(pool: Pool, site: Site, endpoint: Endpoint, health: HealthSnapshot) -> float:
    """What an endpoint's weight is multiplied by: with `capacity: follow`, the healthy share of its proxy
    pool's backend weight, not below `capacity_floor`; 1 otherwise, or while its proxy is not reporting."""
    if pool.capacity != "follow":
        return 1.0
    view = health.proxy(Pool.proxy_pool_of(site, endpoint))
    return 1.0 if view is None else max(pool.capacity_floor, min(1.0, view.fraction))


def _tier_candidates(tier: Tier, pool: Pool, family: int, health: HealthSnapshot,
                     ignore_health: bool, trace: list[str], zone: str) -> list[Candidate]:
    found = []
    for site in tier.sites:
        words = []
        for endpoint in site.endpoints:
            if endpoint.family != family:
                continue
            usable, why = endpoint_usable(endpoint, site, pool, health, ignore_health, zone)
            words.append(f"{endpoint.address} {why}")
            if usable:
                weight = endpoint.weight * site.weight * capacity_share(pool, site, endpoint, health)
                found.append(Candidate(endpoint.address, weight, site.name))
        trace.append(f"  site {site.name}: {tier.why}; " + (", ".join(words) or f"no IPv{family} endpoint"))
    return found


def _plan_pool(pool: Pool, family: int, ctx: Context, ignore_health: bool, trace: list[str],
               zone: str) -> Plan | None:
    tiers = POLICIES[pool.policy](ctx)
    trace.append(f"pool {pool.name}: policy {pool.policy}" + (" (health ignored: serve_all)" if ignore_health else "")
                 + (f"; margin {pool.latency_margin_ms:g} ms and {pool.latency_margin_pct:g} %: a site is "
                    "preferred only when faster by both, sites within them of the fastest go in file order"
                    if pool.policy == "latency" else ""))
    chosen: Plan | None = None
    for tier in tiers:
        candidates = _tier_candidates(tier, pool, family, ctx.health, ignore_health, trace, zone)
        if candidates and chosen is None:
            sites = ", ".join(sorted({c.site for c in candidates}))
            trace.append(f"  -> chosen: site {sites}")
            chosen = Plan("answer", pool.name, pool.ttl, tuple(candidates), pool.answers,
                          pool.affinity == "subnet", site=sites)
    if chosen is None:
        trace.append(f"  -> no usable IPv{family} endpoint in pool {pool.name}")
    return chosen


def net_key(zone: Zone, pool_name: str, client_ip: tuple[int, int]) -> tuple:
    """What a plan depends on besides the client's location: the client's block in the `net:` table of
    every geo pool the plan may visit (empty when there is none). Clients with the same key and location
    bucket get the same plan."""
    key, seen = [], set()
    pool = zone.pools.get(pool_name)
    while pool is not None and pool.name not in seen:
        seen.add(pool.name)
        if pool.nets is not None and pool.policy == "geo":
            key.append(pool.nets.match(*client_ip).block)
        pool = zone.pools.get(pool.fallback) if pool.fallback else None
    return tuple(key)


def _net_rule(pool: Pool, client_ip: tuple[int, int] | None, trace: list[str]) -> tuple[str | None, int]:
    """The pool's `net:` rule holding the client (or None) and the ECS scope that match holds for: the
    client's block in the net table, inside the matched network and clear of any more specific rule."""
    if pool.nets is None or pool.policy != "geo" or client_ip is None:
        return None, 0
    match = pool.nets.match(*client_ip)
    if match.rule is not None:
        trace.append(f"pool {pool.name}: client in geo rule {match.rule} (holds for its /{match.scope})")
    return match.rule, match.scope


def plan(zone: Zone, pool_name: str, family: int, location: ClientLocation, health: HealthSnapshot,
         data: SteeringData, client_ip: tuple[int, int] | None = None) -> Plan:
    """Rank a pool for a client location: the policy, then `fallback` pools, then `all_down`.

    `client_ip` (version, integer) is matched against `net:` geo rules; see `net_key` for caching.
    A pool with no endpoint of `family` at all answers NODATA (the name has no such records).
    """
    trace: list[str] = [f"client location: {location.describe()}"]
    first = zone.pools[pool_name]
    prober_region = nearest_prober_region(location, health, data.regions, data.local_region)
    if prober_region:
        trace.append(f"nearest prober region: {prober_region}")
    scope = 0
    visited, pool = [], first
    while pool is not None and pool.name not in visited:
        visited.append(pool.name)
        rule, net_scope = _net_rule(pool, client_ip, trace)
        scope = max(scope, net_scope)
        if pool.policy in LOCATION_POLICIES and rule is None:
            scope = max(scope, location.prefix_len)
        ctx = Context(pool, location, health, data.regions, data.latency, prober_region, rule)
        result = _plan_pool(pool, family, ctx, False, trace, zone.origin)
        if result is not None:
            return dataclasses.replace(result, scope=scope, trace=tuple(trace))
        pool = zone.pools.get(pool.fallback) if pool.fallback else None
        if pool is not None:
            trace.append(f"fallback -> pool {pool.name}")
    if not any(e.family == family for s in first.sites for e in s.endpoints):
        trace.append(f"pool {first.name} has no IPv{family} endpoint: NODATA")
        return Plan("nodata", first.name, first.ttl, scope=scope, trace=tuple(trace))
    trace.append(f"nothing healthy: all_down {first.all_down}")
    if first.all_down == "serve_all":
        rule, _ = _net_rule(first, client_ip, [])
        ctx = Context(first, location, health, data.regions, data.latency, prober_region, rule)
        result = _plan_pool(first, family, ctx, True, trace, zone.origin)
        if result is not None:
            return dataclasses.replace(result, scope=scope, trace=tuple(trace))
        trace.append("every endpoint is drained or forced down: NODATA")
        return Plan("nodata", first.name, first.ttl, scope=scope, trace=tuple(trace))
    return Plan(first.all_down, first.name, first.ttl, scope=scope, trace=tuple(trace))


def _unit(key: str, address: str) -> float:
    """A stable pseudo-random number in (0, 1) for (client key, address): the rendezvous hash."""
    digest = hashlib.blake2b(f"{key}|{address}".encode(), digest_size=8).digest()
    return (int.from_bytes(digest, "big") + 1) / (2**64 + 2)


def ecs_scope(p: Plan, client: Client) -> int:
    """The ECS SCOPE PREFIX-LENGTH of a reply (RFC 7871 7.2.1): 0 unless the client came from ECS."""
    if not client.ecs:
        return 0
    return max(p.scope, client.affinity_prefix) if p.affinity else p.scope


def choose(p: Plan, client: Client, rand: Callable[[], float]) -> tuple[int, ...]:
    """The candidate indexes of one reply to this client (see `pick_indices`)."""
    return pick_indices(p, client.affinity_key if p.affinity else None, rand)


def pick_indices(p: Plan, affinity_key: str | None, rand: Callable[[], float]) -> tuple[int, ...]:
    """Choose `p.answers` distinct candidates by weight; returns their indexes in `p.candidates`.

    Weighted sampling without replacement (Efraimidis-Spirakis): each candidate draws
    key = -ln(u) / weight and the smallest keys win. With affinity, u is a hash of (client subnet,
    address): weighted rendezvous hashing, so a client keeps its endpoint and an endpoint that leaves
    moves only its own clients. Otherwise u is random; for one answer that is the same distribution as
    one weighted draw, done by bisecting the cumulative weights.
    """
    if p.outcome != "answer":
        return ()
    cands = p.candidates
    if p.affinity and affinity_key is not None:
        draws = sorted((-math.log(_unit(affinity_key, c.address)) / c.weight, i) for i, c in enumerate(cands))
        return tuple(i for _, i in draws[:p.answers])
    if len(cands) <= p.answers:
        return tuple(range(len(cands)))
    if p.answers == 1:
        return (bisect.bisect_right(p.cumulative, rand() * p.cumulative[-1]),)
    draws = sorted((-math.log(1.0 - rand()) / c.weight, i) for i, c in enumerate(cands))
    return tuple(i for _, i in draws[:p.answers])


def pick(p: Plan, affinity_key: str | None, rand: Callable[[], float]) -> tuple[str, ...]:
    """The addresses `pick_indices` chooses."""
    return tuple(p.candidates[i].address for i in pick_indices(p, affinity_key, rand))
