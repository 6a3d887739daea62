"""The decision as a pure function: policies, weights, affinity, fallback and all_down, without sockets."""

from __future__ import annotations

import ipaddress
import random
import textwrap
from collections import Counter
from types import MappingProxyType

import pytest

from gslb.config.model import Target
from gslb.config.overrides import Override, parse_selector
from gslb.config.regions import Region, Regions
from gslb.config.yamlsrc import load_yaml
from gslb.config.zone import parse_zone
from gslb.health.overrides import resolve
from gslb.health.snapshot import EndpointHealth, HealthSnapshot, RegionView
from gslb.steering.client import Client
from gslb.steering.decide import SteeringData, choose, ecs_scope, pick, plan


def chosen(p, client):
    return tuple(p.candidates[i].address for i in choose(p, client, random.random))
from gslb.config.latency import LatencyTable
from gslb.steering.location import ClientLocation

REGIONS = Regions(MappingProxyType({
    "us-east-1": Region("us-east-1", 38.9, -77.4), "eu-west-1": Region("eu-west-1", 53.3, -6.3),
    "ap-southeast-1": Region("ap-southeast-1", 1.35, 103.82),
}))
DATA = SteeringData(REGIONS, LatencyTable.empty())
PARIS = ClientLocation("EU", "FR", None, 48.86, 2.35, 16)
TOKYO = ClientLocation("AS", "JP", None, 35.7, 139.7, 12)
NEW_YORK = ClientLocation("NA", "US", "US-NY", 40.7, -74.0, 20)
CHECK = "check: {type: tcp, port: 9}"


def make_zone(pools: str):
    text = textwrap.dedent("""\
        origin: t.test.
        soa: {mname: ns.t.test., rname: h.t.test.}
        records:
          "@": {NS: ns.other.test.}
          www: {pool: main}
        pools:
        """) + textwrap.indent(textwrap.dedent(pools), "  ")
    return parse_zone(load_yaml(text, "t.yaml"), "t.yaml", REGIONS)


LATENCY_POOL = f"""\
main:
  policy: latency
  {CHECK}
  sites:
    us: {{region: us-east-1, endpoints: [192.0.2.1, 192.0.2.2, "2001:db8::1"]}}
    eu: {{region: eu-west-1, endpoints: [198.51.100.1]}}
    ap: {{region: ap-southeast-1, endpoints: [203.0.113.1]}}
"""


def down(zone, *addresses, pool="main") -> HealthSnapshot:
    check = zone.pools[pool].check
    return HealthSnapshot({Target(a, check): EndpointHealth("down") for a in addresses})


def test_latency_picks_the_nearest_site_by_distance():
    zone = make_zone(LATENCY_POOL)
    assert plan(zone, "main", 4, PARIS, HealthSnapshot(), DATA).site == "eu"
    assert plan(zone, "main", 4, TOKYO, HealthSnapshot(), DATA).site == "ap"
    assert plan(zone, "main", 4, NEW_YORK, HealthSnapshot(), DATA).site == "us"


def test_latency_spills_to_the_next_site_only_when_the_best_has_no_healthy_endpoint():
    zone = make_zone(LATENCY_POOL)
    p = plan(zone, "main", 4, PARIS, down(zone, "198.51.100.1"), DATA)
    assert p.site == "us"   # Paris -> Virginia is nearer than Paris -> Singapore
    p = plan(zone, "main", 4, NEW_YORK, down(zone, "192.0.2.1"), DATA)
    assert p.site == "us" and [c.address for c in p.candidates] == ["192.0.2.2"]


def test_latency_unknown_location_uses_file_order():
    zone = make_zone(LATENCY_POOL)
    assert plan(zone, "main", 4, ClientLocation(), HealthSnapshot(), DATA).site == "us"


