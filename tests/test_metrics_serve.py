"""`gslb serve` /metrics: real queries over UDP and TCP, then the counters read back by name and linted
by `promtool check metrics`."""

from __future__ import annotations

import dns.message
import dns.query
import dns.rcode
from metricsutil import fetch, promtool_check_metrics, samples, total, value

ZONE = """\
origin: m.test.
soa: {mname: ns1.m.test., rname: h.m.test.}
ecs: true
records:
  "@": {NS: ns1.other.test.}
  static: {A: 192.0.2.10}
  www: {pool: web}
  moved: {pool: gone}
  dead: {pool: dead}
pools:
  web:
    policy: weighted
    check: null
    sites:
      big: {endpoints: [{address: 192.0.2.1, weight: 4}]}
      small: {endpoints: [{address: 192.0.2.2, weight: 1}]}
  gone:
    policy: failover
    check: null
    fallback: backup
    sites:
      old: {status: down, endpoints: [192.0.2.50]}
  backup:
    policy: failover
    check: null
    sites:
      spare: {endpoints: [192.0.2.60]}
  dead:
    policy: failover
    check: null
    all_down: servfail
    sites:
      only: {status: down, endpoints: [192.0.2.70]}
"""
N = 400


def test_query_answer_and_location_counters_follow_real_queries(serve):
    srv = serve({"m.yaml": ZONE})
    for _ in range(N):
        assert srv.query("www.m.test").rcode() == dns.rcode.NOERROR
    for _ in range(10):
        srv.query("www.m.test", tcp=True)
        srv.query("www.m.test", ecs="193.0.0.0/24")
        srv.query("nope.m.test")                       # NXDOMAIN
        srv.query("www.elsewhere.test")                # REFUSED: no zone of ours
        srv.query("moved.m.test")                      # answered by the fallback pool
        srv.query("dead.m.test")                       # all_down: servfail
        srv.query("static.m.test", "TXT")              # NODATA
        dns.query.udp(dns.message.make_query("id.server", "TXT", rdclass="CH"), srv.host, port=srv.port, timeout=2)
    api = f"http://{srv.api[0]}:{srv.api[1]}"
    text = fetch(f"{api}/metrics")
    s = samples(text)

    q = "gslb_dns_queries_total"
    assert value(s, q, zone="m.test.", qtype="A", transport="udp", rcode="NOERROR") == N + 10 + 10   # www, www+ECS, moved
    assert value(s, q, zone="m.test.", qtype="A", transport="tcp", rcode="NOERROR") == 10
    assert value(s, q, zone="m.test.", qtype="A", transport="udp", rcode="NXDOMAIN") == 10
    assert value(s, q, zone="-", qtype="A", transport="udp", rcode="REFUSED") == 10
    assert value(s, q, zone="m.test.", qtype="A", transport="udp", rcode="SERVFAIL") == 10
    assert value(s, q, zone="m.test.", qtype="TXT", transport="udp", rcode="NOERROR") == 10
    assert value(s, q, zone="-", qtype="TXT", transport="udp", rcode="NOERROR") == 10      # CHAOS id.server.
    # Every query answered is in the per-rcode totals too, and the two agree.
    assert total(s, q) == total(s, "gslb_dns_responses_total")

    a = "gslb_dns_answers_total"
    big = value(s, a, zone="m.test.", pool="web", site="big", address="192.0.2.1")
    small = value(s, a, zone="m.test.", pool="web", site="small", address="192.0.2.2")
    assert big + small == N + 20                      # UDP, TCP and ECS queries of www
    assert 0.72 <= big / (big + small) <= 0.88        # weights 4:1 (80 %), N = 420: several sigmas wide
    assert value(s, a, zone="m.test.", pool="backup", site="spare", address="192.0.2.60") == 10
    assert value(s, a, zone="m.test.", pool="gone", site="old", address="192.0.2.50") == 0
    assert value(s, "gslb_dns_fallback_total", zone="m.test.", pool="gone", fallback="backup") == 10
    assert value(s, "gslb_dns_all_down_total", zone="m.test.", pool="dead", action="servfail") == 10

    loc = "gslb_dns_client_location_total"
    assert value(s, loc, source="address", located="no") == N + 10 + 10 + 10     # www (udp, tcp), moved, dead
    assert value(s, loc, source="ecs", located="no") == 10                        # no GeoIP database here

    count = value(s, "gslb_dns_query_seconds_count")
    assert (N + 80) // 64 - 1 <= count <= (N + 80) // 64 + 1      # one query in 64 is timed
    assert value(s, "gslb_dns_query_seconds_bucket", le="+Inf") == count
    assert 0 < value(s, "gslb_dns_query_seconds_sum") < count * 0.1

    assert value(s, "gslb_zone_serial", zone="m.test.") > 0
    assert value(s, "gslb_zone_reload_total", result="ok") >= 1
    assert value(s, "gslb_zone_last_reload_success_timestamp_seconds") > 1.6e9
    labels = {"zone": "m.test.", "pool": "web", "site": "big", "address": "192.0.2.1"}
    assert value(s, "gslb_endpoint_up", **labels) == 1
    assert value(s, "gslb_endpoint_up", zone="m.test.", pool="gone", site="old", address="192.0.2.50") == 0
    assert total(s, "gslb_build_info") == 1
    assert value(s, "process_resident_memory_bytes") > 0
    promtool_check_metrics(text)
