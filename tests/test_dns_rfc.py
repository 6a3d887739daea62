"""Authoritative answers per the RFCs, over real UDP and TCP sockets with dnspython."""

from __future__ import annotations

import socket
import struct

import dns.flags
import dns.message
import dns.rcode
import dns.rdatatype
import pytest
from conftest import EXAMPLE_ZONE, rrset_texts

OTHER_ZONE = """\
origin: sub.gslb.example.com.
ttl: 600
soa: {mname: ns1.sub.gslb.example.com., rname: h.sub.gslb.example.com., minimum: 30}
records:
  "@": {NS: ns1.sub.gslb.example.com.}
  ns1: {A: 192.0.2.99}
  deep.a.b: {A: 192.0.2.98}
  long: {TXT: "LONGTEXT"}
  ptr: {PTR: host.example.net.}
  out: {CNAME: www.example.net.}
  loop1: {CNAME: loop2}
  loop2: {CNAME: loop1}
  delegated: {NS: ns.delegated.sub.gslb.example.com.}
  ns.delegated: {A: 192.0.2.97}
""".replace("LONGTEXT", "x" * 300)


@pytest.fixture
def srv(serve):
    return serve({"example.yaml": EXAMPLE_ZONE, "sub.yaml": OTHER_ZONE})


@pytest.mark.parametrize("tcp", [False, True])
def test_flags_aa_set_ra_never_rd_copied(srv, tcp):
    r = srv.query("static.gslb.example.com", "A", tcp=tcp)
    assert r.flags & dns.flags.AA and not r.flags & dns.flags.RA and not r.flags & dns.flags.RD
    q = dns.message.make_query("static.gslb.example.com", "A")   # RD set by default
    r = dns.query.udp(q, srv.host, port=srv.port, timeout=2)
    assert r.flags & dns.flags.RD and not r.flags & dns.flags.RA


def test_nxdomain_has_soa_with_negative_ttl(srv):
    r = srv.query("missing.gslb.example.com", "A")
    assert r.rcode() == dns.rcode.NXDOMAIN and r.flags & dns.flags.AA and not r.answer
    (soa,) = r.authority
    assert soa.rdtype == dns.rdatatype.SOA and soa.ttl == 60          # min(3600, minimum 60), RFC 2308 3
    r = srv.query("missing.sub.gslb.example.com", "A")
    assert r.authority[0].ttl == 30 and str(r.authority[0].name) == "sub.gslb.example.com."


def test_nodata_has_soa(srv):
    r = srv.query("static.gslb.example.com", "MX")
    assert r.rcode() == dns.rcode.NOERROR and not r.answer and r.authority[0].rdtype == dns.rdatatype.SOA


def test_empty_non_terminal_is_nodata_not_nxdomain(srv):
    r = srv.query("a.b.sub.gslb.example.com", "A")     # only deep.a.b.sub owns records
    assert r.rcode() == dns.rcode.NOERROR and not r.answer and r.authority
    assert srv.query("b.sub.gslb.example.com", "A").rcode() == dns.rcode.NOERROR
    assert srv.query("a.sub.gslb.example.com", "A").rcode() == dns.rcode.NXDOMAIN


def test_ns_answer_with_glue(srv):
    r = srv.query("gslb.example.com", "NS")
    assert rrset_texts(r) == ["gslb.example.com. 3600 NS ns1.gslb.example.com.",
                              "gslb.example.com. 3600 NS ns2.gslb.example.com."]
    assert rrset_texts(r, "additional") == ["ns1.gslb.example.com. 3600 A 192.0.2.53",
                                            "ns2.gslb.example.com. 3600 A 192.0.2.54",
                                            "ns2.gslb.example.com. 3600 AAAA 2001:db8::54"]


def test_soa_answer_and_automatic_serial(srv):
    r = srv.query("gslb.example.com", "SOA")
    (rrset,) = r.answer
    soa = rrset[0]
    assert str(soa.mname) == "ns1.gslb.example.com." and soa.minimum == 60 and soa.serial > 1_600_000_000


def test_cname_chased_inside_the_zone_and_not_outside(srv):
    r = srv.query("alias.gslb.example.com", "AAAA")
    assert rrset_texts(r) == ["alias.gslb.example.com. 3600 CNAME www.gslb.example.com.",
                              "www.gslb.example.com. 30 AAAA 2001:db8::1"]
    r = srv.query("out.sub.gslb.example.com", "A")
    assert rrset_texts(r) == ["out.sub.gslb.example.com. 600 CNAME www.example.net."]
    r = srv.query("alias.gslb.example.com", "CNAME")
    assert rrset_texts(r) == ["alias.gslb.example.com. 3600 CNAME www.gslb.example.com."]


def test_cname_loop_answers_without_hanging(srv):
    r = srv.query("loop1.sub.gslb.example.com", "A")
    assert r.rcode() == dns.rcode.NOERROR and 1 <= len(r.answer) <= 8


