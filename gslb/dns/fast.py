"""The fast path: a plain query in, a response out, from the answer table, without dnslib.

`respond` is also the last step of the slow path, so both paths answer alike: the client's question is
copied as sent (letter case kept, RFC 1035 / 0x20) in front of the packed sections.

A query read once leaves its *form* in the table, keyed by its bytes after the ID (flags, question, OPT
and options: all a response depends on besides the client): a repeated static query is then one dict
lookup and the ID put in front of the cached response; a repeated load-balanced one looks up what was
prepared for its client (the plan, the packed response per candidate, the counter keys) and draws. The
forms are bounded and dropped with the plans when health changes (`AnswerTable.set_health`).
"""

from __future__ import annotations

import random
import struct
from bisect import bisect_right

from dnslib import QTYPE

from gslb.dns.errors import response_for
from gslb.dns.table import AnswerTable, Entry, Ready
from gslb.dns.wire import RCODE_SERVFAIL, FormErr, Query, opt_record, parse_query
from gslb.steering.client import Client, client_for, source_client, subnet_client
from gslb.steering.decide import Plan, choose, ecs_scope

SLOW_TYPES = frozenset({QTYPE.ANY, QTYPE.AXFR, QTYPE.IXFR, QTYPE.OPT, 0})
COPIED_FLAGS = 0x0110        # RD and CD are copied from the query (RFC 1035 4.1.1, RFC 6840 5.9)
TC = 0x0200
MAX_UDP = 1232
FORMS_LIMIT = 20_000         # query forms kept per transport (cleared when full: a flood of names stays bounded)
CLIENTS_LIMIT = 4_096        # clients prepared per load-balanced form (idem)
DRAWS_LIMIT = 256            # packed responses per (form, client) for pools answering several of many


def pool_sections(entry: Entry, ready: Ready, chosen: tuple[int, ...]) -> tuple[int, int, int, int, bytes]:
    """Flags, counts and sections of a load-balanced response with these candidates chosen."""
    outcome = ready.plan.outcome
    if outcome == "answer":
        return (entry.flags, entry.an + len(chosen), entry.ns, entry.ar,
                entry.body + b"".join(ready.rrs[i] for i in chosen))
    if outcome == "nodata":
        nodata = entry.nodata
        return nodata.flags, nodata.an, nodata.ns, nodata.ar, nodata.body
    return (entry.flags & ~0xF) | RCODE_SERVFAIL, 0, 0, 0, b""


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
        chosen = choose(p, client, random.random) if p.outcome == "answer" else ()
        flags, an, ns, ar, body = pool_sections(entry, ready, chosen)
        if stats is not None:
            answers = stats.answers
            for i in chosen:
                answers[ready.keys[i]] += 1
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


class PoolForm:
    """A load-balanced query as read once: its entry, the parsed query, and the client when the query's
    ECS subnet decides (else the source address does, per query)."""

    __slots__ = ("client", "clients", "entry", "prepared", "q")

    def __init__(self, entry: Entry, q: Query, client: Client | None):
        self.entry = entry
        self.q = q
        self.client = client
        # Decided by ECS: the one client's Prepared; by source address: a Prepared per address (a dict
        # only then: 10,000 ECS subnets are 10,000 forms, and memory per form is cache misses per query).
        self.prepared: Prepared | None = None
        self.clients: dict[str, Prepared] | None = None if client is not None else {}


ONE, FIXED, DRAW = 0, 1, 2   # Prepared.mode: one of many by weight; always the same; several of many


class Prepared:
    """What the responses of one form to one client need: the plan, and the packed response after the
    ID per candidate (ONE), for the only choice (FIXED) or per choice made so far (DRAW); the counters'
    keys (gslb/dns/stats.py)."""

    __slots__ = ("answer_keys", "client", "draws", "keys", "location", "mode", "plan", "qkey", "ready",
                 "scope", "steering", "tail", "tails")

    def __init__(self, table: AnswerTable, form: PoolForm, client: Client, tcp: bool):
        entry, q = form.entry, form.q
        ready = table.ready(entry, client)
        p: Plan = ready.plan
        self.ready = ready
        self.plan = p
        self.client = client
        self.scope = ecs_scope(p, client)
        self.keys = ready.keys
        self.location = client.ecs << 1 | ready.located
        self.steering = ready.steering
        self.tails: tuple[bytes, ...] = ()
        self.tail = b""
        self.answer_keys: tuple[int, ...] = ()
        self.draws: dict[tuple[int, ...], bytes] = {}
        flags = entry.flags
        if p.outcome != "answer":
            self.mode = FIXED
            self.tail = self._tail(q, entry, (), tcp)
            flags = pool_sections(entry, ready, ())[0]
        elif not p.affinity and p.answers == 1 and len(p.candidates) > 1:
            self.mode = ONE       # the same single weighted draw as decide.pick_indices, then a lookup
            self.tails = tuple(self._tail(q, entry, (i,), tcp) for i in range(len(p.candidates)))
        elif p.affinity or len(p.candidates) <= p.answers:
            self.mode = FIXED     # no draw: every candidate, or the client's rendezvous hash
            chosen = choose(p, client, random.random)
            self.tail = self._tail(q, entry, chosen, tcp)
            self.answer_keys = tuple(ready.keys[i] for i in chosen) if ready.keys else ()
        else:
            self.mode = DRAW
        self.qkey = entry.key | (flags & 0xF) << 1 | tcp

    def _tail(self, q: Query, entry: Entry, chosen: tuple[int, ...], tcp: bool) -> bytes:
        flags, an, ns, ar, body = pool_sections(entry, self.ready, chosen)
        return assemble(q, flags, an, ns, ar, body, self.scope, tcp)[2:]


