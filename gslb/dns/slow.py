"""The slow path: every message the fast path hands over, read field by field.

Error shapes, after nsd and dnspython's nanonameserver: shorter than a header or a response -> dropped;
other opcodes -> NOTIMP (checked first, even for a header alone: another opcode may shape the rest of
the message differently); not exactly one readable question -> FORMERR; EDNS version > 0 -> BADVERS;
zone transfers and classes other than IN and CHAOS -> REFUSED; ANY -> one HINFO record (RFC 8482). The
error responses come from `gslb.dns.errors.error_response`. Who answered (NSID, CHAOS id.server.) is
said here (gslb/dns/identity.py), and so is `whoami.ZONE` (gslb/dns/whoami.py).
"""

from __future__ import annotations

import struct
from typing import NamedTuple

from dnslib import QTYPE

from gslb.dns import authority, identity
from gslb.dns.errors import BadVers, NotImp, error_response, response_for
from gslb.dns.fast import assemble, respond
from gslb.dns.table import AnswerTable, pack_result, wire_label
from gslb.dns.whoami import whoami
from gslb.dns.wire import (
    RCODE_REFUSED,
    TYPE_OPT,
    DnsError,
    FormErr,
    Query,
    name_to_text,
    parse_options,
    read_name,
)

HINFO = 13
RFC8482_HINFO = b"\x07RFC8482\x00"


def _read_question(data: bytes) -> bytes:
    """The question section (name uncompressed, letter case kept, then type and class).

    :raises NotImp: for an opcode other than QUERY.
    :raises FormErr: for anything but one readable question.
    """
    opcode = (data[2] >> 3) & 0xF
    if opcode != 0:
        raise NotImp(f"opcode {opcode} is not implemented (only QUERY)")
    qdcount = struct.unpack_from("!H", data, 4)[0]
    if qdcount != 1:
        raise FormErr(f"{qdcount} questions, expected 1")
    name, end = read_name(data, 12)
    if end + 4 > len(data):
        raise FormErr("the message ends inside the question")
    return name + data[end:end + 4]


class _Opt(NamedTuple):
    """An OPT record as sent: its owner name (wire form), class (payload size), TTL (flags) and options."""

    owner: bytes
    payload: int
    ttl: int
    rdata: bytes


def _opt_records(data: bytes, question: bytes) -> list[_Opt]:
    """The OPT records of the additional section, walking every record after the question.

    The walk is ours, not dnslib's: dnslib refuses label bytes it cannot decode (0x80-0xFF are legal
    in DNS labels) and drops an empty last option (the NSID request).
    :raises FormErr: when a record cannot be read (bad name, or the message ends inside it).
    """
    an, ns, ar = struct.unpack_from("!HHH", data, 6)
    pos = 12 + len(question)
    opts = []
    for index in range(an + ns + ar):
        owner, pos = read_name(data, pos)
        if pos + 10 > len(data):
            raise FormErr("the message ends inside a record", question)
        rtype, rclass, ttl, rdlen = struct.unpack_from("!HHIH", data, pos)
        pos += 10
        if pos + rdlen > len(data):
            raise FormErr("the message ends inside a record's data", question)
        if rtype == TYPE_OPT and index >= an + ns:
            opts.append(_Opt(owner, rclass, ttl, data[pos:pos + rdlen]))
        pos += rdlen
    return opts


def _to_query(data: bytes, question: bytes, opts: list[_Opt]) -> tuple[Query, int]:
    """A Query for the fast path's assembler, plus the EDNS version (or -1 without EDNS).

    :raises FormErr: more than one OPT, an OPT not at the root, or a malformed option.
    """
    msg_id, flags = struct.unpack_from("!HH", data)
    qname = question[:len(question) - 4].lower()   # length bytes are < 64: lower() only touches letters
    qtype, qclass = struct.unpack_from("!HH", question, len(question) - 4)
    base = Query(msg_id, flags, question, qname, qtype, qclass)
    if not opts:
        return base, -1
    opt = opts[0]
    do = bool(opt.ttl & 0x8000)
    if len(opts) > 1 or opt.owner != b"\x00":
        raise FormErr("more than one OPT record, or OPT not owned by the root (RFC 6891 6.1.1)", question, True, do)
    version = (opt.ttl >> 16) & 0xFF
    try:
        ecs, nsid = parse_options(opt.rdata, 0, len(opt.rdata))
    except FormErr as exc:
        raise FormErr(str(exc), question, True, do) from None
    return Query(msg_id, flags, question, qname, qtype, qclass, True, max(512, opt.payload), do, ecs, nsid), version


