"""The slow path: every message the fast path hands over, parsed with dnslib.

Error shapes, after dnspython's nanonameserver: shorter than a header or a response -> dropped;
header but no readable question -> FORMERR; other opcodes -> NOTIMP; EDNS version > 0 -> BADVERS;
zone transfers and other classes -> REFUSED; ANY -> one HINFO record (RFC 8482).
"""

from __future__ import annotations

import struct

from dnslib import QTYPE, DNSRecord

from gslb.dns import authority
from gslb.dns.fast import assemble, formerr, respond
from gslb.dns.table import AnswerTable, pack_result, wire_label
from gslb.dns.wire import (
    RCODE_BADVERS,
    RCODE_NOTIMP,
    RCODE_REFUSED,
    TYPE_OPT,
    FormErr,
    Query,
    name_to_text,
    opt_record,
    parse_options,
)

HINFO = 13
RFC8482_HINFO = b"\x07RFC8482\x00"


def _question_bytes(record: DNSRecord) -> bytes:
    q = record.q
    return b"".join(bytes([len(label)]) + label for label in q.qname.label) + b"\x00" + struct.pack("!HH", q.qtype, q.qclass)


def _to_query(data: bytes, record: DNSRecord) -> tuple[Query, int]:
    """A Query for the fast path's assembler, plus the EDNS version (or -1 without EDNS).

    :raises FormErr: more than one OPT, an OPT not at the root, or a malformed option.
    """
    opts = [rr for rr in record.ar if rr.rtype == TYPE_OPT]
    question = _question_bytes(record)
    flags = struct.unpack_from("!H", data, 2)[0]
    qname = question[:len(question) - 4].lower()
    base = Query(record.header.id, flags, question, qname, record.q.qtype, record.q.qclass)
    if not opts:
        return base, -1
    if len(opts) > 1 or str(opts[0].rname) != ".":
        raise FormErr("more than one OPT record, or OPT not owned by the root (RFC 6891 6.1.1)", question)
    opt = opts[0]
    version = (opt.ttl >> 16) & 0xFF
    raw = b"".join(struct.pack("!HH", o.code, len(o.data)) + o.data for o in opt.rdata)
    try:
        ecs = parse_options(raw, 0, len(raw))
    except FormErr as exc:
        raise FormErr(str(exc), question) from None
    return Query(base.id, flags, question, qname, base.qtype, base.qclass, True, max(512, opt.rclass),
                 bool(opt.ttl & 0x8000), ecs), version


def answer_slow(table: AnswerTable, data: bytes, client_ip: str, tcp: bool) -> bytes | None:
    """Answer anything the fast path declined; None means drop the message."""
    if len(data) < 12 or data[2] & 0x80:
        return None                                   # too short to answer, or a response: never reply
    try:
        record = DNSRecord.parse(data)
    except Exception:  # noqa: BLE001 -- dnslib raises many types on junk; any of them means FORMERR
        return formerr(data, None, False)
    if len(record.questions) != 1:
        return formerr(data, None, False)
    try:
        q, version = _to_query(data, record)
    except FormErr as exc:
        return formerr(data, exc.question, True)
    if q.opcode != 0:
        return assemble(q, 0x8000 | (q.flags & 0x7800) | RCODE_NOTIMP, 0, 0, 0, b"", 0, tcp)
    if version > 0:
        # RFC 6891 6.1.3: BADVERS (16) = extended rcode 1 in the OPT, header rcode 0.
        flags = 0x8000 | (q.flags & 0x0110)
        return struct.pack("!HHHHHH", q.id, flags, 1, 0, 0, 1) + q.question + opt_record(q.do, b"", RCODE_BADVERS >> 4)
    if q.qclass != 1 or q.qtype in (QTYPE.AXFR, QTYPE.IXFR):
        # Zone transfers are refused: zones reach every node as files. Other classes are not served.
        return assemble(q, 0x8000 | RCODE_REFUSED, 0, 0, 0, b"", 0, tcp)
    if q.qtype == QTYPE.ANY:
        return _answer_any(table, q, tcp)
    return respond(table, q, client_ip, tcp)


def _answer_any(table: AnswerTable, q: Query, tcp: bool) -> bytes:
    """RFC 8482: where the name exists, answer ANY with one synthesized HINFO "RFC8482" record."""
    result = authority.lookup(table.zones, name_to_text(q.qname), HINFO, wire_label(q.qname))
    if result.rcode == 0 and result.aa and not result.answer and result.authority:
        ttl = result.authority[0].ttl
        hinfo = b"\xc0\x0c" + struct.pack("!HHIH", HINFO, 1, ttl, len(RFC8482_HINFO)) + RFC8482_HINFO
        return assemble(q, 0x8400, 1, 0, 0, hinfo, 0, tcp)
    packed = pack_result(q.qname, HINFO, result)        # NXDOMAIN, REFUSED, a referral or a CNAME
    return assemble(q, packed.flags, packed.an, packed.ns, packed.ar, packed.body, 0, tcp)