def test_latency_table_beats_distance_and_probe_rtt_beats_table():
    zone = make_zone(LATENCY_POOL)
    table = LatencyTable(MappingProxyType({"FR": MappingProxyType({"ap-southeast-1": 1.0})}))
    data = SteeringData(REGIONS, table)
    p = plan(zone, "main", 4, PARIS, HealthSnapshot(), data)
    assert p.site == "ap" and any("table: FR -> ap-southeast-1" in line for line in p.trace)
    # A prober in eu-west-1 (nearest to Paris) measured the US site as fastest: that wins over the table.
    check = zone.pools["main"].check
    views = {a: EndpointHealth("up", regions=MappingProxyType({"eu-west-1": RegionView("up", rtt_ms=ms)}))
             for a, ms in (("192.0.2.1", 0.5), ("198.51.100.1", 30.0), ("203.0.113.1", 200.0))}
    health = HealthSnapshot({Target(a, check): h for a, h in views.items()})
    p = plan(zone, "main", 4, PARIS, health, data)
    assert p.site == "us" and any("probe" in line and "eu-west-1" in line for line in p.trace)


def test_families_are_decided_separately_and_missing_family_is_nodata():
    zone = make_zone(LATENCY_POOL)
    p6 = plan(zone, "main", 6, PARIS, HealthSnapshot(), DATA)
    assert p6.site == "us" and [c.address for c in p6.candidates] == ["2001:db8::1"]
    zone4 = make_zone(f"""\
main:
  {CHECK}
  sites: {{a: {{lat: 0, lon: 0, endpoints: [192.0.2.1]}}}}
""")
    assert plan(zone4, "main", 6, PARIS, HealthSnapshot(), DATA).outcome == "nodata"


GEO_POOL = """\
main:
  policy: geo
  sites:
    us: {lat: 38.9, lon: -77.4, endpoints: [192.0.2.1]}
    eu: {lat: 53.3, lon: -6.3, endpoints: [198.51.100.1]}
    ap: {lat: 1.35, lon: 103.82, endpoints: [203.0.113.1]}
  geo: {default: [us], EU: [eu, us], US-NY: [eu], JP: [ap], country:AS: [eu]}
"""


@pytest.mark.parametrize("location, site", [
    (PARIS, "eu"),                                                       # continent
    (TOKYO, "ap"),                                                       # country
    (NEW_YORK, "eu"),                                                    # subdivision beats country/default
    (ClientLocation("NA", "US", "US-TX", 30.0, -97.0), "us"),            # default
    (ClientLocation("OC", "AS", None, -14.3, -170.7), "eu"),             # explicit country:AS
    (ClientLocation(), "us"),                                            # unknown -> default
])
def test_geo_rule_order_subdivision_country_continent_default(location, site):
    assert plan(make_zone(GEO_POOL), "main", 4, location, HealthSnapshot(), DATA).site == site


def test_geo_uses_the_next_site_of_the_matched_rule_when_the_first_is_down():
    zone = make_zone(GEO_POOL.replace("policy: geo", f"policy: geo\n  {CHECK}"))
    assert plan(zone, "main", 4, PARIS, down(zone, "198.51.100.1"), DATA).site == "us"


def test_failover_follows_order():
    zone = make_zone(f"""\
main:
  policy: failover
  {CHECK}
  order: [b, a]
  sites:
    a: {{lat: 0, lon: 0, endpoints: [192.0.2.1]}}
    b: {{lat: 0, lon: 0, endpoints: [192.0.2.2]}}
""")
    assert plan(zone, "main", 4, PARIS, HealthSnapshot(), DATA).site == "b"
    assert plan(zone, "main", 4, PARIS, down(zone, "192.0.2.2"), DATA).site == "a"


WEIGHTED_POOL = f"""\
main:
  policy: weighted
  {CHECK}
  sites:
    a: {{lat: 0, lon: 0, weight: 2, endpoints: [{{address: 192.0.2.1, weight: 3}}, {{address: 192.0.2.2, weight: 1}}]}}
    b: {{lat: 0, lon: 0, endpoints: [{{address: 192.0.2.3, weight: 2}}, {{address: 192.0.2.4, weight: 0}}]}}
"""


