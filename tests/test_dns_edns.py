"""EDNS (RFC 6891), truncation, ANY (RFC 8482), odd opcodes, types and classes, malformed packets and
malformed ECS options (RFC 7871), over real sockets."""

from __future__ import annotations

import random
import socket
import struct

import dns.edns
import dns.flags
import dns.message
import dns.opcode
import dns.query
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import pytest
from conftest import EXAMPLE_ZONE

TXTS = ", ".join(f'"record number {i} padding padding padding padding"' for i in range(30))
BIG_ZONE = f"""\
origin: big.test.
soa: {{mname: ns1.big.test., rname: h.big.test.}}
records:
  "@": {{NS: ns1.other.test.}}
  many: {{TXT: [{TXTS}]}}
  mid: {{TXT: [{", ".join(TXTS.split(", ")[:12])}]}}
"""
MID_SIZE = 763               # bytes of the whole answer for mid.big.test TXT with EDNS: between 700 and 800


@pytest.fixture
def srv(serve):
    return serve({"example.yaml": EXAMPLE_ZONE, "big.yaml": BIG_ZONE})


def raw_udp(srv, data: bytes, timeout: float = 2.0) -> bytes | None:
    """Send bytes as one datagram; the reply's bytes, or None when nothing came back in time."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(timeout)
        sock.sendto(data, (srv.host, srv.port))
        try:
            return sock.recv(65535)
        except TimeoutError:
            return None


@pytest.mark.parametrize("tcp", [False, True])
@pytest.mark.parametrize("payload", [512, 1232, 4096])
def test_opt_is_echoed_with_our_payload_and_version_0(srv, tcp, payload):
    """RFC 6891 6.1.1 / 7: an EDNS query gets an OPT back: version 0, our payload size 1232, no flags."""
    r = srv.query("static.gslb.example.com", "A", use_edns=0, payload=payload, tcp=tcp)
    assert (r.edns, r.payload, r.ednsflags, r.options) == (0, 1232, 0, ())
    assert r.rcode() == dns.rcode.NOERROR and len(r.answer[0]) == 2


def test_no_opt_without_edns(srv):
    """RFC 6891 7: no OPT in the response to a query without one."""
    r = srv.query("static.gslb.example.com", "A", use_edns=False)
    assert r.edns == -1


def test_badvers_for_edns_version_1(srv):
    """RFC 6891 6.1.3: BADVERS (16) is extended rcode 1 in our version-0 OPT, header rcode 0."""
    q = dns.message.make_query("static.gslb.example.com", "A", use_edns=1)
    wire = raw_udp(srv, q.to_wire())
    r = dns.message.from_wire(wire)
    assert r.rcode() == dns.rcode.BADVERS and r.edns == 0 and not r.answer and not r.authority
    assert wire[3] & 0xF == 0 and wire[-11:-5] == bytes([0, 0, 41, 0x04, 0xD0, 1])   # root OPT 1232, ext rcode 1
    assert r.question[0].name == q.question[0].name and r.id == q.id


def test_do_bit_is_copied(srv):
    """RFC 3225 3: the DO bit of the query is copied into the response's OPT."""
    r = srv.query("static.gslb.example.com", "A", use_edns=0, want_dnssec=True)
    assert r.ednsflags & dns.flags.DO
    r = srv.query("static.gslb.example.com", "A", use_edns=0)
    assert not r.ednsflags & dns.flags.DO


def test_truncation_without_edns_and_whole_over_tcp(srv):
    """RFC 1035 4.2.1: without EDNS a UDP answer is at most 512 bytes, else TC; TCP carries it whole."""
    q = dns.message.make_query("mid.big.test", "TXT", use_edns=False)
    wire = raw_udp(srv, q.to_wire())
    assert len(wire) <= 512
    r = dns.message.from_wire(wire)
    assert r.flags & dns.flags.TC and r.flags & dns.flags.AA and not r.answer and r.edns == -1
    assert str(r.question[0].name) == "mid.big.test." and r.id == q.id
    for name, count in (("mid.big.test", 12), ("many.big.test", 30)):
        r = srv.query(name, "TXT", tcp=True, use_edns=False)
        assert not r.flags & dns.flags.TC and len(r.answer[0]) == count


