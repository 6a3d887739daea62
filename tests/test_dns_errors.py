"""Error responses over real UDP and TCP: one shape for every error (FORMERR, SERVFAIL, NOTIMP, REFUSED,
BADVERS), bad names and opcodes answered instead of raised, bad input counted and logged rate-limited
without tracebacks (issue 13, items 4 and 6)."""

from __future__ import annotations

import logging
import socket
import struct

import dns.edns
import dns.flags
import dns.message
import dns.opcode
import dns.rcode
import pytest
from conftest import EXAMPLE_ZONE
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gslb.config.regions import load_regions
from gslb.config.zone import load_zones
from gslb.dns.errors import LogThrottle, error_response
from gslb.dns.server import Handler
from gslb.dns.table import AnswerTable
from gslb.dns.wire import FormErr, read_name
from gslb.health.snapshot import HealthSnapshot
from gslb.steering.decide import SteeringData
from gslb.steering.location import Locator

QR, AA, TC, RD, RA, Z, AD, CD = 0x8000, 0x0400, 0x0200, 0x0100, 0x0080, 0x0040, 0x0020, 0x0010
ALL_FLAGS = AA | TC | RD | RA | Z | AD | CD


@pytest.fixture
def srv(serve):
    return serve({"example.yaml": EXAMPLE_ZONE})


def udp(srv, data: bytes, timeout: float = 2.0) -> bytes:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(timeout)
        sock.sendto(data, (srv.host, srv.port))
        return sock.recv(65535)


def tcp(srv, data: bytes, timeout: float = 2.0) -> bytes:
    with socket.create_connection((srv.host, srv.port), timeout=timeout) as sock:
        sock.sendall(struct.pack("!H", len(data)) + data)
        head = b""
        while len(head) < 2:
            head += sock.recv(2 - len(head))
        size, body = struct.unpack("!H", head)[0], b""
        while len(body) < size:
            body += sock.recv(size - len(body))
        return body


def header(msg_id: int = 0x1234, flags: int = 0, qd: int = 1, an: int = 0, ns: int = 0, ar: int = 0) -> bytes:
    return struct.pack("!6H", msg_id, flags, qd, an, ns, ar)


def name(*labels: bytes) -> bytes:
    return b"".join(bytes([len(label)]) + label for label in labels) + b"\x00"


def fields(wire: bytes) -> tuple[int, int, int, int, int, int]:
    return struct.unpack_from("!6H", wire)


def no_tracebacks(caplog) -> None:
    assert not [r for r in caplog.records if r.exc_info], "a traceback was logged"
    assert "Traceback" not in caplog.text


# --- item 4: bad names are FORMERR, never an exception --------------------------------------------

LONG = [b"a" * 63] * 4                                           # 4 * 64 + 1 = 257 octets
BAD_NAMES = {
    "name of 257 octets": name(*LONG),
    "name of 256 octets": name(b"a" * 63, b"a" * 63, b"a" * 63, b"a" * 62),
    "label type 0x40 (extended)": b"\x41" + b"a" * 65 + b"\x00",
    "label type 0x40, short message": b"\x40",
    "label type 0x7f": b"\x7fabc\x00",
    "label type 0x80 (reserved)": b"\x80abc\x00",
    "label type 0xbf": b"\xbf" + b"x" * 200 + b"\x00",
    "label type 0x41 after a good label": b"\x03www\x41abc\x00",
    "pointer forward": b"\xc0\x20",
    "pointer to itself": b"\xc0\x0c",
    "pointer loop through a label": b"\x03www\xc0\x0c",
}


@pytest.mark.parametrize("transport", [udp, tcp], ids=["udp", "tcp"])
@pytest.mark.parametrize("case", list(BAD_NAMES))
def test_bad_name_gets_formerr_and_no_traceback(srv, caplog, case, transport):
    """Names over 255 octets, label bytes 0x40-0xBF and bad compression pointers: FORMERR with the ID,
    opcode and RD copied, no question (it could not be read), no traceback, and the server still answers."""
    caplog.set_level(logging.DEBUG, logger="gslb")
    handler = srv.server.handler
    before = handler.malformed
    wire = header(0xABCD, RD) + BAD_NAMES[case] + b"\x00\x01\x00\x01"
    msg_id, flags, qd, an, ns, ar = fields(transport(srv, wire))
    assert (msg_id, flags, qd, an, ns, ar) == (0xABCD, QR | RD | dns.rcode.FORMERR, 0, 0, 0, 0)
    assert handler.malformed == before + 1 and handler.failures == 0
    no_tracebacks(caplog)
    assert srv.query("static.gslb.example.com", "A").rcode() == dns.rcode.NOERROR


def test_a_name_of_exactly_255_octets_is_answered(srv):
    """The limit is 255 octets (RFC 1035 3.1): one that long, under our zone, gets NXDOMAIN, not FORMERR."""
    suffix = name(b"gslb", b"example", b"com")
    fill = 255 - len(suffix)
    labels = []
    while fill > 0:
        size = min(63, fill - 1)
        labels.append(b"b" * size)
        fill -= size + 1
    qname = name(*labels)[:-1] + suffix
    assert len(qname) == 255
    r = dns.message.from_wire(udp(srv, header() + qname + b"\x00\x01\x00\x01"))
    assert r.rcode() == dns.rcode.NXDOMAIN and r.flags & dns.flags.AA


