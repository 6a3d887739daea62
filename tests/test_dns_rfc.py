"""Authoritative answers per the RFCs (1034, 1035, 2181, 2308, 4592, 6604, 7766), over real UDP and TCP
sockets with dnspython."""

from __future__ import annotations

import socket
import struct
import time

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


# Edge cases: an SOA TTL below the minimum, wildcards next to existing names and empty non-terminals,
# a CNAME into nothing, a TTL of 0.
EDGE_ZONE = """\
origin: edge.test.
ttl: 100
soa: {mname: ns1.edge.test., rname: h.edge.test., minimum: 300, ttl: 50}
records:
  "@": {NS: [ns1.edge.test., ns.other.test.]}
  ns1: {A: 192.0.2.53}
  "*.w": {A: 192.0.2.70}
  a.b.w: {A: 192.0.2.71}
  sub.w: {TXT: "sub"}
  "*.cw": {CNAME: target}
  target: {A: 192.0.2.80}
  dangling: {CNAME: nothere}
  zero: {A: 192.0.2.1, ttl: 0}
"""


@pytest.fixture
def srv(serve):
    return serve({"example.yaml": EXAMPLE_ZONE, "sub.yaml": OTHER_ZONE, "edge.yaml": EDGE_ZONE})


def soa_text(msg: dns.message.Message, section: str = "authority") -> str:
    """The one SOA of a section as text, serial replaced by S (it is automatic)."""
    (rrset,) = getattr(msg, section)
    assert rrset.rdtype == dns.rdatatype.SOA
    return f"{rrset.name} {rrset.ttl} SOA {rrset[0].to_text().replace(f' {rrset[0].serial} ', ' S ')}"


@pytest.mark.parametrize("tcp", [False, True])
def test_flags_aa_set_ra_never_rd_copied(srv, tcp):
    """RFC 1035 4.1.1: AA on authoritative answers, RA never (no recursion), RD copied."""
    r = srv.query("static.gslb.example.com", "A", tcp=tcp)
    assert r.flags & dns.flags.AA and not r.flags & dns.flags.RA and not r.flags & dns.flags.RD
    q = dns.message.make_query("static.gslb.example.com", "A")   # RD set by default
    r = dns.query.tcp(q, srv.host, port=srv.port, timeout=2) if tcp else dns.query.udp(q, srv.host, port=srv.port,
                                                                                      timeout=2)
    assert r.flags & dns.flags.RD and not r.flags & dns.flags.RA and r.flags & dns.flags.AA


def test_cd_bit_is_copied(srv):
    """RFC 6840 5.9: CD is copied from the query."""
    q = dns.message.make_query("static.gslb.example.com", "A")
    q.flags |= dns.flags.CD
    assert dns.query.udp(q, srv.host, port=srv.port, timeout=2).flags & dns.flags.CD


def test_nxdomain_has_soa_with_negative_ttl(srv):
    """RFC 2308 3: NXDOMAIN carries the zone's SOA, TTL min(SOA TTL, minimum) -- here the minimum."""
    r = srv.query("missing.gslb.example.com", "A")
    assert r.rcode() == dns.rcode.NXDOMAIN and r.flags & dns.flags.AA and not r.answer and not r.additional
    assert soa_text(r) == "gslb.example.com. 60 SOA ns1.gslb.example.com. hostmaster.gslb.example.com. S 3600 600 1209600 60"
    r = srv.query("missing.sub.gslb.example.com", "A")
    assert soa_text(r) == "sub.gslb.example.com. 30 SOA ns1.sub.gslb.example.com. h.sub.gslb.example.com. S 3600 600 1209600 30"


def test_negative_ttl_is_the_soa_ttl_when_lower_than_the_minimum(srv):
    """RFC 2308 3: min(SOA TTL 50, minimum 300) = 50, for NXDOMAIN and NODATA alike."""
    expected = "edge.test. 50 SOA ns1.edge.test. h.edge.test. S 3600 600 1209600 300"
    assert soa_text(srv.query("missing.edge.test", "A")) == expected
    assert soa_text(srv.query("target.edge.test", "TXT")) == expected