def test_client_payload_size_is_honoured(srv):
    """RFC 6891 6.2.5: the answer (763 bytes) fits a client payload of 800, not one of 700."""
    q = dns.message.make_query("mid.big.test", "TXT", use_edns=0, payload=800)
    wire = raw_udp(srv, q.to_wire())
    r = dns.message.from_wire(wire)
    assert len(wire) == MID_SIZE and not r.flags & dns.flags.TC and len(r.answer[0]) == 12
    q = dns.message.make_query("mid.big.test", "TXT", use_edns=0, payload=700)
    r = dns.message.from_wire(raw_udp(srv, q.to_wire()))
    assert r.flags & dns.flags.TC and not r.answer
    assert r.edns == 0 and r.payload == 1232              # RFC 6891 7: the OPT stays in a truncated answer


def test_edns_payload_is_capped_at_1232(srv):
    """A client offering 4096 gets at most 1232 bytes (DNS flag day 2020), TC beyond."""
    q = dns.message.make_query("many.big.test", "TXT", use_edns=0, payload=4096)
    wire = raw_udp(srv, q.to_wire())
    assert len(wire) <= 1232
    r = dns.message.from_wire(wire)
    assert r.flags & dns.flags.TC and not r.answer and r.edns == 0
    r = srv.query("many.big.test", "TXT", tcp=True, use_edns=0, payload=4096)
    assert not r.flags & dns.flags.TC and len(r.answer[0]) == 30 and len(r.to_wire()) > 1232


@pytest.mark.parametrize("tcp", [False, True])
def test_any_gets_one_hinfo_per_rfc8482(srv, tcp):
    """RFC 8482 4.2: ANY at an existing name gets one synthesized HINFO "RFC8482"; the owner keeps 0x20 case."""
    r = srv.query("StAtIc.gslb.example.com", "ANY", tcp=tcp)
    assert r.rcode() == dns.rcode.NOERROR and r.flags & dns.flags.AA
    assert [(str(rr.name), rr.rdtype, len(rr)) for rr in r.answer] == \
        [("StAtIc.gslb.example.com.", dns.rdatatype.HINFO, 1)]
    assert (r.answer[0][0].cpu, r.answer[0][0].os) == (b"RFC8482", b"")
    assert srv.query("missing.gslb.example.com", "ANY", tcp=tcp).rcode() == dns.rcode.NXDOMAIN
    assert srv.query("example.org", "ANY", tcp=tcp).rcode() == dns.rcode.REFUSED


@pytest.mark.parametrize("opcode", [dns.opcode.IQUERY, dns.opcode.STATUS, dns.opcode.NOTIFY, dns.opcode.UPDATE, 7])
def test_unknown_opcode_is_notimp(srv, opcode):
    """RFC 1035 4.1.1: opcodes other than QUERY get NOTIMP, opcode and ID copied."""
    q = dns.message.make_query("static.gslb.example.com", "A")
    q.set_opcode(opcode)
    wire = raw_udp(srv, q.to_wire())
    msg_id, flags, _qd, an, ns, ar = struct.unpack_from("!6H", wire)
    assert (msg_id, flags >> 15, (flags >> 11) & 0xF, flags & 0xF) == (q.id, 1, opcode, dns.rcode.NOTIMP)
    assert (an, ns, ar) == (0, 0, 0)


@pytest.mark.parametrize("tcp", [False, True])
@pytest.mark.parametrize("rdtype", ["AXFR", "IXFR"])
def test_zone_transfers_are_refused(srv, rdtype, tcp):
    """Zones reach every node as files: AXFR and IXFR (RFC 5936, 1995) are REFUSED."""
    q = dns.message.make_query("gslb.example.com", rdtype)
    if tcp:
        r = dns.query.tcp(q, srv.host, port=srv.port, timeout=2)
    else:
        r = dns.message.from_wire(raw_udp(srv, q.to_wire()))
    assert r.rcode() == dns.rcode.REFUSED and not r.answer and not r.flags & dns.flags.AA


@pytest.mark.parametrize("rdclass", [dns.rdataclass.CH, dns.rdataclass.HS, dns.rdataclass.ANY])
def test_other_classes_are_refused(srv, rdclass):
    """Only class IN is served: CHAOS (version.bind), HESIOD and ANY get REFUSED."""
    for name in ("version.bind", "static.gslb.example.com"):
        q = dns.message.make_query(name, "TXT", rdclass=rdclass)
        r = dns.message.from_wire(raw_udp(srv, q.to_wire()))
        assert r.rcode() == dns.rcode.REFUSED and not r.answer, name


