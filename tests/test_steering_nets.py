"""CIDR rules (`geo:` keys `net:10.0.0.0/8`): the table, the decision, the ECS scope, load-time errors;
and site locations needed only by latency pools. Over the wire: a geo pool with net rules and ECS."""

from __future__ import annotations

import ipaddress
import os
import random
import subprocess
import sys

import dns.edns
import pytest
from conftest import REPO

from gslb.config.nets import build_net_table
from gslb.config.regions import Regions, load_regions
from gslb.config.yamlsrc import load_yaml
from gslb.config.zone import load_zones, parse_zone
from gslb.errors import ConfigError
from gslb.health.snapshot import HealthSnapshot
from gslb.steering.client import Client
from gslb.steering.decide import SteeringData, ecs_scope, plan
from gslb.steering.location import ClientLocation

PARIS = ClientLocation("EU", "FR", None, 48.86, 2.35, 16)
ZONE = """\
origin: n.test.
soa: {mname: ns.n.test., rname: h.n.test.}
records:
  "@": {NS: ns.n.test.}
  ns: {A: 192.0.2.53}
  app: {pool: app}
pools:
  app:
    policy: geo
    sites:
      office: {endpoints: [192.0.2.10]}
      lab: {endpoints: [192.0.2.20]}
      partner: {endpoints: [192.0.2.30]}
      eu: {endpoints: [198.51.100.1]}
      world: {endpoints: [203.0.113.1]}
    geo:
      EU: [eu]
      net:10.0.0.0/8: [office]
      net:10.1.0.0/16: [lab]
      "net:2001:db8:aa::/48": [partner]
      net:127.0.0.0/8: [office]
      default: [world]
"""


def zone():
    return parse_zone(load_yaml(ZONE, "n.yaml"), "n.yaml", Regions.empty())


def decide(subnet: str, location: ClientLocation = PARIS):
    client = Client(ipaddress.ip_network(subnet), True)
    p = plan(zone(), "app", 4, location, HealthSnapshot(), SteeringData(), client.ip)
    return p.site, ecs_scope(p, client), p.trace


def _brute(nets: list[str], address: int, version: int) -> str | None:
    ip = ipaddress.ip_address(address) if version == 4 else ipaddress.IPv6Address(address)
    holding = [ipaddress.ip_network(n) for n in nets if ip in ipaddress.ip_network(n)]
    return f"net:{max(holding, key=lambda n: n.prefixlen)}" if holding else None


def test_table_matches_the_most_specific_net_and_its_block_stays_clear_of_other_rules():
    nets = ["10.0.0.0/8", "10.1.0.0/16", "10.1.2.128/25", "192.168.0.0/16", "0.0.0.0/1", "2001:db8::/32",
            "2001:db8:1::/48"]
    rules = [(f"net:{n}", (x := ipaddress.ip_network(n)).version, int(x.network_address), x.prefixlen) for n in nets]
    table = build_net_table(rules)
    rng = random.Random(2)
    for _ in range(20000):
        version = rng.choice((4, 6))
        bits = 32 if version == 4 else 128
        address = rng.getrandbits(bits) if rng.random() < 0.5 else \
            (0x0A010200 if version == 4 else 0x20010DB8000100000000000000000000) + rng.getrandbits(12)
        match = table.match(version, address)
        assert match.rule == _brute(nets, address, version)
        kind = ipaddress.IPv4Network if version == 4 else ipaddress.IPv6Network
        block = kind((address >> (bits - match.scope) << (bits - match.scope), match.scope))
        for net in (ipaddress.ip_network(n) for n in nets):   # the block is inside or outside each rule
            if net.version == version:
                assert block.subnet_of(net) or not block.overlaps(net)


@pytest.mark.parametrize("subnet, site, scope", [
    ("10.9.0.0/24", "office", 13),         # in 10/8; 10.8.0.0/13 is the widest block clear of 10.1/16
    ("10.200.0.0/24", "office", 9),        # 10.128.0.0/9
    ("10.1.7.0/24", "lab", 16),            # the more specific rule wins, scope = its prefix
    ("193.0.0.0/24", "eu", 16),            # no net rule: continent, GeoIP scope
])
def test_net_rules_come_before_locations_and_bound_the_scope(subnet, site, scope):
    got, got_scope, trace = decide(subnet)
    assert (got, got_scope) == (site, scope)
    assert any("client in geo rule net:" in line for line in trace) == (site != "eu")


def test_a_location_answer_never_claims_a_scope_covering_a_net_rule():
    """GeoIP may say 0.0.0.0/4 is one network; the answer for 11.x must not be cached for 10.x."""
    wide = ClientLocation("EU", "FR", None, 48.86, 2.35, 4)
    site, scope, _ = decide("11.0.0.0/24", wide)
    assert site == "eu" and scope == 8       # 11.0.0.0/8: the widest block clear of net:10.0.0.0/8


def test_ipv6_net_rule_and_the_explain_trace_names_the_rule():
    client = Client(ipaddress.ip_network("2001:db8:aa:5::/64"), True)
    p = plan(zone(), "app", 4, ClientLocation(), HealthSnapshot(), SteeringData(), client.ip)
    assert p.site == "partner" and ecs_scope(p, client) == 48
    assert "pool app: client in geo rule net:2001:db8:aa::/48 (holds for its /48)" in p.trace
    assert "  site partner: geo rule net:2001:db8:aa::/48; 192.0.2.30 up (no check)" in p.trace


