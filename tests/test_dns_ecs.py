"""Load-balanced answers over the wire: client location from ECS or source address, scope, policies."""

from __future__ import annotations

import random
from collections import Counter

import dns.edns
import dns.rcode
import pytest
from conftest import REPO, rrset_texts
from mmdbutil import write_test_mmdb

ZONE = """\
origin: lb.test.
soa: {mname: ns1.lb.test., rname: hostmaster.lb.test.}
records:
  "@": {NS: ns1.lb.test.}
  ns1: {A: 192.0.2.53}
  www: {pool: web}
  geo: {pool: bygeo}
  alias: {CNAME: www}
  v4only: {pool: v4}
  sticky: {pool: sticky}
  closed: {pool: closed}
pools:
  web:
    policy: latency
    sites:
      us: {region: us-east-1, endpoints: [192.0.2.1, "2001:db8::1"]}
      eu: {region: eu-west-1, endpoints: [198.51.100.1, "2001:db8:100::1"]}
      ap: {region: ap-southeast-1, endpoints: [203.0.113.1]}
  bygeo:
    policy: geo
    sites:
      us: {region: us-east-1, endpoints: [192.0.2.1]}
      eu: {region: eu-west-1, endpoints: [198.51.100.1]}
    geo: {EU: [eu], default: [us]}
  v4:
    sites: {us: {region: us-east-1, endpoints: [192.0.2.7]}}
  sticky:
    policy: failover
    affinity: subnet
    sites: {us: {region: us-east-1, endpoints: [192.0.2.1, 192.0.2.2, 192.0.2.3, 192.0.2.4]}}
  closed:
    all_down: servfail
    sites: {us: {region: us-east-1, endpoints: [{address: 192.0.2.9, status: down}]}}
"""

# A tiny City-layout database: four networks with a location each.
NETWORKS = [
    ("193.0.0.0/16", {"continent": "EU", "country": "NL", "lat": 52.37, "lon": 4.9}),
    ("1.0.0.0/16", {"continent": "AS", "country": "SG", "lat": 1.3, "lon": 103.8}),
    ("8.8.0.0/16", {"continent": "NA", "country": "US", "lat": 37.75, "lon": -97.8}),
    ("127.0.0.0/8", {"continent": "EU", "country": "IE", "lat": 53.3, "lon": -6.3}),
]


@pytest.fixture
def geoip(tmp_path) -> str:
    return write_test_mmdb(str(tmp_path / "test.mmdb"), NETWORKS)


def answer_addresses(msg) -> list[str]:
    return sorted(rd.address for rrset in msg.answer for rd in rrset if hasattr(rd, "address"))


def ecs_of(msg) -> dns.edns.ECSOption | None:
    return next((o for o in msg.options if isinstance(o, dns.edns.ECSOption)), None)


@pytest.mark.parametrize("subnet, address", [
    ("193.0.0.0/24", "198.51.100.1"), ("1.0.0.0/24", "203.0.113.1"), ("8.8.8.0/24", "192.0.2.1")])
def test_latency_answers_by_ecs_subnet_with_database_scope(serve, geoip, subnet, address):
    srv = serve({"lb.yaml": ZONE}, geoip=geoip)
    r = srv.query("www.lb.test", "A", ecs=subnet)
    assert answer_addresses(r) == [address]
    option = ecs_of(r)
    assert option is not None and option.srclen == 24 and option.scopelen == 16
    assert option.address == subnet.split("/")[0]


def test_source_address_locates_the_client_without_ecs(serve, geoip):
    srv = serve({"lb.yaml": ZONE}, geoip=geoip)   # 127.0.0.0/8 is "Ireland" in the test database
    r = srv.query("www.lb.test", "A")
    assert answer_addresses(r) == ["198.51.100.1"] and ecs_of(r) is None


def test_ecs_source_prefix_zero_falls_back_to_source_address_with_scope_zero(serve, geoip):
    srv = serve({"lb.yaml": ZONE}, geoip=geoip)
    r = srv.query("www.lb.test", "A", ecs="0.0.0.0/0")
    assert answer_addresses(r) == ["198.51.100.1"]
    assert ecs_of(r).scopelen == 0


def test_zone_that_does_not_trust_ecs_ignores_it(serve, geoip):
    srv = serve({"lb.yaml": ZONE.replace("origin: lb.test.", "origin: lb.test.\necs: false")}, geoip=geoip)
    r = srv.query("www.lb.test", "A", ecs="1.0.0.0/24")
    assert answer_addresses(r) == ["198.51.100.1"]     # by source address (Ireland), not Singapore
    assert ecs_of(r).scopelen == 0


def test_ipv6_ecs_and_aaaa_from_ipv6_endpoints(serve, geoip):
    srv = serve({"lb.yaml": ZONE}, geoip=geoip)
    r = srv.query("www.lb.test", "AAAA", ecs="8.8.8.0/24")
    assert answer_addresses(r) == ["2001:db8::1"]
    r = srv.query("www.lb.test", "AAAA", ecs="2001:db8:ffff::/48")     # unknown: file order -> us
    assert answer_addresses(r) == ["2001:db8::1"]