def test_labels_with_any_byte_are_answered_not_raised(srv):
    """Bytes a presentation name must escape (dot, backslash, 0x00, 0xff) are fine in a label."""
    qname = name(b"a.b\\c\x00\xff", b"gslb", b"example", b"com")
    r = dns.message.from_wire(udp(srv, header() + qname + b"\x00\x01\x00\x01"))
    assert r.rcode() == dns.rcode.NXDOMAIN
    assert srv.server.handler.failures == 0


def test_read_name_follows_backward_pointers_and_refuses_the_rest():
    """The name reader: a pointer back to an earlier name works; forward, self and looping ones raise."""
    msg = header() + name(b"example", b"com") + b"\x00\x01\x00\x01" + b"\x03www\xc0\x0c"
    assert read_name(msg, 29) == (name(b"www", b"example", b"com"), len(msg))
    for bad in (b"\xc0\x0c", b"\xc0\x30", b"\x03www\xc0\x0c", b"\x80", b"\x05ab"):
        with pytest.raises(FormErr):
            read_name(header() + bad, 12)


# --- item 6: unknown opcodes are NOTIMP, even header-only ----------------------------------------

@pytest.mark.parametrize("opcode", [1, 2, 3, 6, 7, 15])
@pytest.mark.parametrize("transport", [udp, tcp], ids=["udp", "tcp"])
def test_header_only_query_with_unknown_opcode_gets_notimp(srv, caplog, opcode, transport):
    """genreport's `opcode` and `opcodeflg` tests (nsd passes them): a header alone (QDCOUNT=0) with an
    opcode other than QUERY gets NOTIMP (was FORMERR), the opcode copied, every other flag clear (RD, CD
    and the sections are defined for QUERY only), no records."""
    caplog.set_level(logging.DEBUG, logger="gslb")
    for flags in (0, ALL_FLAGS):
        out = transport(srv, header(0x0F0F, (opcode << 11) | flags, qd=0))
        assert fields(out) == (0x0F0F, QR | (opcode << 11) | dns.rcode.NOTIMP, 0, 0, 0, 0) and len(out) == 12
    assert srv.server.handler.unsupported >= 2
    no_tracebacks(caplog)


def test_unknown_opcode_with_a_question_gets_notimp_without_it(srv):
    """With a question too: NOTIMP, the opcode copied, the question not echoed (like nsd)."""
    q = dns.message.make_query("static.gslb.example.com", "A")
    q.set_opcode(dns.opcode.UPDATE)
    q.flags |= dns.flags.RD
    out = udp(srv, q.to_wire())
    assert fields(out) == (q.id, QR | (dns.opcode.UPDATE << 11) | dns.rcode.NOTIMP, 0, 0, 0, 0)


# --- every error copies the same flags -------------------------------------------------------------

def _question(wire: bytes) -> bytes:
    end = 12
    while wire[end]:
        end += wire[end] + 1
    return wire[12:end + 5]


def _query(rdtype: str = "A", rdclass: str = "IN", edns: int | None = None, options=(), name_: str = "StAtIc.gslb.example.com"):
    q = dns.message.make_query(name_, rdtype, rdclass=rdclass, use_edns=False if edns is None else edns,
                               options=list(options))
    return q


ERRORS = {
    # name: (query wire, rcode, OPT expected in the response)
    "FORMERR (malformed ECS)": (lambda: _query(edns=0, options=[dns.edns.GenericOption(8, b"\x00\x03\x18\x00")]),
                                dns.rcode.FORMERR, True),
    "REFUSED (AXFR)": (lambda: _query("AXFR"), dns.rcode.REFUSED, False),
    "REFUSED (class CH, EDNS)": (lambda: _query("TXT", "CH", edns=0), dns.rcode.REFUSED, True),
    "BADVERS (EDNS version 1)": (lambda: _query(edns=1), dns.rcode.BADVERS, True),
}


@pytest.mark.parametrize("transport", [udp, tcp], ids=["udp", "tcp"])
@pytest.mark.parametrize("case", list(ERRORS))
def test_every_error_copies_id_opcode_rd_cd_and_the_question(srv, case, transport):
    """RFC 1035 4.1.1, RFC 6840 5.9: ID, opcode, RD and CD copied; AA, TC, RA, AD, Z never set; the question
    echoed as sent (0x20 case kept); our OPT when the query had a readable one, the rcode's high bits in it."""
    make, rcode, with_opt = ERRORS[case]
    for extra in (0, RD | CD, ALL_FLAGS):
        q = make()
        wire = bytearray(q.to_wire())
        struct.pack_into("!H", wire, 2, extra)
        out = transport(srv, bytes(wire))
        msg_id, flags, qd, an, ns, ar = fields(out)
        assert msg_id == q.id
        assert flags == QR | (extra & (RD | CD)) | (rcode & 0xF), (case, hex(extra), hex(flags))
        assert (qd, an, ns, ar) == (1, 0, 0, 1 if with_opt else 0)
        assert _question(out) == _question(bytes(wire))
        r = dns.message.from_wire(out)
        assert r.rcode() == rcode and (r.edns == 0) == with_opt