@pytest.mark.parametrize("key, message", [
    ("net:10.0.0.1/8", "n.yaml:22: pool 'app' geo 'net:10.0.0.1/8': address bits set past /8; write net:10.0.0.0/8"),
    ("net:10.0.0.0/33", ("n.yaml:22: pool 'app' geo 'net:10.0.0.0/33': not a network; write net:10.0.0.0/8 or "
                        "net:2001:db8::/32")),
    ("net:10.0.0.0", "n.yaml:22: pool 'app' geo 'net:10.0.0.0': needs a prefix length; write net:10.0.0.0/32"),
    ("net:010.0.0.0/8", ("n.yaml:22: pool 'app' geo 'net:010.0.0.0/8': not a network; write net:10.0.0.0/8 or "
                        "net:2001:db8::/32")),
    ("net:10.0.0.0/08", ("n.yaml:22: pool 'app' geo 'net:10.0.0.0/08': network 10.0.0.0/8 is already listed on "
                        "line 18")),
])
def test_bad_net_rules_are_file_line_errors(key, message):
    text = ZONE.replace("      default: [world]", f"      {key}: [office]\n      default: [world]")
    with pytest.raises(ConfigError) as exc:
        parse_zone(load_yaml(text, "n.yaml"), "n.yaml", Regions.empty())
    assert [str(p) for p in exc.value.problems] == [message]


def ecs_of(msg):
    return next(o for o in msg.options if isinstance(o, dns.edns.ECSOption))


def test_net_rules_over_udp_with_ecs_scope(serve):
    srv = serve({"n.yaml": ZONE})
    for subnet, address, scope in (("10.1.7.0/24", "192.0.2.20", 16), ("10.200.0.0/24", "192.0.2.10", 9),
                                   ("2001:db8:aa:5::/64", "192.0.2.30", 48)):
        r = srv.query("app.n.test", "A", ecs=subnet)
        assert [rd.address for rrset in r.answer for rd in rrset] == [address], subnet
        assert ecs_of(r).scopelen == scope, subnet
    r = srv.query("app.n.test", "A")            # no ECS: the source address 127.0.0.1 is in net:127.0.0.0/8
    assert [rd.address for rrset in r.answer for rd in rrset] == ["192.0.2.10"]


LOCATIONLESS = """\
origin: l.test.
soa: {mname: ns.l.test., rname: h.l.test.}
records:
  "@": {NS: ns.l.test.}
  ns: {A: 192.0.2.53}
  w: {pool: w}
pools:
  w:
    policy: weighted
    fallback: f
    sites: {a: {endpoints: [192.0.2.1]}, b: {region: nowhere-1, endpoints: [192.0.2.2]}}
  f:
    policy: failover
    sites: {c: {endpoints: [192.0.2.3]}}
  lat:
    policy: latency
    sites: {d: {endpoints: [192.0.2.4]}, e: {region: nowhere-1, endpoints: [192.0.2.5]}}
"""


def test_location_is_needed_only_by_latency_pools(tmp_path):
    path = tmp_path / "l.yaml"
    path.write_text(LOCATIONLESS)
    with pytest.raises(ConfigError) as exc:
        load_zones(str(path), Regions.empty())
    assert [str(p) for p in exc.value.problems] == [
        (f"{path}:17: pool 'lat' site 'd': needs a region (from regions.yaml) or lat and lon (policy latency "
        "estimates the RTT from where each site is)"),
        (f"{path}:17: pool 'lat' site 'e': region 'nowhere-1' is not in regions.yaml; give lat/lon too (policy "
        "latency estimates the RTT from where each site is)")]
    path.write_text(LOCATIONLESS.split("  lat:")[0])
    assert set(load_zones(str(path), Regions.empty())["l.test."].pools) == {"w", "f"}


def test_a_missing_data_directory_is_one_error_naming_the_path(tmp_path):
    for name in ("a.yaml", "b.yaml"):
        (tmp_path / name).write_text((REPO / "zones" / "gslb.example.com.yaml").read_text().replace(
            "gslb.example.com.", f"{name[0]}.example.com."))
    regions = load_regions(str(tmp_path / "nodata" / "regions.yaml"))
    with pytest.raises(ConfigError) as exc:
        load_zones(str(tmp_path), regions)
    assert len(exc.value.problems) == 1
    assert f"the data directory {tmp_path / 'nodata'} does not exist" in str(exc.value.problems[0])


def test_gslb_check_and_serve_outside_the_repository_say_the_data_directory_is_missing(tmp_path):
    env = dict(os.environ, PYTHONPATH=str(REPO))
    zones = str(REPO / "zones")
    check = subprocess.run([sys.executable, "-m", "gslb", "check", zones], check=False, cwd=tmp_path, env=env,
                           capture_output=True, text=True, timeout=60)
    assert check.returncode == 1
    assert check.stdout.splitlines() == [
        (f"data/regions.yaml:0: cannot look up the regions the latency pools name: the data directory "
        f"{tmp_path / 'data'} does not exist (run from the directory that holds data/, or give --data DIR, or "
        "`data:` or `regions:` in the server config)"), "1 problem found"]
    ok = subprocess.run([sys.executable, "-m", "gslb", "check", zones, "--data", str(REPO / "data")],
                        check=False, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    assert ok.returncode == 0, ok.stdout
