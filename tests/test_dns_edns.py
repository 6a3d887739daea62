"""EDNS, truncation, odd queries and malformed packets, over real sockets."""

from __future__ import annotations

import random
import socket
import struct

import dns.edns
import dns.flags
import dns.message
import dns.opcode
import dns.rcode
import dns.rdataclass
import pytest
from conftest import EXAMPLE_ZONE

TXTS = ", ".join(f'"record number {i} padding padding padding padding"' for i in range(30))
BIG_ZONE = f"""\
origin: big.test.
soa: {{mname: ns1.big.test., rname: h.big.test.}}
records:
  "@": {{NS: ns1.other.test.}}
  many: {{TXT: [{TXTS}]}}
"""


@pytest.fixture
def srv(serve):
    return serve({"example.yaml": EXAMPLE_ZONE, "big.yaml": BIG_ZONE})


def raw_udp(srv, data: bytes, timeout: float = 0.5) -> bytes | None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(timeout)
        sock.sendto(data, (srv.host, srv.port))
        try:
            return sock.recv(65535)
        except TimeoutError:
            return None


def test_opt_is_echoed_with_our_payload_and_version_0(srv):
    r = srv.query("static.gslb.example.com", "A", use_edns=0, payload=4096)
    assert r.edns == 0 and r.payload == 1232


def test_no_opt_without_edns(srv):
    r = srv.query("static.gslb.example.com", "A", use_edns=False)
    assert r.edns == -1


def test_badvers_for_edns_version_1(srv):
    q = dns.message.make_query("static.gslb.example.com", "A", use_edns=1)
    r = dns.message.from_wire(raw_udp(srv, q.to_wire()))
    assert r.rcode() == dns.rcode.BADVERS and r.edns == 0 and not r.answer


def test_do_bit_is_copied(srv):
    r = srv.query("static.gslb.example.com", "A", use_edns=0, want_dnssec=True)
    assert r.ednsflags & dns.flags.DO
    r = srv.query("static.gslb.example.com", "A", use_edns=0)
    assert not r.ednsflags & dns.flags.DO


def test_truncation_without_edns_and_whole_over_tcp(srv):
    q = dns.message.make_query("many.big.test", "TXT", use_edns=False)
    wire = raw_udp(srv, q.to_wire())
    assert len(wire) <= 512
    r = dns.message.from_wire(wire)
    assert r.flags & dns.flags.TC and not r.answer
    r = srv.query("many.big.test", "TXT", tcp=True, use_edns=False)
    assert not r.flags & dns.flags.TC and len(r.answer[0]) == 30


def test_edns_payload_is_capped_at_1232(srv):
    q = dns.message.make_query("many.big.test", "TXT", use_edns=0, payload=4096)
    wire = raw_udp(srv, q.to_wire())
    assert len(wire) <= 1232 and dns.message.from_wire(wire).flags & dns.flags.TC
    q = dns.message.make_query("static.gslb.example.com", "A", use_edns=0, payload=4096)
    assert not dns.message.from_wire(raw_udp(srv, q.to_wire())).flags & dns.flags.TC


def test_any_gets_one_hinfo_per_rfc8482(srv):
    r = srv.query("static.gslb.example.com", "ANY")
    assert len(r.answer) == 1 and r.answer[0].rdtype == dns.rdatatype.HINFO
    assert r.answer[0][0].cpu == b"RFC8482"
    assert srv.query("missing.gslb.example.com", "ANY").rcode() == dns.rcode.NXDOMAIN


def test_unknown_opcode_is_notimp(srv):
    q = dns.message.make_query("static.gslb.example.com", "A")
    q.set_opcode(dns.opcode.STATUS)
    r = dns.message.from_wire(raw_udp(srv, q.to_wire()))
    assert r.rcode() == dns.rcode.NOTIMP and r.opcode() == dns.opcode.STATUS


@pytest.mark.parametrize("rdtype", ["AXFR", "IXFR"])
def test_zone_transfers_are_refused(srv, rdtype):
    assert srv.query("gslb.example.com", rdtype, tcp=True).rcode() == dns.rcode.REFUSED


def test_chaos_class_is_refused(srv):
    q = dns.message.make_query("version.bind", "TXT", rdclass=dns.rdataclass.CH)
    assert dns.message.from_wire(raw_udp(srv, q.to_wire())).rcode() == dns.rcode.REFUSED


def test_malformed_packets_never_crash_the_server(srv):
    good = dns.message.make_query("static.gslb.example.com", "A").to_wire()
    rng = random.Random(42)
    cases = {
        "empty": (b"", None),
        "five bytes": (b"\x12\x34\x00\x00\x00", None),
        "a response": (good[:2] + bytes([good[2] | 0x80]) + good[3:], None),
        "header only": (good[:12], "formerr"),
        "truncated question": (good[:20], "formerr"),
        "compression loop": (good[:12] + b"\xc0\x0c\x00\x01\x00\x01", "formerr"),
    }
    for name, (data, expected) in cases.items():
        out = raw_udp(srv, data)
        if expected is None:
            assert out is None, name
        else:
            assert out is not None and dns.message.from_wire(out).rcode() == dns.rcode.FORMERR, name
        assert srv.query("static.gslb.example.com", "A").answer, f"server died after {name}"
    for _ in range(100):
        raw_udp(srv, bytes(rng.getrandbits(8) for _ in range(rng.randrange(0, 300))), timeout=0.02)
    assert srv.query("static.gslb.example.com", "A").answer


@pytest.mark.parametrize("option, why", [
    (struct.pack("!HBB", 3, 24, 0) + bytes(3), "unknown family"),
    (struct.pack("!HBB", 1, 33, 0) + bytes(5), "prefix longer than IPv4"),
    (struct.pack("!HBB", 1, 24, 0) + bytes([192, 0, 2, 1]), "address longer than the prefix"),
    (struct.pack("!HBB", 1, 20, 0) + bytes([192, 0, 0x2f]), "bits set past the prefix"),
    (struct.pack("!HBB", 1, 24, 8) + bytes([192, 0, 2]), "scope set in a query"),
])
def test_malformed_ecs_gets_formerr(srv, option, why):
    q = dns.message.make_query("www.gslb.example.com", "A", use_edns=0,
                               options=[dns.edns.GenericOption(dns.edns.OptionType.ECS, option)])
    r = dns.message.from_wire(raw_udp(srv, q.to_wire()))
    assert r.rcode() == dns.rcode.FORMERR, why
