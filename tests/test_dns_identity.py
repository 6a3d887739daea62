"""Say who answered, over real UDP/TCP with dnspython and dig: NSID (RFC 5001) carries the node id, CHAOS
TXT id.server./hostname.bind. the same, version.bind. only when configured (else REFUSED, like every
other CHAOS name), and `whoami.ZONE TXT` (off unless the zone enables it) the resolver's address, its ECS
subnet and the location steering assigns, with TTL 0. The fast path hands these queries over."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time
import urllib.request

import dns.edns
import dns.flags
import dns.message
import dns.query
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import pytest
from conftest import REGIONS_YAML
from mmdbutil import write_test_mmdb

from gslb.config.regions import load_regions
from gslb.config.zone import load_zone_file
from gslb.dns.fast import answer_fast
from gslb.dns.identity import Identity
from gslb.dns.slow import answer_slow
from gslb.dns.table import AnswerTable
from gslb.errors import ConfigError
from gslb.health.report import encode_report
from gslb.health.signing import HEADER, sign
from gslb.health.snapshot import HealthSnapshot, RegionView
from gslb.steering.decide import SteeringData
from gslb.steering.location import Locator

DIG = shutil.which("dig")
NODE = "ns-test-1.example.net"
SECRET = "identity-test-prober-key"
ZONE = """\
origin: who.test.
whoami: true
soa: {mname: ns1.who.test., rname: h.who.test., ttl: 300, minimum: 60}
records:
  "@": {NS: ns1.other.test.}
  www: {pool: web}
pools:
  web:
    check: {type: tcp, port: 9, interval: 60}
    sites: {eu: {region: eu-west-1, endpoints: [127.0.0.91]}}