def test_nodata_has_soa(srv):
    """RFC 2308 2.2: NODATA is NOERROR, empty answer, the SOA in authority."""
    r = srv.query("static.gslb.example.com", "MX")
    assert r.rcode() == dns.rcode.NOERROR and r.flags & dns.flags.AA and not r.answer
    assert soa_text(r) == "gslb.example.com. 60 SOA ns1.gslb.example.com. hostmaster.gslb.example.com. S 3600 600 1209600 60"


def test_empty_non_terminal_is_nodata_not_nxdomain(srv):
    """RFC 8020 / RFC 4592 2.2.2: a name with only names below it exists: NODATA, not NXDOMAIN."""
    r = srv.query("a.b.sub.gslb.example.com", "A")     # only deep.a.b.sub owns records
    assert r.rcode() == dns.rcode.NOERROR and not r.answer and r.authority
    assert srv.query("b.sub.gslb.example.com", "A").rcode() == dns.rcode.NOERROR
    assert srv.query("a.sub.gslb.example.com", "A").rcode() == dns.rcode.NXDOMAIN


def test_ns_answer_with_glue(srv):
    """RFC 1034 4.3.2: addresses of in-zone name servers go in the additional section."""
    r = srv.query("gslb.example.com", "NS")
    assert rrset_texts(r) == ["gslb.example.com. 3600 NS ns1.gslb.example.com.",
                              "gslb.example.com. 3600 NS ns2.gslb.example.com."]
    assert rrset_texts(r, "additional") == ["ns1.gslb.example.com. 3600 A 192.0.2.53",
                                            "ns2.gslb.example.com. 3600 A 192.0.2.54",
                                            "ns2.gslb.example.com. 3600 AAAA 2001:db8::54"]


def test_soa_answer_and_automatic_serial(srv):
    """The SOA itself is answered with its full TTL (not the negative one); the serial is a unix time."""
    r = srv.query("gslb.example.com", "SOA")
    assert soa_text(r, "answer") == \
        "gslb.example.com. 3600 SOA ns1.gslb.example.com. hostmaster.gslb.example.com. S 3600 600 1209600 60"
    assert r.answer[0][0].serial > 1_600_000_000 and not r.authority
    assert soa_text(srv.query("edge.test", "SOA"), "answer") == \
        "edge.test. 50 SOA ns1.edge.test. h.edge.test. S 3600 600 1209600 300"


def test_soa_below_the_apex_is_nodata(srv):
    r = srv.query("static.gslb.example.com", "SOA")
    assert r.rcode() == dns.rcode.NOERROR and not r.answer and len(r.authority) == 1


def test_ns_glue_only_for_in_zone_targets(srv):
    """Glue (additional A/AAAA) is given for ns1.edge.test. but not for the out-of-zone ns.other.test."""
    r = srv.query("edge.test", "NS")
    assert rrset_texts(r) == ["edge.test. 100 NS ns.other.test.", "edge.test. 100 NS ns1.edge.test."]
    assert rrset_texts(r, "additional") == ["ns1.edge.test. 100 A 192.0.2.53"]


def test_cname_chased_inside_the_zone_and_not_outside(srv):
    """RFC 1034 4.3.2 step 3a: a CNAME is followed inside the zone; a target outside it is left to the resolver."""
    r = srv.query("alias.gslb.example.com", "AAAA")
    assert rrset_texts(r) == ["alias.gslb.example.com. 3600 CNAME www.gslb.example.com.",
                              "www.gslb.example.com. 30 AAAA 2001:db8::1"]
    r = srv.query("out.sub.gslb.example.com", "A")
    assert rrset_texts(r) == ["out.sub.gslb.example.com. 600 CNAME www.example.net."]
    r = srv.query("alias.gslb.example.com", "CNAME")
    assert rrset_texts(r) == ["alias.gslb.example.com. 3600 CNAME www.gslb.example.com."]


def test_cname_to_a_missing_name_in_the_zone_is_nxdomain(srv):
    """RFC 6604 / RFC 2308 2.1: the rcode is that of the last name of the chain; the CNAME is answered."""
    r = srv.query("dangling.edge.test", "A")
    assert r.rcode() == dns.rcode.NXDOMAIN and r.flags & dns.flags.AA
    assert rrset_texts(r) == ["dangling.edge.test. 100 CNAME nothere.edge.test."]
    assert soa_text(r) == "edge.test. 50 SOA ns1.edge.test. h.edge.test. S 3600 600 1209600 300"