def chi_square_ok(counts: Counter, expected: dict[str, float], n: int) -> bool:
    """Pearson's chi-square against expected shares, at the 0.1% level (generous, seeded RNG)."""
    stat = sum((counts[k] - n * p) ** 2 / (n * p) for k, p in expected.items())
    critical = {1: 10.83, 2: 13.82, 3: 16.27, 4: 18.47}[len(expected) - 1]
    return stat < critical and sum(counts.values()) == n


def test_weighted_shares_follow_weights_and_weight_zero_is_drained():
    zone = make_zone(WEIGHTED_POOL)
    p = plan(zone, "main", 4, PARIS, HealthSnapshot(), DATA)
    rng = random.Random(7)
    n = 20000
    counts = Counter(pick(p, None, rng.random)[0] for _ in range(n))
    assert "192.0.2.4" not in counts
    # effective weights: 3*2, 1*2, 2*1 -> 6/10, 2/10, 2/10
    assert chi_square_ok(counts, {"192.0.2.1": 0.6, "192.0.2.2": 0.2, "192.0.2.3": 0.2}, n), counts


def test_weighted_shares_would_fail_if_weights_were_ignored():
    """The statistical check itself can fail: uniform picks are rejected."""
    rng = random.Random(7)
    n = 20000
    counts = Counter(rng.choice(["192.0.2.1", "192.0.2.2", "192.0.2.3"]) for _ in range(n))
    assert not chi_square_ok(counts, {"192.0.2.1": 0.6, "192.0.2.2": 0.2, "192.0.2.3": 0.2}, n)


def test_multivalue_answers_are_distinct():
    zone = make_zone(WEIGHTED_POOL.replace("policy: weighted", "policy: weighted\n  answers: 2"))
    p = plan(zone, "main", 4, PARIS, HealthSnapshot(), DATA)
    rng = random.Random(1)
    for _ in range(500):
        chosen = pick(p, None, rng.random)
        assert len(chosen) == 2 and len(set(chosen)) == 2


def test_multivalue_first_position_follows_weight_without_replacement():
    """With answers: 2 of weights 6/2/2, P(first = heavy) = 0.6 and heavy appears in 0.6 + 2*0.2*0.75 = 0.9."""
    zone = make_zone(WEIGHTED_POOL.replace("policy: weighted", "policy: weighted\n  answers: 2"))
    p = plan(zone, "main", 4, PARIS, HealthSnapshot(), DATA)
    rng = random.Random(3)
    n = 20000
    appears = sum("192.0.2.1" in pick(p, None, rng.random) for _ in range(n))
    assert abs(appears / n - 0.9) < 0.015


AFFINITY_POOL = f"""\
main:
  policy: failover
  affinity: subnet
  {CHECK}
  sites:
    a: {{lat: 0, lon: 0, endpoints: [192.0.2.1, 192.0.2.2, 192.0.2.3, 192.0.2.4]}}
"""


def clients(n: int) -> list[Client]:
    return [Client(ipaddress.ip_network(f"10.{i // 256}.{i % 256}.0/24"), True) for i in range(n)]


def test_affinity_keeps_each_client_on_its_endpoint():
    zone = make_zone(AFFINITY_POOL)
    p = plan(zone, "main", 4, PARIS, HealthSnapshot(), DATA)
    for client in clients(50):
        first = chosen(p, client)
        assert all(chosen(p, client) == first for _ in range(5))
    # the hash keys on the /24: two hosts of one /24 get the same endpoint
    one = Client(ipaddress.ip_network("10.9.9.1/32"))
    two = Client(ipaddress.ip_network("10.9.9.200/32"))
    assert chosen(p, one) == chosen(p, two)