def test_wildcard_synthesis_per_rfc4592(srv):
    r = srv.query("Anything.Wild.gslb.example.com", "TXT")
    assert rrset_texts(r) == ['Anything.Wild.gslb.example.com. 3600 TXT "wildcard"']
    assert srv.query("a.b.wild.gslb.example.com", "A").answer[0][0].address == "192.0.2.70"
    r = srv.query("wild.gslb.example.com", "A")       # the parent of the wildcard exists, empty
    assert r.rcode() == dns.rcode.NOERROR and not r.answer
    r = srv.query("x.wild.gslb.example.com", "MX")    # wildcard matched, type missing -> NODATA
    assert r.rcode() == dns.rcode.NOERROR and not r.answer and r.authority


def test_refused_outside_every_zone(srv):
    r = srv.query("example.org", "A")
    assert r.rcode() == dns.rcode.REFUSED and not r.flags & dns.flags.AA


def test_longest_zone_match_with_two_zones(srv):
    r = srv.query("ns1.sub.gslb.example.com", "A")
    assert rrset_texts(r) == ["ns1.sub.gslb.example.com. 600 A 192.0.2.99"]


def test_delegation_below_the_zone_gets_a_referral(srv):
    r = srv.query("host.delegated.sub.gslb.example.com", "A")
    assert r.rcode() == dns.rcode.NOERROR and not r.flags & dns.flags.AA and not r.answer
    assert rrset_texts(r, "authority") == ["delegated.sub.gslb.example.com. 600 NS ns.delegated.sub.gslb.example.com."]
    assert rrset_texts(r, "additional") == ["ns.delegated.sub.gslb.example.com. 600 A 192.0.2.97"]


def test_question_letter_case_is_preserved(srv):
    r = srv.query("sTaTiC.GsLb.ExAmPlE.CoM", "A")
    assert str(r.question[0].name) == "sTaTiC.GsLb.ExAmPlE.CoM."
    assert str(r.answer[0].name) == "sTaTiC.GsLb.ExAmPlE.CoM."


def test_record_types(srv):
    assert rrset_texts(srv.query("mail.gslb.example.com", "MX")) == \
        ["mail.gslb.example.com. 3600 MX 10 mx.example.net."]
    r = srv.query("_sip._tcp.gslb.example.com", "SRV")
    assert rrset_texts(r) == ["_sip._tcp.gslb.example.com. 3600 SRV 10 5 5060 sip.gslb.example.com."]
    assert rrset_texts(r, "additional") == ["sip.gslb.example.com. 3600 A 192.0.2.60"]
    assert rrset_texts(srv.query("gslb.example.com", "CAA")) == \
        ['gslb.example.com. 3600 CAA 0 issue "letsencrypt.org"']
    assert rrset_texts(srv.query("ptr.sub.gslb.example.com", "PTR")) == \
        ["ptr.sub.gslb.example.com. 600 PTR host.example.net."]


def test_long_txt_is_split_into_255_byte_strings(srv):
    r = srv.query("long.sub.gslb.example.com", "TXT", use_edns=0)
    strings = r.answer[0][0].strings
    assert [len(s) for s in strings] == [255, 45] and b"".join(strings) == b"x" * 300


def test_ipv6_listener(serve):
    srv = serve({"example.yaml": EXAMPLE_ZONE}, listen=("[::1]:0",))
    assert srv.host == "::1"
    for tcp in (False, True):
        assert srv.query("static.gslb.example.com", "AAAA", tcp=tcp).answer[0][0].address == "2001:db8::10"


def _tcp_read(sock: socket.socket) -> bytes:
    def exact(n: int) -> bytes:
        data = b""
        while len(data) < n:
            chunk = sock.recv(n - len(data))
            assert chunk, "connection closed"
            data += chunk
        return data
    (length,) = struct.unpack("!H", exact(2))
    return exact(length)


def test_tcp_pipelined_queries_on_one_connection(srv):
    """RFC 7766 6.2.1: several queries on one connection, all answered."""
    queries = [dns.message.make_query(n, "A") for n in ("static.gslb.example.com", "ns1.gslb.example.com",
                                                         "sip.gslb.example.com")]
    with socket.create_connection((srv.host, srv.port), timeout=3) as sock:
        sock.sendall(b"".join(struct.pack("!H", len(w)) + w for w in (q.to_wire() for q in queries)))
        answers = {dns.message.from_wire(_tcp_read(sock)).id for _ in queries}
    assert answers == {q.id for q in queries}


def test_tcp_message_split_across_writes(srv):
    wire = dns.message.make_query("static.gslb.example.com", "A").to_wire()
    framed = struct.pack("!H", len(wire)) + wire
    with socket.create_connection((srv.host, srv.port), timeout=3) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for i in range(0, len(framed), 5):
            sock.sendall(framed[i:i + 5])
        r = dns.message.from_wire(_tcp_read(sock))
    assert rrset_texts(r) == ["static.gslb.example.com. 300 A 192.0.2.10", "static.gslb.example.com. 300 A 192.0.2.11"]