def answer(table: AnswerTable, data: bytes, client_ip: str, tcp: bool) -> bytes | None:
    """Answer anything the fast path declined; None means drop the message.

    :raises DnsError: FormErr, NotImp or BadVers, carrying what the error response echoes
        (`gslb.dns.errors.response_for` builds it).
    """
    if len(data) < 12 or data[2] & 0x80:
        return None                                   # too short to answer, or a response: never reply
    question = _read_question(data)
    q, version = _to_query(data, question, _opt_records(data, question))
    if version > 0:
        raise BadVers(f"EDNS version {version}, only 0 is spoken", question, q.do)
    nsid = table.identity.nsid_option() if q.nsid else b""
    if q.qclass == identity.CLASS_CH and q.qtype not in (QTYPE.AXFR, QTYPE.IXFR):
        flags, an, body = identity.chaos(table.identity, q)
        return _counted(table, None, q, assemble(q, flags, an, 0, 0, body, 0, tcp, nsid), tcp)
    if q.qclass != 1 or q.qtype in (QTYPE.AXFR, QTYPE.IXFR):
        # Zone transfers are refused: zones reach every node as files. Other classes are not served.
        return _counted(table, None, q, error_response(data, RCODE_REFUSED, question, q.edns, q.do), tcp)
    zone = table.whoami.get(q.qname) if table.whoami else None
    if zone is not None:
        flags, an, ns, body, scope = whoami(table, zone, q, client_ip)
        return _counted(table, zone.origin, q, assemble(q, flags, an, ns, 0, body, scope, tcp, nsid), tcp)
    if q.qtype == QTYPE.ANY:
        return _answer_any(table, q, tcp, nsid)
    return respond(table, q, client_ip, tcp, nsid)         # counted there, as on the fast path


def _counted(table: AnswerTable, zone: str | None, q: Query, out: bytes, tcp: bool) -> bytes:
    """`out`, counted in gslb_dns_queries_total (the responses `respond` does not make)."""
    if table.stats is not None:
        table.stats.count_response(zone, q.qtype, out, tcp)
    return out


def answer_slow(table: AnswerTable, data: bytes, client_ip: str, tcp: bool) -> bytes | None:
    """`answer`, with the error response instead of the exception (never raises on any input)."""
    try:
        return answer(table, data, client_ip, tcp)
    except DnsError as exc:
        return response_for(exc, data)


def _answer_any(table: AnswerTable, q: Query, tcp: bool, options: bytes = b"") -> bytes:
    """RFC 8482: where the name exists, answer ANY with one synthesized HINFO "RFC8482" record."""
    result = authority.lookup(table.zones, name_to_text(q.qname), HINFO, wire_label(q.qname))
    if result.rcode == 0 and result.aa and not result.answer and result.authority:
        ttl = result.authority[0].ttl
        hinfo = b"\xc0\x0c" + struct.pack("!HHIH", HINFO, 1, ttl, len(RFC8482_HINFO)) + RFC8482_HINFO
        out = assemble(q, 0x8400, 1, 0, 0, hinfo, 0, tcp, options)
    else:
        packed = pack_result(q.qname, HINFO, result)        # NXDOMAIN, REFUSED, a referral or a CNAME
        out = assemble(q, packed.flags, packed.an, packed.ns, packed.ar, packed.body, 0, tcp, options)
    return _counted(table, result.zone.origin if result.zone is not None else None, q, out, tcp)