def test_affinity_endpoint_leaving_moves_only_its_own_clients():
    zone = make_zone(AFFINITY_POOL)
    before = plan(zone, "main", 4, PARIS, HealthSnapshot(), DATA)
    after = plan(zone, "main", 4, PARIS, down(zone, "192.0.2.2"), DATA)
    moved = kept = 0
    share = Counter()
    for client in clients(2000):
        old, new = chosen(before, client), chosen(after, client)
        share[old[0]] += 1
        if old[0] == "192.0.2.2":
            moved += 1
            assert new[0] != "192.0.2.2"
        else:
            kept += 1
            assert new == old, f"{client.network} moved from {old} to {new}"
    assert moved > 0 and kept > 0
    assert all(abs(share[a] / 2000 - 0.25) < 0.05 for a in ("192.0.2.1", "192.0.2.2", "192.0.2.3", "192.0.2.4"))


def test_fallback_pool_then_all_down_modes():
    base = f"""\
main:
  policy: failover
  fallback: backup
  all_down: ALLDOWN
  {CHECK}
  sites: {{a: {{lat: 0, lon: 0, endpoints: [192.0.2.1]}}}}
backup:
  policy: failover
  {CHECK}
  sites: {{b: {{lat: 0, lon: 0, endpoints: [192.0.2.9]}}}}
"""
    for mode in ("serve_all", "nodata", "servfail"):
        zone = make_zone(base.replace("ALLDOWN", mode))
        assert plan(zone, "main", 4, PARIS, down(zone, "192.0.2.1"), DATA).pool == "backup"
        health = HealthSnapshot({Target(a, zone.pools["main"].check): EndpointHealth("down")
                                 for a in ("192.0.2.1", "192.0.2.9")})
        p = plan(zone, "main", 4, PARIS, health, DATA)
        if mode == "serve_all":
            assert p.outcome == "answer" and [c.address for c in p.candidates] == ["192.0.2.1"]
        else:
            assert p.outcome == mode and p.candidates == ()


def test_status_and_override_precedence():
    zone = make_zone(f"""\
main:
  policy: failover
  {CHECK}
  sites:
    a: {{lat: 0, lon: 0, status: down, endpoints: [{{address: 192.0.2.1, status: up}}, 192.0.2.2]}}
    b: {{lat: 0, lon: 0, endpoints: [192.0.2.3]}}
""")
    p = plan(zone, "main", 4, PARIS, down(zone, "192.0.2.1"), DATA)
    assert [c.address for c in p.candidates] == ["192.0.2.1"]     # endpoint status beats site status and health
    entry = Override(parse_selector("main/a/192.0.2.1"), "down", "test", "api")
    forced = HealthSnapshot(overrides=MappingProxyType(resolve([entry], {zone.origin: zone}, 0.0)))
    assert plan(zone, "main", 4, PARIS, forced, DATA).site == "b"  # an override beats status


def test_unknown_health_counts_as_up():
    zone = make_zone(LATENCY_POOL)
    check = zone.pools["main"].check
    health = HealthSnapshot({Target("198.51.100.1", check): EndpointHealth("unknown")})
    assert plan(zone, "main", 4, PARIS, health, DATA).site == "eu"


def test_ecs_scope_follows_the_policy():
    zone = make_zone(LATENCY_POOL)
    ecs_client = Client(ipaddress.ip_network("193.0.0.0/24"), True)
    p = plan(zone, "main", 4, PARIS, HealthSnapshot(), DATA)
    assert ecs_scope(p, ecs_client) == 16                      # the database network of the location
    assert ecs_scope(p, Client(ipaddress.ip_network("193.0.0.1/32"))) == 0   # not from ECS: no scope
    wz = make_zone(WEIGHTED_POOL)
    assert ecs_scope(plan(wz, "main", 4, PARIS, HealthSnapshot(), DATA), ecs_client) == 0
    az = make_zone(AFFINITY_POOL)
    assert ecs_scope(plan(az, "main", 4, PARIS, HealthSnapshot(), DATA), ecs_client) == 24