def test_two_opt_records_or_an_opt_not_at_the_root_get_formerr(srv):
    """RFC 6891 6.1.1: more than one OPT, or an OPT owned by another name than the root, is FORMERR."""
    wire = dns.message.make_query("static.gslb.example.com", "A", use_edns=0).to_wire()
    opt = wire[-11:]
    two = wire[:10] + struct.pack("!H", 2) + wire[12:] + opt
    named = wire[:-11] + b"\x03com\x00" + opt[1:]
    for data in (two, named):
        r = dns.message.from_wire(raw_udp(srv, data))
        assert r.rcode() == dns.rcode.FORMERR and r.edns == 0


GOOD = dns.message.make_query("static.gslb.example.com", "A").to_wire()


def _as_response(data: bytes) -> bytes:
    return data[:2] + bytes([data[2] | 0x80]) + data[3:]


MALFORMED = {
    "empty": (b"", None),
    "five bytes": (b"\x12\x34\x00\x00\x00", None),
    "eleven bytes": (GOOD[:11], None),
    "a response (QR=1)": (_as_response(GOOD), None),
    "a short response (QR=1, 11 bytes)": (_as_response(GOOD)[:11], None),
    "a response header only (QR=1)": (_as_response(GOOD)[:12], None),
    "header only": (GOOD[:12], dns.rcode.FORMERR),
    "truncated question": (GOOD[:20], dns.rcode.FORMERR),
    "question without type and class": (GOOD[:-4], dns.rcode.FORMERR),
    "two questions": (GOOD[:4] + b"\x00\x02" + GOOD[6:] + GOOD[12:], dns.rcode.FORMERR),
    "compression loop": (GOOD[:12] + b"\xc0\x0c\x00\x01\x00\x01", dns.rcode.FORMERR),
    "pointer past the end": (GOOD[:12] + b"\xc0\xff\x00\x01\x00\x01", dns.rcode.FORMERR),
    "label running past the end": (GOOD[:12] + b"\x3fabc", dns.rcode.FORMERR),
}


@pytest.mark.parametrize("name", list(MALFORMED))
def test_malformed_packet_gets_formerr_or_nothing_and_the_server_lives(srv, name):
    """RFC 1035 4.1.1: FORMERR when a header could be read from a query; a response or less than a
    header is dropped (never answer a response: no loops between servers). The server keeps answering."""
    data, expected = MALFORMED[name]
    sentinel = dns.message.make_query("static.gslb.example.com", "A")
    sentinel.id = 0xBEEF
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(2)
        sock.sendto(data, (srv.host, srv.port))
        sock.sendto(sentinel.to_wire(), (srv.host, srv.port))   # answered after the bad datagram
        first = sock.recv(65535)
        if expected is not None:
            msg_id, flags = struct.unpack_from("!HH", first)
            assert (msg_id, flags >> 15, flags & 0xF) == (struct.unpack_from("!H", data)[0], 1, expected)
            first = sock.recv(65535)
    r = dns.message.from_wire(first)
    assert r.id == 0xBEEF and len(r.answer[0]) == 2        # nothing else came before the sentinel's answer


def test_random_junk_from_a_seeded_rng_is_dropped_or_formerr(srv):
    """200 random datagrams in a row: those shorter than a header or with QR=1 get no answer, every
    other one exactly one error with its ID: NOTIMP for an opcode other than QUERY (checked first, like
    nsd), else FORMERR; afterwards the server still answers."""
    rng = random.Random(4)
    junk = [bytes(rng.getrandbits(8) for _ in range(rng.randrange(0, 120))) for _ in range(200)]
    expected = sorted(j[:2] for j in junk if len(j) >= 12 and not j[2] & 0x80)
    assert 50 < len(expected) < 150                          # both kinds are well represented
    sentinel = dns.message.make_query("static.gslb.example.com", "A")
    replies = []
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(3)
        for data in junk:
            sock.sendto(data, (srv.host, srv.port))
        sock.sendto(sentinel.to_wire(), (srv.host, srv.port))   # answered after every junk datagram
        while True:
            out = sock.recv(65535)
            if out[:2] == sentinel.to_wire()[:2] and len(out) > 40:
                break
            replies.append(out)
    assert sorted(r[:2] for r in replies) == expected
    assert all((r[2] >> 7, r[3] & 0xF) == (1, dns.rcode.NOTIMP if r[2] & 0x78 else dns.rcode.FORMERR)
               for r in replies)
    assert srv.query("static.gslb.example.com", "A").answer