def test_nodata_for_a_family_the_pool_lacks(serve, geoip):
    srv = serve({"lb.yaml": ZONE}, geoip=geoip)
    r = srv.query("v4only.lb.test", "AAAA")
    assert r.rcode() == dns.rcode.NOERROR and not r.answer
    assert rrset_texts(r, "authority")[0].startswith("lb.test. 60 SOA")


def test_cname_to_a_pool_name(serve, geoip):
    srv = serve({"lb.yaml": ZONE}, geoip=geoip)
    r = srv.query("alias.lb.test", "A", ecs="1.0.0.0/24")
    texts = rrset_texts(r)
    assert texts == ["alias.lb.test. 3600 CNAME www.lb.test.", "www.lb.test. 30 A 203.0.113.1"]


def test_geo_policy_over_the_wire(serve, geoip):
    srv = serve({"lb.yaml": ZONE}, geoip=geoip)
    assert answer_addresses(srv.query("geo.lb.test", "A", ecs="193.0.0.0/24")) == ["198.51.100.1"]
    assert answer_addresses(srv.query("geo.lb.test", "A", ecs="8.8.8.0/24")) == ["192.0.2.1"]


def test_affinity_same_subnet_same_answer_and_scope_24(serve, geoip):
    srv = serve({"lb.yaml": ZONE}, geoip=geoip)
    seen = Counter()
    rng = random.Random(5)
    for _ in range(40):
        subnet = f"10.{rng.randrange(256)}.{rng.randrange(256)}.0/24"
        first = answer_addresses(srv.query("sticky.lb.test", "A", ecs=subnet))
        assert all(answer_addresses(srv.query("sticky.lb.test", "A", ecs=subnet)) == first for _ in range(3))
        seen[first[0]] += 1
        assert ecs_of(srv.query("sticky.lb.test", "A", ecs=subnet)).scopelen == 24
    assert len(seen) >= 3     # different subnets spread over the endpoints


def test_all_down_servfail(serve, geoip):
    srv = serve({"lb.yaml": ZONE}, geoip=geoip)
    assert srv.query("closed.lb.test", "A").rcode() == dns.rcode.SERVFAIL


def test_dynamic_ttl_is_the_pool_ttl(serve, geoip):
    srv = serve({"lb.yaml": ZONE}, geoip=geoip)
    r = srv.query("www.lb.test", "A")
    assert r.answer[0].ttl == 30


OTHER_ZONE = """\
origin: other.test.
soa: {mname: ns1.other.test., rname: h.other.test.}
records:
  "@": {NS: ns1.lb.test.}
  shop: {pool: bygeo}
"""


def test_a_name_of_another_zone_can_use_a_pool(serve, geoip):
    srv = serve({"lb.yaml": ZONE, "other.yaml": OTHER_ZONE}, geoip=geoip)
    assert answer_addresses(srv.query("shop.other.test", "A", ecs="193.0.0.0/24")) == ["198.51.100.1"]
    r = srv.query("shop.other.test", "AAAA")               # the pool has no IPv6: NODATA with this zone's SOA
    assert not r.answer and str(r.authority[0].name) == "other.test."


def test_a_borrowed_pool_must_exist_in_exactly_one_zone(tmp_path):
    from gslb.config.regions import load_regions
    from gslb.config.zone import load_zones
    from gslb.errors import ConfigError
    regions = load_regions(str(REPO / "data" / "regions.yaml"))
    (tmp_path / "other.yaml").write_text(OTHER_ZONE)
    with pytest.raises(ConfigError) as err:
        load_zones(str(tmp_path), regions)
    assert str(err.value) == (f"{tmp_path}/other.yaml:5: shop: pool 'bygeo' does not exist in this zone "
                              "(pools: none defined) or any other")
    (tmp_path / "lb.yaml").write_text(ZONE)
    assert set(load_zones(str(tmp_path), regions)) == {"lb.test.", "other.test."}
    (tmp_path / "lb2.yaml").write_text(ZONE.replace("origin: lb.test.", "origin: lb2.test."))
    with pytest.raises(ConfigError) as err:
        load_zones(str(tmp_path), regions)
    assert "pool 'bygeo' is defined in several zones (lb.test., lb2.test.)" in str(err.value)


def test_operator_latency_table_beats_distance(serve, geoip):
    table = "latency:\n  EU: {ap-southeast-1: 5, eu-west-1: 40}\n"
    srv = serve({"lb.yaml": ZONE}, geoip=geoip, latency_yaml=table)
    assert answer_addresses(srv.query("www.lb.test", "A", ecs="193.0.0.0/24")) == ["203.0.113.1"]


def test_latency_table_errors_name_file_and_line(tmp_path):
    from gslb.config.latency import load_latency_table
    from gslb.errors import ConfigError
    path = tmp_path / "latency.yaml"
    path.write_text("latency:\n  EU: {eu-west-1: fast}\n")
    with pytest.raises(ConfigError) as err:
        load_latency_table(str(path))
    assert str(err.value) == f"{path}:2: EU eu-west-1: 'fast' is not ms >= 0"
