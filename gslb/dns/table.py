"""The answer table: responses packed in advance, per (name, type), for the fast path.

Each `Entry` is what `authority.lookup` answers, packed once with dnslib. At query time the fast path
only copies the client's question in front of the packed sections and patches the ID, flags and OPT
record. Names of the zones are packed when the table is built; other names (NXDOMAIN, wildcards) are
packed on first use and kept in a bounded memo. Load-balanced names keep a `PoolRef`: their A/AAAA
records come from steering per query, from plans cached per client-location bucket.

A table is immutable as far as answers go: a zone reload builds a new table and swaps it in, so no
query sees half a reload. A health change swaps the plan cache only.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import struct
from collections.abc import Mapping
from dataclasses import dataclass

from dnslib import QTYPE, DNSHeader, DNSLabel, DNSQuestion, DNSRecord

from gslb.config.model import Zone
from gslb.dns.authority import PoolRef, Result, lookup, soa_rr
from gslb.dns.identity import Identity
from gslb.dns.stats import DnsStats
from gslb.dns.wire import name_to_text, text_to_name
from gslb.health.snapshot import HealthSnapshot
from gslb.steering.client import Client
from gslb.steering.decide import Plan, SteeringData, net_key, plan
from gslb.steering.location import ClientLocation, Locator

MEMO_LIMIT = 50_000          # packed answers for names outside the zone files (NXDOMAIN, wildcards)
PLAN_LIMIT = 100_000         # cached plans (pool x family x location bucket)
PREWARM_LIMIT = 2_000        # zones up to this many names are packed whole at load; bigger ones on demand
# The trace line steering.decide.plan writes when no pool had a usable endpoint (counted as all_down).
ALL_DOWN_TRACE_PREFIX = "nothing healthy: all_down"
PREWARM_TYPES = tuple(getattr(QTYPE, t) for t in ("SOA", "NS", "A", "AAAA", "CNAME", "TXT", "MX", "SRV", "CAA"))


@dataclass(frozen=True, slots=True, eq=False)
class Entry:
    """A packed response minus header ID, question and OPT. Compared and hashed by identity."""

    flags: int                 # QR, AA and rcode bits of the response flags word
    an: int
    ns: int
    ar: int
    body: bytes                # answer + authority + additional sections
    pool: PoolRef | None = None
    owner: bytes = b"\xc0\x0c"  # owner of the pool's records: a pointer to the question, or a full name
    nodata: Entry | None = None  # for pool entries: the NODATA response (SOA in authority)
    key: int = 0               # (zone, qtype) label id for gslb_dns_queries_total (gslb/dns/stats.py)


def wire_label(qname: bytes) -> DNSLabel:
    """A dnslib name with exactly these wire labels (bytes a presentation name would have to escape)."""
    labels, pos = [], 0
    while qname[pos]:
        labels.append(qname[pos + 1:pos + 1 + qname[pos]])
        pos += qname[pos] + 1
    return DNSLabel(labels)


def pack_result(qname: bytes, qtype: int, result: Result) -> Entry:
    """Pack a lookup result with dnslib, for a question of this (lower-case, wire) name and type."""
    header = DNSHeader(id=0, qr=1, aa=int(result.aa), rd=0, rcode=result.rcode)
    record = DNSRecord(header, q=DNSQuestion(wire_label(qname), qtype))
    for rr in result.answer:
        record.add_answer(rr)
    for rr in result.authority:
        record.add_auth(rr)
    for rr in result.additional:
        record.add_ar(rr)
    wire = bytes(record.pack())     # dnslib returns a bytearray: an Entry must never change
    qlen = len(qname) + 4
    flags = struct.unpack_from("!H", wire, 2)[0]
    an, ns, ar = struct.unpack_from("!HHH", wire, 6)
    return Entry(flags, an, ns, ar, wire[12 + qlen:])


def build_entry(zones: Mapping[str, Zone], qname: bytes, qtype: int, stats: DnsStats | None = None) -> Entry:
    """The packed answer for (qname, qtype); qname in lower-case wire form. `stats`: label the entry's
    queries with its zone and type."""
    text = name_to_text(qname)
    result = lookup(zones, text, qtype, wire_label(qname))
    entry = pack_result(qname, qtype, result)
    key = stats.query_key(result.zone.origin if result.zone is not None else None, qtype) if stats else 0
    if result.pool is None:
        return dataclasses.replace(entry, key=key) if key else entry
    owner = b"\xc0\x0c" if result.pool.owner == text else text_to_name(result.pool.owner)
    negative = Result(aa=True, answer=result.answer, authority=[soa_rr(result.zone, negative=True)])
    return Entry(entry.flags, entry.an, entry.ns, entry.ar, entry.body, result.pool, owner,
                 pack_result(qname, qtype, negative), key)


def address_rr(owner: bytes, address: str, ttl: int) -> bytes:
    """One A or AAAA record in wire form."""
    packed = ipaddress.ip_address(address).packed
    rtype = QTYPE.A if len(packed) == 4 else QTYPE.AAAA
    return owner + struct.pack("!HHIH", rtype, 1, ttl, len(packed)) + packed


@dataclass(frozen=True, slots=True)
class Ready:
    """A plan plus the wire form of each candidate's record, in candidate order, and what the query
    counts (gslb/dns/stats.py): a label id per candidate, whether the client was located, and the
    fallback or all_down label id (0: the pool itself answered)."""

    plan: Plan
    rrs: tuple[bytes, ...]
    keys: tuple[int, ...] = ()
    located: int = 0
    steering: int = 0


class AnswerTable:
    """Zones + health + steering data, ready to answer. See the module docstring."""

    def __init__(self, zones: Mapping[str, Zone], health: HealthSnapshot, data: SteeringData,
                 locator: Locator, identity: Identity | None = None, stats: DnsStats | None = None):
        self.zones = zones
        self.stats = stats                          # what queries count; None: nothing (GSLB_DNS_STATS=off)
        self.identity = identity or Identity()      # NSID, CHAOS id.server.: which node answered
        # `whoami.<origin>` of the zones with `whoami: true` -> the zone (answered per asker, slow path)
        self.whoami: dict[bytes, Zone] = {text_to_name("whoami." + z.origin): z for z in zones.values()
                                          if z.whoami}
        self.locator = locator
        self.data = data
        self.health = health
        self._entries: dict[tuple[bytes, int], Entry] = {}
        self._memo: dict[tuple[bytes, int], Entry] = {}
        self._plans: dict[tuple, Plan] = {}
        self._ready: dict[tuple[Entry, str], Ready] = {}
        self._names = {text_to_name(name) for zone in zones.values() for name in zone.names}
        if len(self._names) <= PREWARM_LIMIT:
            for wire in self._names:
                for qtype in PREWARM_TYPES:
                    self.entry(wire, qtype)

    def entry(self, qname: bytes, qtype: int) -> Entry:
        """The packed answer for a lower-case wire name and a type (built on first use if needed)."""
        key = (qname, qtype)
        found = self._entries.get(key) or self._memo.get(key)
        if found is None:
            found = build_entry(self.zones, qname, qtype, self.stats)
            if qname in self._names:
                self._entries[key] = found
            else:
                if len(self._memo) >= MEMO_LIMIT:
                    self._memo.clear()
                self._memo[key] = found
        return found

    def set_health(self, health: HealthSnapshot) -> None:
        """Use a new health snapshot: cached plans are dropped and recomputed on demand."""
        self.health = health
        self._plans = {}
        self._ready = {}

    def plan(self, ref: PoolRef, location: ClientLocation, client_ip: tuple[int, int] | None = None) -> Plan:
        """The steering plan for this pool and client location bucket, and the client's block of any
        `net:` rules (cached until health changes)."""
        nets = net_key(ref.zone, ref.pool, client_ip) if client_ip is not None else ()
        key = (ref.zone.origin, ref.pool, ref.family, location.bucket, location.prefix_len, nets)
        found = self._plans.get(key)
        if found is None:
            if len(self._plans) >= PLAN_LIMIT:
                self._plans = {}
            found = self._plans[key] = plan(ref.zone, ref.pool, ref.family, location, self.health, self.data,
                                            client_ip)
        return found

    def ready(self, entry: Entry, client: Client) -> Ready:
        """The plan for a pool entry and client, with its records packed (cached per client address)."""
        key = (entry, client.address)
        found = self._ready.get(key)
        if found is None:
            location = self.locator.locate(client.address)
            p = self.plan(entry.pool, location, client.ip)
            rrs = tuple(address_rr(entry.owner, c.address, p.ttl) for c in p.candidates)
            if len(self._ready) >= PLAN_LIMIT:
                self._ready = {}
            found = self._ready[key] = self._counted(Ready(p, rrs), entry.pool, location) \
                if self.stats is not None else Ready(p, rrs)
        return found

    def _counted(self, ready: Ready, ref: PoolRef, location: ClientLocation) -> Ready:
        """`ready` with the label ids its queries count under (once per cached plan, not per query)."""
        stats, p, zone = self.stats, ready.plan, ref.zone.origin
        keys = tuple(stats.label_id(("a", zone, p.pool, c.site, c.address)) for c in p.candidates)
        steering = 0
        if any(line.startswith(ALL_DOWN_TRACE_PREFIX) for line in p.trace):
            action = "serve_all" if p.outcome == "answer" else p.outcome
            steering = stats.label_id(("all_down", zone, ref.pool, action))
        elif p.pool != ref.pool and p.outcome == "answer":
            steering = stats.label_id(("fallback", zone, ref.pool, p.pool))
        return Ready(p, ready.rrs, keys, int(location.known), steering)
