"""The fast path: a plain query in, a response out, from the answer table, without dnslib.

`respond` is also the last step of the slow path, so both paths answer alike: the client's question is
copied as sent (letter case kept, RFC 1035 / 0x20) in front of the packed sections.
"""

from __future__ import annotations

import random
import struct

from dnslib import QTYPE

from gslb.dns.errors import response_for
from gslb.dns.table import AnswerTable
from gslb.dns.wire import RCODE_SERVFAIL, FormErr, Query, opt_record, parse_query
from gslb.steering.client import client_for
from gslb.steering.decide import choose, ecs_scope

SLOW_TYPES = frozenset({QTYPE.ANY, QTYPE.AXFR, QTYPE.IXFR, QTYPE.OPT, 0})
COPIED_FLAGS = 0x0110        # RD and CD are copied from the query (RFC 1035 4.1.1, RFC 6840 5.9)
TC = 0x0200
MAX_UDP = 1232


def respond(table: AnswerTable, q: Query, client_ip: str, tcp: bool, options: bytes = b"") -> bytes:
    """The full response to a parsed query of class IN and an ordinary type; `options`: more EDNS
    options for our OPT record (NSID)."""
    entry = table.entry(q.qname, q.qtype)
    flags, an, ns, ar, body = entry.flags, entry.an, entry.ns, entry.ar, entry.body
    scope = 0
    stats = table.stats
    if entry.pool is not None:
        client = client_for(client_ip, (q.ecs.address, q.ecs.source) if q.ecs is not None else None,
                            entry.pool.zone.ecs)
        ready = table.ready(entry, client)
        p = ready.plan
        if p.outcome == "answer":
            chosen = choose(p, client, random.random)
            body += b"".join(ready.rrs[i] for i in chosen)
            an += len(chosen)
            if stats is not None:
                answers = stats.answers
                for i in chosen:
                    answers[ready.keys[i]] += 1
        elif p.outcome == "nodata":
            nodata = entry.nodata
            flags, an, ns, ar, body = nodata.flags, nodata.an, nodata.ns, nodata.ar, nodata.body
        else:
            flags, an, ns, ar, body = (flags & ~0xF) | RCODE_SERVFAIL, 0, 0, 0, b""
        scope = ecs_scope(p, client)
        if stats is not None:
            stats.location[client.ecs << 1 | ready.located] += 1
            if ready.steering:
                stats.steering[ready.steering] += 1
    if stats is not None:
        # Plain integers only (gslb/dns/stats.py): gslb/api/metrics.py reads them when /metrics is asked.
        stats.queries[entry.key | (flags & 0xF) << 1 | tcp] += 1
    return assemble(q, flags, an, ns, ar, body, scope, tcp, options)


def assemble(q: Query, flags: int, an: int, ns: int, ar: int, body: bytes, ecs_scope: int, tcp: bool,
             options: bytes = b"") -> bytes:
    """Header + the client's question + sections + our OPT (when the query had EDNS), truncated to fit."""
    flags |= q.flags & COPIED_FLAGS
    opt = b""
    if q.edns:
        opt = opt_record(q.do, (q.ecs.option(ecs_scope) if q.ecs is not None else b"") + options)
        ar += 1
    msg = struct.pack("!HHHHHH", q.id, flags, 1, an, ns, ar) + q.question + body + opt
    limit = 65535 if tcp else (min(q.payload, MAX_UDP) if q.edns else 512)
    if len(msg) > limit:
        # RFC 2181 9: set TC and drop the sections; the client retries over TCP.
        msg = struct.pack("!HHHHHH", q.id, flags | TC, 1, 0, 0, 1 if opt else 0) + q.question + opt
    return msg


def answer(table: AnswerTable, data: bytes, client_ip: str, tcp: bool) -> bytes | None:
    """Answer a plain query, or None to hand it to the slow path.

    :raises FormErr: for a malformed EDNS option (the question and OPT were read: both go back).
    """
    q = parse_query(data)
    if q is None or q.opcode != 0 or q.qclass != 1 or q.qtype in SLOW_TYPES:
        return None
    if table.whoami and q.qname in table.whoami:
        return None                      # answered per asker: gslb/dns/whoami.py
    return respond(table, q, client_ip, tcp)


def answer_fast(table: AnswerTable, data: bytes, client_ip: str, tcp: bool) -> bytes | None:
    """`answer`, with a FORMERR response instead of the exception (never raises on any input)."""
    try:
        return answer(table, data, client_ip, tcp)
    except FormErr as exc:
        return response_for(exc, data)