def test_cname_loop_stops_at_the_first_repeated_name(srv):
    """RFC 1034 3.6.2 / RFC 2181 5: a loop is answered once round, no duplicate records."""
    r = srv.query("loop1.sub.gslb.example.com", "A")
    assert r.rcode() == dns.rcode.NOERROR
    assert rrset_texts(r) == ["loop1.sub.gslb.example.com. 600 CNAME loop2.sub.gslb.example.com.",
                              "loop2.sub.gslb.example.com. 600 CNAME loop1.sub.gslb.example.com."]
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:     # dnspython would merge duplicates
        sock.settimeout(2)
        sock.sendto(dns.message.make_query("loop1.sub.gslb.example.com", "A").to_wire(), (srv.host, srv.port))
        wire = sock.recv(65535)
    assert struct.unpack_from("!H", wire, 6)[0] == 2             # ANCOUNT: no record repeated on the wire


def test_wildcard_synthesis_per_rfc4592(srv):
    """RFC 4592 2.1.1 / 3.3.1: the synthesized records are owned by the query name, in its letter case."""
    r = srv.query("Anything.Wild.gslb.example.com", "TXT")
    assert r.rcode() == dns.rcode.NOERROR and r.flags & dns.flags.AA
    assert rrset_texts(r) == ['Anything.Wild.gslb.example.com. 3600 TXT "wildcard"']
    assert rrset_texts(srv.query("a.b.wild.gslb.example.com", "A")) == \
        ["a.b.wild.gslb.example.com. 3600 A 192.0.2.70"]          # several labels below the wildcard
    r = srv.query("wild.gslb.example.com", "A")       # the parent of the wildcard exists, empty
    assert r.rcode() == dns.rcode.NOERROR and not r.answer
    r = srv.query("x.wild.gslb.example.com", "MX")    # wildcard matched, type missing -> NODATA
    assert r.rcode() == dns.rcode.NOERROR and not r.answer and len(r.authority) == 1


def test_wildcard_does_not_match_existing_names_or_empty_non_terminals(srv):
    """RFC 4592 2.2.1: names that exist (with records or as empty non-terminals) are not synthesized."""
    assert rrset_texts(srv.query("q.w.edge.test", "A")) == ["q.w.edge.test. 100 A 192.0.2.70"]
    for name in ("sub.w.edge.test", "b.w.edge.test"):         # owns TXT only / empty non-terminal
        r = srv.query(name, "A")
        assert (r.rcode(), r.answer, len(r.authority)) == (dns.rcode.NOERROR, [], 1), name
    # the closest encloser of these is sub.w / b.w, which have no wildcard child: NXDOMAIN
    for name in ("x.sub.w.edge.test", "c.b.w.edge.test"):
        assert srv.query(name, "A").rcode() == dns.rcode.NXDOMAIN, name


def test_wildcard_cname_is_owned_by_the_query_name_and_chased(srv):
    """RFC 4592 4.4: a wildcard CNAME is synthesized with the query name as owner, then followed."""
    r = srv.query("X.cw.edge.test", "A")
    assert rrset_texts(r) == ["X.cw.edge.test. 100 CNAME target.edge.test.", "target.edge.test. 100 A 192.0.2.80"]


def test_ttl_zero_is_served_as_zero(srv):
    """RFC 2181 8: a TTL of 0 is valid (it once became the zone's default TTL)."""
    assert rrset_texts(srv.query("zero.edge.test", "A")) == ["zero.edge.test. 0 A 192.0.2.1"]


@pytest.mark.parametrize("tcp", [False, True])
def test_refused_outside_every_zone(srv, tcp):
    """Not authoritative, no recursion: REFUSED without AA and with no records."""
    for name in ("example.org", "example.com", "test", "."):
        r = srv.query(name, "A", tcp=tcp)
        assert r.rcode() == dns.rcode.REFUSED and not r.flags & dns.flags.AA, name
        assert (r.answer, r.authority, r.additional) == ([], [], []), name


def test_longest_zone_match_with_several_zones(srv):
    """sub.gslb.example.com is its own zone inside gslb.example.com: the longest origin answers."""
    r = srv.query("ns1.sub.gslb.example.com", "A")
    assert rrset_texts(r) == ["ns1.sub.gslb.example.com. 600 A 192.0.2.99"]
    assert str(srv.query("sub.gslb.example.com", "SOA").answer[0].name) == "sub.gslb.example.com."
    assert str(srv.query("nope.sub.gslb.example.com", "A").authority[0].name) == "sub.gslb.example.com."
    assert str(srv.query("nope.gslb.example.com", "A").authority[0].name) == "gslb.example.com."
    assert rrset_texts(srv.query("target.edge.test", "A")) == ["target.edge.test. 100 A 192.0.2.80"]