def _tcp_exchange(srv, *messages: bytes) -> tuple[list[bytes], bool]:
    """Send length-prefixed messages on one connection; the replies read, and whether the server closed."""
    replies = []
    with socket.create_connection((srv.host, srv.port), timeout=2) as sock:
        sock.sendall(b"".join(struct.pack("!H", len(m)) + m for m in messages))
        buf = b""
        while len(replies) < len(messages):
            chunk = sock.recv(65535)
            if not chunk:
                return replies, True
            buf += chunk
            while len(buf) >= 2 and len(buf) >= 2 + struct.unpack_from("!H", buf)[0]:
                length = struct.unpack_from("!H", buf)[0]
                replies.append(buf[2:2 + length])
                buf = buf[2 + length:]
    return replies, False


def test_malformed_messages_over_tcp(srv):
    """On TCP a FORMERR keeps the connection; a response (QR=1) or an empty message closes it unanswered."""
    replies, closed = _tcp_exchange(srv, GOOD[:12], GOOD)
    assert not closed and [r[3] & 0xF for r in replies] == [dns.rcode.FORMERR, dns.rcode.NOERROR]
    for bad in (_as_response(GOOD), b""):
        assert _tcp_exchange(srv, bad, GOOD) == ([], True)
    assert srv.query("static.gslb.example.com", "A", tcp=True).answer


@pytest.mark.parametrize("option, why", [
    (struct.pack("!HBB", 3, 24, 0) + bytes(3), "unknown family"),
    (struct.pack("!HBB", 0, 24, 0) + bytes(3), "family 0"),
    (struct.pack("!HBB", 1, 33, 0) + bytes(5), "prefix longer than IPv4"),
    (struct.pack("!HBB", 2, 129, 0) + bytes(17), "prefix longer than IPv6"),
    (struct.pack("!HBB", 1, 24, 0) + bytes([192, 0, 2, 1]), "address longer than the prefix"),
    (struct.pack("!HBB", 1, 24, 0) + bytes([192, 0]), "address shorter than the prefix"),
    (struct.pack("!HBB", 1, 20, 0) + bytes([192, 0, 0x2f]), "bits set past the prefix"),
    (struct.pack("!HBB", 1, 24, 8) + bytes([192, 0, 2]), "scope set in a query"),
    (struct.pack("!HB", 1, 24), "option shorter than 4 bytes"),
])
@pytest.mark.parametrize("qtype", ["A", "TXT", "ANY"])     # pool name, static type, slow path
def test_malformed_ecs_gets_formerr(srv, option, why, qtype):
    """RFC 7871 6 / 7.1.1: a malformed ECS option gets FORMERR, with our OPT and the question."""
    q = dns.message.make_query("www.gslb.example.com", qtype, use_edns=0,
                               options=[dns.edns.GenericOption(dns.edns.OptionType.ECS, option)])
    r = dns.message.from_wire(raw_udp(srv, q.to_wire()))
    assert r.rcode() == dns.rcode.FORMERR and r.edns == 0 and not r.answer, why
    assert r.id == q.id and str(r.question[0].name) == "www.gslb.example.com.", why


@pytest.mark.parametrize("option, address", [
    (struct.pack("!HBB", 1, 0, 0), "0.0.0.0"),                                      # /0: "do not use my address"
    (struct.pack("!HBB", 1, 24, 0) + bytes([192, 0, 2]), "192.0.2.0"),
    (struct.pack("!HBB", 2, 56, 0) + bytes([0x20, 1, 0xd, 0xb8, 0, 0, 0]), "2001:db8::"),
])
def test_well_formed_ecs_is_answered_and_echoed(srv, option, address):
    """RFC 7871 7.2.1: the option comes back with the same family, source prefix and address."""
    q = dns.message.make_query("static.gslb.example.com", "A", use_edns=0,
                               options=[dns.edns.GenericOption(dns.edns.OptionType.ECS, option)])
    r = dns.message.from_wire(raw_udp(srv, q.to_wire()))
    assert r.rcode() == dns.rcode.NOERROR and len(r.answer[0]) == 2
    (ecs,) = r.options
    assert (ecs.address, ecs.srclen, ecs.scopelen) == (address, option[2], 0)