def test_servfail_from_our_own_bug_has_the_same_shape_and_logs_rate_limited(srv, caplog):
    """The last-resort guard: a bug of ours (here: a table that raises) answers SERVFAIL shaped like every
    other error, counts it, and logs one line per interval without a traceback, however many queries."""
    caplog.set_level(logging.DEBUG, logger="gslb")

    class Broken:
        whoami = None                            # no zone answers whoami: the query reaches entry()
        forms = ({}, {})                         # no cached query forms (gslb/dns/fast.py)

        def entry(self, *_):
            raise RuntimeError("boom")

    handler = srv.server.handler
    good = handler.table
    srv.call(setattr, handler, "table", Broken())
    try:
        for i in range(30):
            q = dns.message.make_query("StAtIc.gslb.example.com", "A")
            q.id = i
            wire = bytearray(q.to_wire())
            struct.pack_into("!H", wire, 2, ALL_FLAGS)
            out = udp(srv, bytes(wire))
            assert fields(out) == (i, QR | RD | CD | dns.rcode.SERVFAIL, 1, 0, 0, 0)
            assert _question(out) == _question(bytes(wire))
    finally:
        srv.call(setattr, handler, "table", good)
    assert handler.failures == 30
    lines = [r for r in caplog.records if r.name == "gslb.dns" and "boom" in r.getMessage()]
    assert len(lines) == 1 and "RuntimeError" in lines[0].getMessage()
    no_tracebacks(caplog)


def test_bad_input_is_logged_at_most_once_per_interval(srv, caplog):
    """A flood of junk is counted one by one but logged once per interval (no log flood)."""
    caplog.set_level(logging.DEBUG, logger="gslb")
    handler = srv.server.handler
    before = handler.malformed
    for i in range(50):
        out = udp(srv, header(i, qd=1) + b"\x80junk")
        assert fields(out)[:2] == (i, QR | dns.rcode.FORMERR)
    assert handler.malformed == before + 50
    lines = [r for r in caplog.records if r.name == "gslb.dns"]
    assert 1 <= len(lines) <= 2 and "FORMERR" in lines[0].getMessage()
    no_tracebacks(caplog)


def test_log_throttle_counts_what_it_held_back():
    now = [0.0]
    records: list[str] = []

    class Sink(logging.Handler):
        def emit(self, record):
            records.append(record.getMessage())

    logger = logging.getLogger("test.throttle")
    logger.propagate = False
    logger.addHandler(Sink())
    logger.setLevel(logging.INFO)
    throttle = LogThrottle(logger, logging.INFO, 10.0, clock=lambda: now[0])
    for t in (0.0, 1.0, 2.0, 9.9, 10.0, 10.5):
        now[0] = t
        throttle("bad %s", t)
    assert records == ["bad 0.0", "bad 10.0 (and 3 more like it in the last 10 s)"]


def test_error_response_never_answers_a_response_or_a_short_message():
    assert error_response(b"\x00" * 11, dns.rcode.FORMERR) is None
    assert error_response(header(flags=QR), dns.rcode.FORMERR) is None


# --- no input reaches the last-resort guard ---------------------------------------------------------

@pytest.fixture(scope="module")
def handler(tmp_path_factory) -> Handler:
    from conftest import REGIONS_YAML
    root = tmp_path_factory.mktemp("errors")
    (root / "zones").mkdir()
    (root / "zones" / "example.yaml").write_text(EXAMPLE_ZONE)
    (root / "regions.yaml").write_text(REGIONS_YAML)
    regions = load_regions(str(root / "regions.yaml"))
    table = AnswerTable(load_zones(str(root / "zones"), regions), HealthSnapshot(), SteeringData(regions),
                        Locator(None))
    return Handler(table)


labels = st.lists(st.binary(min_size=0, max_size=70), min_size=0, max_size=6)


@settings(max_examples=600, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(parts=labels, raw=st.binary(max_size=8), suffix=st.sampled_from([b"", name(b"gslb", b"example", b"com")]),
       flags=st.integers(0, 0x7FFF), qtype=st.integers(0, 300), edns=st.sampled_from([b"", b"\x00\x00\x29\x04\xd0\x00\x00\x00\x00\x00\x00"]))
def test_no_query_reaches_the_last_resort_guard(handler, parts, raw, suffix, flags, qtype, edns):
    """Queries with any label bytes and lengths (also invalid ones), any flags and opcode, any type:
    answered or dropped, never through the `except Exception` guard."""
    qname = b"".join(bytes([len(p) & 0xFF]) + p for p in parts) + raw + suffix
    wire = header(7, flags, 1, 0, 0, 1 if edns else 0) + qname + (b"" if suffix else b"\x00") \
        + struct.pack("!HH", qtype, 1) + edns
    out = handler(wire, "192.0.2.1", False)
    assert out is None or out[:2] == b"\x00\x07"
    assert handler.failures == 0