def test_delegation_below_the_zone_gets_a_referral(srv):
    """RFC 1034 4.3.2 step 3b: below a zone cut, a referral: NS in authority, glue, no AA."""
    r = srv.query("host.delegated.sub.gslb.example.com", "A")
    assert r.rcode() == dns.rcode.NOERROR and not r.flags & dns.flags.AA and not r.answer
    assert rrset_texts(r, "authority") == ["delegated.sub.gslb.example.com. 600 NS ns.delegated.sub.gslb.example.com."]
    assert rrset_texts(r, "additional") == ["ns.delegated.sub.gslb.example.com. 600 A 192.0.2.97"]


@pytest.mark.parametrize("tcp", [False, True])
def test_question_letter_case_is_preserved(srv, tcp):
    """0x20 (draft-vixie-dnsext-dns0x20): question and answer owner keep the client's letter case."""
    for name in ("sTaTiC.GsLb.ExAmPlE.CoM", "STATIC.GSLB.EXAMPLE.COM", "wWw.GsLb.ExAmPlE.cOm"):
        r = srv.query(name, "A", tcp=tcp)
        assert str(r.question[0].name) == name + "." and str(r.answer[0].name) == name + ".", name
    r = srv.query("MiSsInG.gSlB.example.com", "A", tcp=tcp)
    assert r.rcode() == dns.rcode.NXDOMAIN and str(r.question[0].name) == "MiSsInG.gSlB.example.com."


def test_record_types_answered_exactly(srv):
    """MX, SRV (with the target's address), CAA and PTR answers, record for record."""
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
    """RFC 1035 3.3.14: a character-string holds at most 255 bytes; 300 bytes are two strings."""
    r = srv.query("long.sub.gslb.example.com", "TXT", use_edns=0)
    strings = r.answer[0][0].strings
    assert [len(s) for s in strings] == [255, 45] and b"".join(strings) == b"x" * 300


def test_ipv6_listener(serve):
    """Listening on [::1]: UDP and TCP answer over IPv6."""
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
    """RFC 7766 6.2.1: two length-prefixed queries in one send(), both answered on the connection."""
    queries = [dns.message.make_query(n, "A") for n in ("ns1.gslb.example.com", "sip.gslb.example.com")]
    with socket.create_connection((srv.host, srv.port), timeout=3) as sock:
        data = b"".join(struct.pack("!H", len(w)) + w for w in (q.to_wire() for q in queries))
        assert sock.send(data) == len(data)
        answers = [dns.message.from_wire(_tcp_read(sock)) for _ in queries]
        # and the connection stays open for a third query (RFC 7766 6.2.1: the server does not close it)
        third = dns.message.make_query("static.gslb.example.com", "AAAA")
        sock.sendall(struct.pack("!H", len(third.to_wire())) + third.to_wire())
        answers.append(dns.message.from_wire(_tcp_read(sock)))
    assert {r.id: rrset_texts(r) for r in answers} == {
        queries[0].id: ["ns1.gslb.example.com. 3600 A 192.0.2.53"],
        queries[1].id: ["sip.gslb.example.com. 3600 A 192.0.2.60"],
        third.id: ["static.gslb.example.com. 300 AAAA 2001:db8::10"]}


def test_tcp_message_split_across_writes(srv):
    """RFC 7766 8: a message may arrive in several segments; the length prefix itself may be split."""
    wire = dns.message.make_query("static.gslb.example.com", "A").to_wire()
    framed = struct.pack("!H", len(wire)) + wire
    with socket.create_connection((srv.host, srv.port), timeout=3) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for piece in [framed[:1], framed[1:6]] + [framed[i:i + 7] for i in range(6, len(framed), 7)]:
            sock.sendall(piece)
            time.sleep(0.01)                     # let each piece arrive on its own
        r = dns.message.from_wire(_tcp_read(sock))
    assert rrset_texts(r) == ["static.gslb.example.com. 300 A 192.0.2.10", "static.gslb.example.com. 300 A 192.0.2.11"]