"""
NETWORKS = [("193.0.0.0/16", {"continent": "EU", "country": "NL", "subdivision": "NL-NH", "lat": 52.37, "lon": 4.9}),
            ("127.0.0.0/8", {"continent": "EU", "country": "IE", "lat": 53.3, "lon": -6.3})]


@pytest.fixture
def srv(serve, tmp_path):
    config = f"node_id: {NODE}\nversion: gslb-test 1.2\nhealth: {{embedded: false, secret: {SECRET}}}\n"
    return serve({"who.yaml": ZONE, "plain.yaml": ZONE.replace("who.test", "plain.test").replace("whoami: true\n", "")},
                 config_yaml=config, geoip=write_test_mmdb(str(tmp_path / "geo.mmdb"), NETWORKS))


def nsid_of(msg: dns.message.Message) -> bytes | None:
    return next((o.data if hasattr(o, "data") else o.nsid for o in msg.options if o.otype == dns.edns.NSID), None)


def ask(srv, name: str, rdtype: str = "A", *, tcp: bool = False, rdclass: str = "IN", options=(),
        use_edns: int | bool = 0) -> dns.message.Message:
    q = dns.message.make_query(name, rdtype, rdclass, use_edns=use_edns if not options else 0, options=list(options))
    if tcp:
        return dns.query.tcp(q, srv.host, port=srv.port, timeout=3)
    return dns.query.udp(q, srv.host, port=srv.port, timeout=3)


def txts(msg: dns.message.Message) -> list[str]:
    return [b"".join(rd.strings).decode() for rrset in msg.answer for rd in rrset]


@pytest.mark.parametrize("tcp", [False, True], ids=["udp", "tcp"])
def test_nsid_names_the_node_when_asked(srv, tcp):
    asked = ask(srv, "www.who.test", tcp=tcp, options=[dns.edns.GenericOption(dns.edns.NSID, b"")])
    assert asked.rcode() == dns.rcode.NOERROR and asked.answer
    assert nsid_of(asked) == NODE.encode()
    # With ECS too: both options come back, the answer is the pool's as usual.
    both = ask(srv, "www.who.test", tcp=tcp, options=[dns.edns.GenericOption(dns.edns.NSID, b""),
                                                      dns.edns.ECSOption("193.0.0.0", 24)])
    assert nsid_of(both) == NODE.encode() and any(o.otype == dns.edns.ECS for o in both.options)
    assert ask(srv, "nope.who.test", tcp=tcp, options=[dns.edns.GenericOption(dns.edns.NSID, b"")]).rcode() \
        == dns.rcode.NXDOMAIN
    assert nsid_of(ask(srv, "www.who.test", tcp=tcp)) is None                 # not asked: not sent


@pytest.mark.parametrize("tcp", [False, True], ids=["udp", "tcp"])
def test_chaos_names_the_node_and_refuses_the_rest(srv, tcp):
    for name in ("id.server", "hostname.bind", "ID.Server"):
        reply = ask(srv, name, "TXT", rdclass="CH", tcp=tcp)
        assert reply.rcode() == dns.rcode.NOERROR and txts(reply) == [NODE], name
        assert reply.answer[0].rdclass == dns.rdataclass.CH and reply.answer[0].ttl == 0
        assert reply.flags & dns.flags.AA and reply.question[0].name.to_text() == name + "."
    assert txts(ask(srv, "version.bind", "TXT", rdclass="CH", tcp=tcp)) == ["gslb-test 1.2"]
    for name in ("authors.bind", "version.other", "www.who.test"):
        assert ask(srv, name, "TXT", rdclass="CH", tcp=tcp).rcode() == dns.rcode.REFUSED, name
    other_type = ask(srv, "id.server", "A", rdclass="CH", tcp=tcp)
    assert other_type.rcode() == dns.rcode.NOERROR and not other_type.answer
    assert ask(srv, "id.server", "AXFR", rdclass="CH", tcp=True).rcode() == dns.rcode.REFUSED


def test_version_bind_is_refused_unless_configured(serve):
    srv = serve({"who.yaml": ZONE})
    assert ask(srv, "version.bind", "TXT", rdclass="CH").rcode() == dns.rcode.REFUSED
    assert txts(ask(srv, "id.server", "TXT", rdclass="CH")) == [socket.gethostname()]   # node_id's default


def report_eu_west_1(srv) -> None:
    """A signed report from region eu-west-1: the nearest prober region of an Irish client is then it."""
    body = encode_report("eu-west-1", 60.0, {t: RegionView("up", 5.0) for t in
                                             srv.server.health_service.known_ids.values()})
    req = urllib.request.Request(f"http://{srv.api[0]}:{srv.api[1]}/v1/reports", data=body, method="POST",
                                 headers={HEADER: sign(SECRET, body), "Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as resp:
        assert json.load(resp)["accepted"] == 1
    deadline = time.monotonic() + 5
    while "eu-west-1" not in srv.server.health.regions():       # the snapshot is published on the loop
        assert time.monotonic() < deadline
        time.sleep(0.02)


@pytest.mark.parametrize("tcp", [False, True], ids=["udp", "tcp"])
def test_whoami_says_what_gslb_sees_of_the_asker(srv, tcp):
    report_eu_west_1(srv)
    plain = ask(srv, "whoami.who.test", "TXT", tcp=tcp)
    assert plain.rcode() == dns.rcode.NOERROR and plain.flags & dns.flags.AA
    assert {rrset.ttl for rrset in plain.answer} == {0}
    assert txts(plain) == ["resolver=127.0.0.1", "ecs=none", "client=127.0.0.1/32 (source address)",
                           "continent=EU", "country=IE", "coordinates=53.3000,-6.3000", "geoip_prefix=/8",
                           "prober_region=eu-west-1", f"node={NODE}"]
    with_ecs = ask(srv, "WhoAmI.who.test", "TXT", tcp=tcp, options=[dns.edns.ECSOption("193.0.2.0", 24)])
    assert txts(with_ecs)[:7] == ["resolver=127.0.0.1", "ecs=193.0.2.0/24", "client=193.0.2.0/24 (ecs)",
                                  "continent=EU", "country=NL", "subdivision=NL-NH", "coordinates=52.3700,4.9000"]
    assert with_ecs.question[0].name.to_text() == "WhoAmI.who.test."
    ecs = next(o for o in with_ecs.options if o.otype == dns.edns.ECS)
    assert ecs.scopelen == 24                                  # the answer is about that subnet
    unknown = ask(srv, "whoami.who.test", "TXT", tcp=tcp, options=[dns.edns.ECSOption("198.51.100.0", 24)])
    assert "location=unknown" in txts(unknown) and "prober_region=none" in txts(unknown)
    nodata = ask(srv, "whoami.who.test", "A", tcp=tcp)
    assert nodata.rcode() == dns.rcode.NOERROR and not nodata.answer
    assert nodata.authority[0].rdtype == dns.rdatatype.SOA and nodata.authority[0].ttl == 60
    assert ask(srv, "whoami.plain.test", "TXT", tcp=tcp).rcode() == dns.rcode.NXDOMAIN     # off by default


def test_whoami_says_when_the_zone_ignores_ecs(serve):
    srv = serve({"who.yaml": ZONE.replace("whoami: true", "whoami: true\necs: false")})
    reply = ask(srv, "whoami.who.test", "TXT", options=[dns.edns.ECSOption("193.0.2.0", 24)])
    assert txts(reply)[1:3] == ["ecs=193.0.2.0/24 (not used: the zone has ecs: false)",
                                "client=127.0.0.1/32 (source address)"]


@pytest.mark.skipif(DIG is None, reason="dig is not installed")
def test_dig_nsid_chaos_and_whoami(srv):
    def dig(*args: str) -> str:
        return subprocess.run([DIG, "@127.0.0.1", "-p", str(srv.port), "+time=2", "+tries=1", *args],
                              capture_output=True, text=True, timeout=15, check=False).stdout
    assert f'("{NODE}")' in dig("+nsid", "www.who.test", "A")
    assert dig("+short", "-c", "CH", "-t", "TXT", "id.server").strip() == f'"{NODE}"'
    assert dig("+short", "-c", "CH", "-t", "TXT", "hostname.bind").strip() == f'"{NODE}"'
    assert dig("+short", "-c", "CH", "-t", "TXT", "version.bind").strip() == '"gslb-test 1.2"'
    assert "status: REFUSED" in dig("-c", "CH", "-t", "TXT", "authors.bind")
    out = dig("+subnet=193.0.2.0/24", "whoami.who.test", "TXT")
    assert '"ecs=193.0.2.0/24"' in out and '"country=NL"' in out and "whoami.who.test. 0 IN TXT" in \
        " ".join(out.split())


def test_the_fast_path_hands_nsid_and_whoami_over(tmp_path):
    regions = _regions(tmp_path)
    (tmp_path / "who.yaml").write_text(ZONE)
    zone = load_zone_file(str(tmp_path / "who.yaml"), regions)
    table = AnswerTable({zone.origin: zone}, HealthSnapshot(), SteeringData(regions), Locator(None),
                        Identity("n1", None))
    plain = dns.message.make_query("www.who.test", "A", use_edns=0).to_wire()
    assert answer_fast(table, plain, "127.0.0.1", False) is not None          # the common case stays fast
    for wire in (dns.message.make_query("www.who.test", "A", options=[dns.edns.GenericOption(dns.edns.NSID, b"")],
                                        use_edns=0).to_wire(),
                 dns.message.make_query("whoami.who.test", "TXT").to_wire()):
        assert answer_fast(table, wire, "127.0.0.1", False) is None
        assert dns.message.from_wire(answer_slow(table, wire, "127.0.0.1", False)).rcode() == dns.rcode.NOERROR


def test_whoami_key_is_checked(tmp_path):
    for text, message in [
        (ZONE.replace("whoami: true", "whoami: yes please"), "who.yaml:2: whoami: 'yes please', expected true or false"),
        (ZONE.replace("  www: {pool: web}", "  www: {pool: web}\n  whoami: {TXT: hello}"),
         "who.yaml:2: whoami: true answers whoami.who.test. itself, but records: has that name"),
    ]:
        (tmp_path / "who.yaml").write_text(text)
        with pytest.raises(ConfigError) as exc:
            load_zone_file(str(tmp_path / "who.yaml"), _regions(tmp_path))
        assert any(str(p).endswith(message) for p in exc.value.problems), exc.value.problems


def _regions(tmp_path):
    (tmp_path / "regions.yaml").write_text(REGIONS_YAML)
    return load_regions(str(tmp_path / "regions.yaml"))