def _pool_answer(table: AnswerTable, form: PoolForm, data: bytes, client_ip: str, tcp: bool) -> bytes:
    """A load-balanced response from a form: the client's prepared plan, one draw, counted."""
    clients = form.clients
    if clients is None:
        prep = form.prepared
        if prep is None:
            prep = form.prepared = Prepared(table, form, form.client, tcp)
    else:
        prep = clients.get(client_ip)
        if prep is None:
            if len(clients) >= CLIENTS_LIMIT:
                clients.clear()
            prep = clients[client_ip] = Prepared(table, form, source_client(client_ip), tcp)
    stats = table.stats
    mode = prep.mode
    if mode == ONE:
        cumulative = prep.plan.cumulative
        i = bisect_right(cumulative, random.random() * cumulative[-1])
        tail = prep.tails[i]
        if stats is not None:
            stats.answers[prep.keys[i]] += 1
    elif mode == FIXED:
        tail = prep.tail
        if stats is not None:
            answers = stats.answers
            for k in prep.answer_keys:
                answers[k] += 1
    else:
        chosen = choose(prep.plan, prep.client, random.random)
        tail = prep.draws.get(chosen)
        if tail is None:
            if len(prep.draws) >= DRAWS_LIMIT:
                prep.draws.clear()
            tail = prep.draws[chosen] = prep._tail(form.q, form.entry, chosen, tcp)
        if stats is not None and prep.keys:
            answers = stats.answers
            for i in chosen:
                answers[prep.keys[i]] += 1
    if stats is not None:
        stats.queries[prep.qkey] += 1
        stats.location[prep.location] += 1
        if prep.steering:
            stats.steering[prep.steering] += 1
    return data[:2] + tail


def answer(table: AnswerTable, data: bytes, client_ip: str, tcp: bool) -> bytes | None:
    """Answer a plain query, or None to hand it to the slow path.

    :raises FormErr: for a malformed EDNS option (the question and OPT were read: both go back).
    """
    forms = table.forms[tcp]
    form = forms.get(data[2:])
    if form is not None:
        if form.__class__ is tuple:       # a static response: (bytes after the ID, counter key)
            stats = table.stats
            if stats is not None:
                stats.queries[form[1]] += 1
            return data[:2] + form[0]
        return _pool_answer(table, form, data, client_ip, tcp)
    q = parse_query(data)
    if q is None or q.opcode != 0 or q.qclass != 1 or q.qtype in SLOW_TYPES:
        return None
    if table.whoami and q.qname in table.whoami:
        return None                      # answered per asker: gslb/dns/whoami.py
    entry = table.entry(q.qname, q.qtype)
    if len(forms) >= FORMS_LIMIT:
        forms.clear()
    if entry.pool is None:
        out = respond(table, q, client_ip, tcp)
        forms[data[2:]] = (out[2:], entry.key | (entry.flags & 0xF) << 1 | tcp)
        return out
    ecs = q.ecs
    client = subnet_client(ecs.address, ecs.source) if ecs is not None and ecs.source > 0 and \
        entry.pool.zone.ecs else None
    form = forms[data[2:]] = PoolForm(entry, q, client)
    return _pool_answer(table, form, data, client_ip, tcp)


def answer_fast(table: AnswerTable, data: bytes, client_ip: str, tcp: bool) -> bytes | None:
    """`answer`, with a FORMERR response instead of the exception (never raises on any input)."""
    try:
        return answer(table, data, client_ip, tcp)
    except FormErr as exc:
        return response_for(exc, data)
