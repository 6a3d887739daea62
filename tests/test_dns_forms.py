"""The fast path's cached query forms (gslb/dns/fast.py) and the per-/24 and /56 location memo
(gslb/steering/location.py): a repeated query answers the bytes a first one and the slow path give,
counts alike, stays bounded, and forgets its plans when health changes; locations are exact per block."""

from __future__ import annotations

import random

import dns.edns
import dns.message
import pytest
from conftest import EXAMPLE_ZONE, REGIONS_YAML
from mmdbutil import write_test_mmdb

from gslb.config.regions import load_regions
from gslb.config.zone import load_zones
from gslb.dns import fast
from gslb.dns.fast import answer_fast
from gslb.dns.slow import answer_slow
from gslb.dns.stats import DnsStats
from gslb.dns.table import AnswerTable
from gslb.health.snapshot import HealthSnapshot
from gslb.steering.client import Client, source_client, subnet_client
from gslb.steering.decide import SteeringData
from gslb.steering.location import Locator

NAMES = ["static.gslb.example.com", "www.gslb.example.com", "api.gslb.example.com", "nope.gslb.example.com",
         "gslb.example.com", "a.wild.gslb.example.com"]


@pytest.fixture
def table(tmp_path) -> AnswerTable:
    (tmp_path / "zones").mkdir()
    (tmp_path / "zones" / "example.yaml").write_text(EXAMPLE_ZONE)
    (tmp_path / "regions.yaml").write_text(REGIONS_YAML)
    regions = load_regions(str(tmp_path / "regions.yaml"))
    return AnswerTable(load_zones(str(tmp_path / "zones"), regions), HealthSnapshot(), SteeringData(regions),
                       Locator(None), stats=DnsStats())


def wires() -> list[bytes]:
    out = []
    for name in NAMES:
        for rdtype in ("A", "AAAA", "TXT", "SOA"):
            for edns, ecs in ((None, None), (0, None), (0, "193.0.0.0/24"), (0, "2001:db8::/48"), (0, "0.0.0.0/0")):
                options = [dns.edns.ECSOption(ecs.split("/")[0], int(ecs.split("/")[1]))] if ecs else []
                q = dns.message.make_query(name.upper() if len(out) % 2 else name, rdtype, use_edns=edns,
                                           options=options)
                q.id = len(out)
                out.append(q.to_wire())
    return out


def with_id(wire: bytes, new: int) -> bytes:
    return new.to_bytes(2, "big") + wire[2:]


@pytest.mark.parametrize("tcp", [False, True])
def test_a_repeated_query_answers_like_the_first_and_like_the_slow_path(table, tcp):
    """Every query three times: first (read and cached), again with another ID and source (from the
    form), and through the slow path; `random` seeded alike before each, so pool draws match too."""
    for i, wire in enumerate(wires()):
        for source in ("127.0.0.1", "10.1.2.3"):
            random.seed(i)
            first = answer_fast(table, wire, source, tcp)
            again = with_id(wire, 4242)
            random.seed(i)
            second = answer_fast(table, again, source, tcp)
            random.seed(i)
            slow = answer_slow(table, again, source, tcp)
            if first is None:
                assert second is None
                continue
            assert second == with_id(first, 4242) == slow
    assert table.forms[tcp], "nothing was cached"


def test_counters_are_the_same_from_a_form_as_from_a_first_reading(table, tmp_path):
    """The per-query counters after 30 repeats of each query equal 30 times those of one reading."""
    once = AnswerTable(table.zones, HealthSnapshot(), table.data, Locator(None), stats=DnsStats())
    for wire in wires():
        random.seed(1)
        answer_fast(once, wire, "127.0.0.1", False)
        for _ in range(30):
            random.seed(1)
            answer_fast(table, wire, "127.0.0.1", False)
    a, b = once.stats.counters(), table.stats.counters()
    for name in ("gslb_dns_queries_total", "gslb_dns_answers_total", "gslb_dns_client_location_total"):
        assert sorted(row[:-1] + [row[-1] * 30] for row in a[name]) == sorted(b[name]), name
    assert sum(row[-1] for row in b["gslb_dns_answers_total"]) > 0


def test_forms_are_bounded_and_dropped_when_health_changes(table, monkeypatch):
    monkeypatch.setattr(fast, "FORMS_LIMIT", 10)
    for i in range(100):
        q = dns.message.make_query(f"n{i}.gslb.example.com", "A")
        answer_fast(table, q.to_wire(), "127.0.0.1", False)
        assert len(table.forms[0]) <= 10
    answer_fast(table, dns.message.make_query("www.gslb.example.com", "A").to_wire(), "127.0.0.1", False)
    assert table.forms[0]
    table.set_health(HealthSnapshot())
    assert table.forms == ({}, {})


def test_clients_are_built_without_ipaddress_and_equal_the_old_ones():
    import ipaddress
    for text in ("192.0.2.7", "2001:db8::1", "::1"):
        assert source_client(text) == Client(ipaddress.ip_network(text))
        assert source_client(text).address == text
    ecs = subnet_client("2001:db8:aa00::", 40)
    old = Client(ipaddress.ip_network("2001:db8:aa00::/40"), True)
    assert ecs == old and ecs.affinity_key == old.affinity_key == "2001:db8:aa00::/40"
    assert subnet_client("193.0.0.0", 24).ip == (4, 0xC1000000)
    assert source_client("fe80::1%eth0").address == "fe80::1"
    with pytest.raises(ValueError, match="not an IP address"):
        source_client("?")


def test_locations_are_remembered_per_block_only_where_exact(tmp_path):
    """A /16 in the database: one lookup serves its /24 blocks. A /28 inside a /24 of another country:
    addresses in and out of the /28 each get their own answer, never the block's."""
    path = write_test_mmdb(str(tmp_path / "geo.mmdb"), [
        ("10.1.0.0/16", {"continent": "EU", "country": "DE"}),
        ("10.2.0.0/16", {"continent": "EU", "country": "FR"}),
        ("10.2.0.16/28", {"continent": "NA", "country": "US"}),
        ("2001:db8::/32", {"continent": "AS", "country": "JP"}),
    ])
    locator = Locator(path)
    assert locator.locate_client(source_client("10.1.0.5")).country == "DE"
    assert locator.locate_client(source_client("10.1.0.200")).country == "DE"
    assert len(locator._blocks) == 1
    assert locator.locate_client(source_client("10.2.0.17")).country == "US"
    assert locator.locate_client(source_client("10.2.0.3")).country == "FR"
    assert locator.locate_client(source_client("10.2.0.18")).country == "US"
    assert locator.locate_client(source_client("10.2.0.3")).country == "FR"
    assert len(locator._blocks) == 1              # the mixed /24 is never remembered as a block
    assert locator.locate_client(subnet_client("2001:db8:1::", 48)).country == "JP"
    assert locator.locate_client(source_client("2001:db8:1::9")).country == "JP"
    assert len(locator._blocks) == 2
